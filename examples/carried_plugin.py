"""Log a model that carries its own wasmflow plugin, with the official mlflow client.

`attach_plugin` does what `wasmflow models attach-plugin MODEL_DIR FILE.wasm --flavor NAME` does;
`log_model_with_plugin` saves a model with any MLflow flavor, attaches the plugin and logs it to
the active run (registering it when asked). Needs only mlflow (PyYAML comes with it).
"""

import hashlib
import shutil
import tempfile
from pathlib import Path

import mlflow
import yaml


def attach_plugin(model_dir, wasm, flavor):
    """Copies the component `wasm` into `model_dir` and names it, with its sha256, in the MLmodel's
    `wasmflow` section; the plugin's `load` receives the `flavor` section."""
    model_dir, wasm = Path(model_dir), Path(wasm)
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    if flavor == "wasmflow" or flavor not in mlmodel.get("flavors", {}):
        raise ValueError(f"the MLmodel has no flavor {flavor!r}: {list(mlmodel.get('flavors', {}))}")
    component = f"wasmflow/{wasm.stem}.wasm"
    (model_dir / "wasmflow").mkdir(exist_ok=True)
    shutil.copyfile(wasm, model_dir / component)
    sha256 = hashlib.sha256(wasm.read_bytes()).hexdigest()
    mlmodel["flavors"]["wasmflow"] = {"component": component, "sha256": sha256, "flavor": flavor}
    (model_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=False))


def log_model_with_plugin(save_model, wasm, flavor, artifact_path="model", registered_model_name=None):
    """Saves a model with `save_model(path)`, e.g. `lambda p: mlflow.sklearn.save_model(clf, p)`,
    attaches the plugin and logs the directory to the active run (one is started if none is).
    Returns the model's URI, `models:/NAME/VERSION` when it is registered."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        save_model(str(path))
        attach_plugin(path, wasm, flavor)
        mlflow.log_artifacts(str(path), artifact_path)
    uri = f"runs:/{mlflow.active_run().info.run_id}/{artifact_path}"
    if registered_model_name:
        version = mlflow.register_model(uri, registered_model_name).version
        return f"models:/{registered_model_name}/{version}"
    return uri
