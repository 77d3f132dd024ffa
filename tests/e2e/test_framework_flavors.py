"""scikit-learn, LightGBM and XGBoost models logged with the official client's defaults, served
by the built-in `sklearn`, `lightgbm` and `xgboost` plugins, and answered as MLflow answers.

Every model of `CASES` (the table below) is trained on synthetic data, logged with its flavor's
`log_model` and the client's defaults (scikit-learn and LightGBM's scikit-learn API as skops,
XGBoost as UBJSON; `input_example=X[:5]`, so that MLflow infers the signature), registered, and
scored on the same 1,000-row probe (missing values and string columns where the model takes
them, unknown categories included) through the three ways wasmflow serves a model:

- `POST /serving/models/<name>/<version>/invocations` of the session's server,
- `wasmflow models serve -m models:/<name>/<version>` and its `POST /invocations`,
- `wasmflow models predict -m models:/<name>/<version>` (JSON on stdin, CSV from a file),

in each payload form: dataframe_split (NaN sent as the `NaN` token, as `json.dumps` writes it),
dataframe_records (NaN as `null`), text/csv (NaN as an empty field), and `instances` (records) /
`inputs` (columns) where MLflow accepts them for that model; a missing string is `null`.

Two arguments beyond the defaults, neither read by serving: `skops_trusted_types` where skops
0.16 distrusts a type of the model (trees' `Tree`, `TreePredictor`, KNN's `KDTree`, encoders'
`numpy.dtype`): MLflow 3.17's `log_model` reloads the file and refuses the model otherwise,
telling the user to pass them; and `pip_requirements`, which spares `log_model` inferring them
by importing the model in a subprocess (seconds per model on a loaded machine).

Each answer is compared with
(a) the framework's own `predict` / `predict_proba` / `predict_log_proba` in this process: labels
    equal, numbers within 1e-6 relative (float32 outputs of XGBoost bit-identical), and
(b) what MLflow's scoring server answers for the very same bytes (`mlflow_answer.py`, shared
    with the other flavors' tests): the model loaded with `mlflow.pyfunc.load_model`, the
    request handed to `mlflow.pyfunc.scoring_server.invocations`
    (the function behind `mlflow models serve`'s `/invocations`: it parses the payload as the
    server does, predicts, and writes the answer with `predictions_to_json`). Where the values
    are exact (class labels, integers, XGBoost's float32) the bodies must be byte-identical;
    where they are float64 computed by a different kernel, the same JSON structure with values
    within 1e-6 relative, and our body equal to its own Python re-serialization
    (`json.dumps(json.loads(body))`, i.e. written as Python writes floats).

Also: refusals (pickle/cloudpickle models, among them what `mlflow.sklearn.autolog()` logs by
default; an estimator the plugin does not implement), `NaN` / `Infinity` tokens in a body, and
request `params`, which MLflow applies only where the signature declares them.
Models are logged once per module (on first use) and shared by the tests of every surface.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from conftest import PLUGIN_CACHE, ModelServer
from mlflow_answer import assert_same_answer, mlflow_answer

sklearn = pytest.importorskip("sklearn")
lgb = pytest.importorskip("lightgbm")
xgb = pytest.importorskip("xgboost")
skops = pytest.importorskip("skops")
import skops.io  # noqa: E402

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import (  # noqa: E402
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import (  # noqa: E402
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.svm import SVC, SVR  # noqa: E402
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

ROWS = 1000  # rows of every probe
RTOL = 1e-6  # relative tolerance of float64 values computed by another kernel
ATOL = 1e-12  # ... and an absolute floor for values that are (almost) zero

# ------------------------------------------------------------------------------------------------
# The data: three feature sets, each a training frame and a 1,000-row probe from another seed.
#   num   - 4 float columns, no missing value (what linear models, KNN and most trees take)
#   nan   - the same with ~15% NaN, one probe row all NaN (HistGradientBoosting, LightGBM,
#           XGBoost, imputing pipelines)
#   mixed - 2 float columns with NaN, an int column and 2 string columns; the probe has
#           categories never seen in training and missing strings (pipelines with encoders)
NUM_COLUMNS = ["f0", "f1", "f2", "f3"]
COLORS = ["red", "green", "blue"]
CITIES = ["paris", "rome", "oslo", "lima"]


def _frame(kind: str, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    if kind in ("num", "nan"):
        values = rng.normal(size=(rows, 4))
        if kind == "nan":
            values[rng.random(values.shape) < 0.15] = np.nan
        return pd.DataFrame(values, columns=NUM_COLUMNS)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=rows),
            "b": rng.normal(scale=3.0, size=rows),
            "count": rng.integers(0, 20, size=rows),
            "color": rng.choice(COLORS, size=rows),
            "city": rng.choice(CITIES, size=rows),
        }
    )
    frame.loc[rng.random(rows) < 0.12, "a"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "b"] = np.nan
    return frame


def _probe(kind: str) -> pd.DataFrame:
    frame = _frame(kind, ROWS, seed=1000 + len(kind))
    if kind == "nan":
        frame.iloc[0] = np.nan  # every feature missing
        frame.iloc[1] = 0.0
    if kind == "mixed":
        frame.loc[0:19, "color"] = ["purple", "red", "teal", "green"] * 5  # unknown categories
        frame.loc[5:14, "city"] = "tokyo"
        frame.loc[20:24, "color"] = None  # missing strings (null in JSON, an empty CSV field)
        frame.loc[23:27, "city"] = None
    return frame


def _signal(frame: pd.DataFrame) -> np.ndarray:
    """A smooth score of the features that every target below derives from."""
    if "f0" in frame:
        f = frame[NUM_COLUMNS].fillna(0.0).to_numpy()
        return 1.5 * f[:, 0] - f[:, 1] + 0.5 * f[:, 2] * f[:, 3] + 0.3 * f[:, 2] ** 2
    return (
        frame.a.fillna(0.0)
        + 0.2 * frame.b.fillna(0.0)
        - 0.05 * frame["count"]
        + 1.2 * (frame.color == "red")
        - 0.8 * (frame.city == "oslo")
    ).to_numpy()


def _target(frame: pd.DataFrame, task: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = _signal(frame) + rng.normal(scale=0.3, size=len(frame))
    if task == "reg":
        return s
    if task == "bin-int":
        return (s > 0.2).astype(np.int64)
    if task == "bin-str":
        return np.where(s > 0.2, "yes", "no")
    cuts = np.digitize(s, np.quantile(s, [1 / 3, 2 / 3]))
    if task == "multi-int":
        return cuts.astype(np.int64)
    if task == "multi-str":
        return np.array(["setosa", "versicolor", "virginica"])[cuts]
    raise ValueError(task)


# ------------------------------------------------------------------------------------------------
# The table of models


def _mixed_preprocess() -> ColumnTransformer:
    """The issue's pipeline front: one-hot on the strings, impute + scale on the numbers."""
    return ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color", "city"]),
            ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["a", "b", "count"]),
        ]
    )


def _ordinal_preprocess() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["color", "city"]),
            ("num", "passthrough", ["a", "b", "count"]),
        ]
    )


def _xgb_booster(params: dict, rounds: int):
    def train(x: pd.DataFrame, y: np.ndarray):
        return xgb.train({"seed": 0, "nthread": 1, **params}, xgb.DMatrix(x, label=y), rounds)

    return train


@dataclass
class Case:
    id: str
    make: Callable  # () -> unfitted estimator, or (x, y) -> fitted model when `trains` is set
    data: str  # num | nan | mixed
    task: str  # reg | bin-int | bin-str | multi-int | multi-str
    flavor: str = "sklearn"  # sklearn | lightgbm | xgboost | autolog
    predict_fn: str = "predict"  # MLflow's pyfunc_predict_fn (sklearn flavor only)
    # True where the answer is exact (labels, ints, XGBoost's float32): the bytes must then equal
    # MLflow's; False for float64 values computed by another kernel (1e-6 relative).
    exact: bool = False
    trains: bool = False  # `make` trains the model itself (XGBoost's native API)
    log_kwargs: dict = field(default_factory=dict)


C = Case
CASES: list[Case] = [
    # linear models
    C("linear_regression", LinearRegression, "num", "reg"),
    C("ridge", lambda: Ridge(alpha=0.5), "num", "reg"),
    C("lasso", lambda: Lasso(alpha=0.01), "num", "reg"),
    C("elastic_net", lambda: ElasticNet(alpha=0.01, l1_ratio=0.3), "num", "reg"),
    C("sgd_regressor", lambda: SGDRegressor(random_state=0), "num", "reg"),
    C("logistic_binary", lambda: LogisticRegression(), "num", "bin-int", exact=True),
    C("logistic_multinomial", lambda: LogisticRegression(), "num", "multi-str", exact=True),
    C("logistic_multinomial_proba", lambda: LogisticRegression(), "num", "multi-str", predict_fn="predict_proba"),
    C("logistic_binary_log_proba", lambda: LogisticRegression(), "num", "bin-int", predict_fn="predict_log_proba"),
    C("sgd_classifier", lambda: SGDClassifier(random_state=0), "num", "multi-str", exact=True),
    # trees and ensembles
    C("decision_tree_regressor", lambda: DecisionTreeRegressor(max_depth=8, random_state=0), "num", "reg"),
    C("decision_tree_classifier", lambda: DecisionTreeClassifier(max_depth=8, random_state=0), "num", "multi-str", exact=True),
    C("random_forest_regressor", lambda: RandomForestRegressor(n_estimators=20, max_depth=8, random_state=0), "num", "reg"),
    C("random_forest_classifier", lambda: RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0), "num", "bin-int", exact=True),
    C("random_forest_proba", lambda: RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0), "num", "multi-str", predict_fn="predict_proba"),
    C("extra_trees_regressor", lambda: ExtraTreesRegressor(n_estimators=20, max_depth=8, random_state=0), "num", "reg"),
    C("extra_trees_classifier", lambda: ExtraTreesClassifier(n_estimators=20, max_depth=8, random_state=0), "num", "multi-str", exact=True),
    C("gradient_boosting_regressor", lambda: GradientBoostingRegressor(n_estimators=30, random_state=0), "num", "reg"),
    C("gradient_boosting_classifier", lambda: GradientBoostingClassifier(n_estimators=30, random_state=0), "num", "multi-str", exact=True),
    C("gradient_boosting_binary_proba", lambda: GradientBoostingClassifier(n_estimators=30, random_state=0), "num", "bin-int", predict_fn="predict_proba"),
    C("hist_gradient_boosting_regressor", lambda: HistGradientBoostingRegressor(max_iter=40, random_state=0), "nan", "reg"),
    C("hist_gradient_boosting_classifier", lambda: HistGradientBoostingClassifier(max_iter=40, random_state=0), "nan", "bin-int", exact=True),
    C("hist_gradient_boosting_proba", lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0), "nan", "multi-str", predict_fn="predict_proba"),
    C("kneighbors_regressor", lambda: KNeighborsRegressor(n_neighbors=5), "num", "reg"),
    C("kneighbors_classifier", lambda: KNeighborsClassifier(n_neighbors=5), "num", "multi-str", exact=True),
    C("svc", lambda: SVC(), "num", "multi-str", exact=True),
    C("svr", lambda: SVR(C=2.0), "num", "reg"),
    # pipelines
    C("pipeline_onehot_logistic", lambda: Pipeline([("prep", _mixed_preprocess()), ("clf", LogisticRegression())]),
      "mixed", "bin-str", exact=True),
    C("pipeline_onehot_logistic_proba", lambda: Pipeline([("prep", _mixed_preprocess()), ("clf", LogisticRegression())]),
      "mixed", "multi-str", predict_fn="predict_proba"),
    C("pipeline_ordinal_hist_gradient_boosting", lambda: Pipeline([("prep", _ordinal_preprocess()), ("reg", HistGradientBoostingRegressor(max_iter=30, random_state=0))]),
      "mixed", "reg"),
    C("pipeline_scalers_pca_ridge", lambda: Pipeline([("minmax", MinMaxScaler()), ("robust", RobustScaler()), ("pca", PCA(n_components=3)), ("ridge", Ridge())]),
      "num", "reg"),
    C("pipeline_imputer_kneighbors", lambda: Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler()), ("knn", KNeighborsClassifier(7))]),
      "nan", "bin-int", exact=True),
    # LightGBM's scikit-learn API (mlflow.lightgbm.log_model saves it with skops)
    C("lgbm_classifier", lambda: lgb.LGBMClassifier(n_estimators=40, num_leaves=15, n_jobs=1, verbose=-1, random_state=0), "nan", "multi-str", flavor="lightgbm", exact=True),
    C("lgbm_regressor", lambda: lgb.LGBMRegressor(n_estimators=40, num_leaves=15, n_jobs=1, verbose=-1, random_state=0), "nan", "reg", flavor="lightgbm"),
    # XGBoost (mlflow.xgboost.log_model saves model.ubj; float32 outputs are exact)
    C("xgb_classifier", lambda: xgb.XGBClassifier(n_estimators=30, max_depth=4, n_jobs=1, random_state=0), "nan", "bin-int", flavor="xgboost", exact=True),
    C("xgb_classifier_multiclass", lambda: xgb.XGBClassifier(n_estimators=20, max_depth=4, n_jobs=1, random_state=0), "nan", "multi-int", flavor="xgboost", exact=True),
    C("xgb_regressor", lambda: xgb.XGBRegressor(n_estimators=30, max_depth=5, n_jobs=1, random_state=0), "nan", "reg", flavor="xgboost", exact=True),
    C("xgb_booster_logistic", _xgb_booster({"objective": "binary:logistic", "max_depth": 4}, 30), "nan", "bin-int",
      flavor="xgboost", exact=True, trains=True),
    C("xgb_booster_softprob_json", _xgb_booster({"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, 15), "nan", "multi-int",
      flavor="xgboost", exact=True, trains=True, log_kwargs={"model_format": "json"}),
    C("xgb_booster_dart", _xgb_booster({"objective": "reg:squarederror", "booster": "dart", "rate_drop": 0.1, "max_depth": 4}, 20), "nan", "reg",
      flavor="xgboost", exact=True, trains=True),
    # mlflow.sklearn.autolog(serialization_format="skops") logging the model itself: autolog's
    # default is cloudpickle, which is refused (test_autolog_defaults_are_a_pickle_and_refused),
    # and it takes no skops_trusted_types, so only models with no type skops distrusts (no trees,
    # no KNN, no encoders) can be autologged as skops at all.
    C("autolog_scaled_logistic", lambda: Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]), "num", "multi-str",
      flavor="autolog", exact=True),
]
CASE_IDS = [c.id for c in CASES]
BY_ID = {c.id: c for c in CASES}
# The JSON forms, then CSV; `instances` and `inputs` only where MLflow accepts them.
FORMS = ["dataframe_split", "dataframe_records", "csv", "instances", "inputs"]
REQUIRED_FORMS = {"dataframe_split", "dataframe_records", "csv"}


# ------------------------------------------------------------------------------------------------
# Payloads and the two references


def _cell(v, nan):
    """One JSON value: Python floats (their repr round-trips exactly), NaN as `nan`."""
    if v is None or v is pd.NA:
        return nan
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return nan if math.isnan(v) else float(v)
    return str(v)


def payloads(frame: pd.DataFrame) -> dict[str, tuple[str, bytes]]:
    """The probe in each form: name -> (content type, body bytes)."""
    cols = list(frame.columns)
    # A missing string is null in every form (NaN tokens only stand for missing numbers).
    text = [not pd.api.types.is_numeric_dtype(frame[c]) for c in cols]
    nan_rows = [[_cell(v, None if t else float("nan")) for v, t in zip(row, text)]
                for row in frame.astype(object).itertuples(index=False)]
    null_rows = [[_cell(v, None) for v in row] for row in frame.astype(object).itertuples(index=False)]
    csv = io.StringIO()
    frame.to_csv(csv, index=False)  # full precision, NaN as an empty field
    as_json = lambda obj: json.dumps(obj).encode()  # noqa: E731  (NaN tokens, as requests' data= sends)
    return {
        "dataframe_split": ("application/json", as_json({"dataframe_split": {"columns": cols, "data": nan_rows}})),
        "dataframe_records": ("application/json", as_json({"dataframe_records": [dict(zip(cols, r)) for r in null_rows]})),
        "csv": ("text/csv", csv.getvalue().encode()),
        "instances": ("application/json", as_json({"instances": [dict(zip(cols, r)) for r in null_rows]})),
        "inputs": ("application/json", as_json({"inputs": {c: [r[i] for r in nan_rows] for i, c in enumerate(cols)}})),
    }


def framework_output(case: Case, model, frame: pd.DataFrame) -> np.ndarray:
    """The framework's own answer, called directly (no MLflow in between)."""
    if isinstance(model, xgb.Booster):
        return model.predict(xgb.DMatrix(frame))
    return np.asarray(getattr(model, case.predict_fn)(frame))


@dataclass
class Logged:
    case: Case
    model: object  # the fitted estimator / booster
    name: str
    version: str
    probe: pd.DataFrame
    want: np.ndarray  # framework_output on the probe
    bodies: dict[str, tuple[str, bytes]]  # accepted forms only
    reference: dict[str, str]  # form -> MLflow's answer (HTTP 200)
    refused_by_mlflow: dict[str, str]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _fit(case: Case):
    x = _frame(case.data, 800, seed=7 + len(case.id))
    y = _target(x, case.task, seed=3)
    with threadpool_limits(1):  # OpenMP threads only spin on a shared 2-core machine
        if case.trains:
            return case.make(x, y), x
        return case.make().fit(x, y), x


def _skops_trust(model) -> dict:
    """The one argument beyond the defaults. MLflow's `log_model` loads the skops file back and
    refuses it if skops distrusts a type in it (trees' `Tree`, `TreePredictor`, KNN's `KDTree`,
    encoders' `numpy.dtype`), telling the user to pass `skops_trusted_types`: pass what skops
    reports for this very model, as a user who trained it would."""
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return {"skops_trusted_types": untrusted} if untrusted else {}


def _log(case: Case, experiment_id: str, name: str) -> tuple[object, str]:
    """Trains and logs the case's model with the client's defaults; registers it; -> (model, version)."""
    if case.flavor == "autolog":
        x = _frame(case.data, 800, seed=7 + len(case.id))
        y = _target(x, case.task, seed=3)
        mlflow.sklearn.autolog(serialization_format="skops", silent=True)
        try:
            with mlflow.start_run(experiment_id=experiment_id), threadpool_limits(1):
                model = case.make().fit(x, y)
        finally:
            mlflow.sklearn.autolog(disable=True)
        logged = mlflow.last_logged_model()
        assert logged is not None, "autolog logged no model"
        version = mlflow.register_model(logged.model_uri, name).version
        return model, str(version)
    model, x = _fit(case)
    # `pip_requirements` only fills requirements.txt / conda.yaml, which serving does not read;
    # given, it spares `log_model` importing the model in a subprocess to infer them (seconds
    # per model on a loaded machine). Everything serving reads (MLmodel with its inferred
    # signature, model.skops / model.ubj) is what the defaults write.
    framework = {"sklearn": sklearn, "lightgbm": lgb, "xgboost": xgb}[case.flavor]
    requirement = f"{framework.__name__.replace('sklearn', 'scikit-learn')}=={framework.__version__}"
    kwargs = dict(name="model", input_example=x[:5], registered_model_name=name, pip_requirements=[requirement],
                  **case.log_kwargs)
    with mlflow.start_run(experiment_id=experiment_id):
        if case.flavor == "sklearn":
            if case.predict_fn != "predict":
                kwargs["pyfunc_predict_fn"] = case.predict_fn
            info = mlflow.sklearn.log_model(model, **kwargs, **_skops_trust(model))
        elif case.flavor == "lightgbm":
            info = mlflow.lightgbm.log_model(model, **kwargs)
        elif case.flavor == "xgboost":
            info = mlflow.xgboost.log_model(model, **kwargs)
        else:
            raise ValueError(case.flavor)
    return model, str(info.registered_model_version)


class Models:
    """Logs each case on first use; shared by every test of the module."""

    def __init__(self, experiment_id: str, run_tag: str):
        self.experiment_id = experiment_id
        self.run_tag = run_tag
        self.cache: dict[str, Logged] = {}

    def __call__(self, case_id: str) -> Logged:
        if case_id not in self.cache:
            self.cache[case_id] = self._make(BY_ID[case_id])
        return self.cache[case_id]

    def _make(self, case: Case) -> Logged:
        name = f"flavor-{case.id.replace('_', '-')}-{self.run_tag}"
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            model, version = _log(case, self.experiment_id, name)
            pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
            probe = _probe(case.data)
            want = framework_output(case, model, probe)
        bodies, reference, refused = {}, {}, {}
        for form, (content_type, body) in payloads(probe).items():
            with threadpool_limits(1):
                status, answer = mlflow_answer(pyfunc, body, content_type)
            if status == 200:
                bodies[form], reference[form] = (content_type, body), answer
            else:
                refused[form] = f"HTTP {status}: {answer[:300]!r}"
        missing = REQUIRED_FORMS - set(bodies)
        assert not missing, f"{case.id}: MLflow itself refuses {sorted(missing)}: {refused}"
        # The reference agrees with the framework (else the comparison below would mean nothing).
        for form, answer in reference.items():
            check_values(case, json.loads(answer)["predictions"], want, f"{case.id}: MLflow's own answer to {form}")
        return Logged(case, model, name, version, probe, want, bodies, reference, refused)


@pytest.fixture(scope="module")
def models(server) -> Models:
    mlflow.set_tracking_uri(server.url)
    client = mlflow.MlflowClient(tracking_uri=server.url)
    tag = os.urandom(4).hex()
    return Models(client.create_experiment(f"framework-flavors-{tag}"), tag)


# ------------------------------------------------------------------------------------------------
# Comparisons


def check_values(case: Case, predictions, want: np.ndarray, what: str) -> None:
    """(a): the served predictions against the framework's own output."""
    got = np.asarray(predictions)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, the framework's {want.shape}"
    if want.dtype.kind in "OUS":  # string labels
        assert got.tolist() == [str(v) for v in want.tolist()], f"{what}: labels differ"
    elif want.dtype.kind in "iub":
        assert got.dtype.kind in "iub", f"{what}: integer labels expected, got {got.dtype}"
        np.testing.assert_array_equal(got, want, err_msg=what)
    elif want.dtype == np.float32:  # XGBoost computes in float32: bit-identical
        as32 = got.astype(np.float32)
        assert np.array_equal(as32.astype(np.float64), got, equal_nan=True), f"{what}: values are not float32"
        np.testing.assert_array_equal(as32, want, err_msg=what)
    else:
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=RTOL, atol=ATOL, err_msg=what)


def check_body(logged: Logged, form: str, body: bytes, what: str) -> None:
    """(b): our response body against MLflow's for the same request bytes; then (a)."""
    assert_same_answer(body, logged.reference[form], rtol=RTOL, atol=ATOL, exact=logged.case.exact, what=what)
    check_values(logged.case, json.loads(body)["predictions"], logged.want, what)


# ------------------------------------------------------------------------------------------------
# The three surfaces


def test_the_flavor_plugins_are_builtin(base_url):
    r = requests.get(f"{base_url}/api/2.0/wasmflow/plugins", timeout=30)
    assert r.status_code == 200, r.text
    plugins = {p["name"]: p for p in r.json()["plugins"]}
    for name in ("sklearn", "xgboost", "lightgbm"):
        assert name in plugins, sorted(plugins)
        assert plugins[name]["loads"] == [name] and plugins[name]["builtin"] is True, plugins[name]


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_served_at_serving_path_as_mlflow_answers(case_id, models, base_url):
    logged = models(case_id)
    url = f"{base_url}/serving/models/{logged.name}/{logged.version}/invocations"
    with requests.Session() as http:
        for form, (content_type, body) in logged.bodies.items():
            r = http.post(url, data=body, headers={"Content-Type": content_type}, timeout=120)
            assert r.status_code == 200, f"{case_id} {form}: HTTP {r.status_code}: {r.text[:500]}"
            check_body(logged, form, r.content, f"{case_id} /serving {form}")


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_models_serve_answers_as_mlflow(case_id, models, server, wasmflow_bin, tmp_path):
    logged = models(case_id)
    s = ModelServer(wasmflow_bin, logged.uri, tmp_path, env={"MLFLOW_TRACKING_URI": server.url})
    try:
        s.wait_ready()
        for form, (content_type, body) in logged.bodies.items():
            r = s.invoke(body, content_type)
            assert r.status_code == 200, f"{case_id} {form}: HTTP {r.status_code}: {r.text[:500]}"
            check_body(logged, form, r.content, f"{case_id} models serve {form}")
    finally:
        s.stop()


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_models_predict_answers_as_mlflow(case_id, models, server, wasmflow_bin, tmp_path):
    logged = models(case_id)
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.url, "WASMFLOW_PLUGIN_CACHE_DIR": str(PLUGIN_CACHE)}
    base = [wasmflow_bin, "models", "predict", "-m", logged.uri, "--plugins-dir", str(tmp_path / "plugins")]
    # JSON (dataframe_split) on stdin, the answer on stdout.
    done = subprocess.run(base, input=logged.bodies["dataframe_split"][1], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, f"{case_id}: {done.stderr.decode(errors='replace')[:1500]}"
    check_body(logged, "dataframe_split", done.stdout.rstrip(b"\n"), f"{case_id} models predict json")
    # CSV from a file, the answer into a file.
    csv, out = tmp_path / "input.csv", tmp_path / "out.json"
    csv.write_bytes(logged.bodies["csv"][1])
    done = subprocess.run([*base, "-i", str(csv), "-t", "csv", "-o", str(out)], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, f"{case_id}: {done.stderr.decode(errors='replace')[:1500]}"
    check_body(logged, "csv", out.read_bytes().rstrip(b"\n"), f"{case_id} models predict csv")


def test_the_tensor_forms_mlflow_accepts(models):
    """A record of which models MLflow takes `instances` / `inputs` for (they are tested above
    wherever it does): a column signature makes both a DataFrame, so every case should."""
    refused = {c: models(c).refused_by_mlflow for c in CASE_IDS if models(c).refused_by_mlflow}
    assert not refused, refused


# ------------------------------------------------------------------------------------------------
# Request bodies with NaN / Infinity tokens


def test_nan_and_infinity_tokens_are_numbers(models, base_url):
    """`json.dumps` (and so `requests.post(data=json.dumps(...))`) writes NaN/Infinity/-Infinity
    tokens; MLflow's server reads them as floats, and so must we. `null` stays a missing value."""
    logged = models("hist_gradient_boosting_regressor")
    nan, inf = float("nan"), float("inf")
    rows = [[nan, 1.0, -0.5, 2.0], [inf, -inf, 0.0, nan], [1e308, -1e-308, inf, 0.25], [nan, nan, nan, nan]]
    frame = pd.DataFrame(rows, columns=NUM_COLUMNS)
    body = json.dumps({"dataframe_split": {"columns": NUM_COLUMNS, "data": rows}})
    assert "NaN" in body and "-Infinity" in body
    url = f"{base_url}/serving/models/{logged.name}/{logged.version}/invocations"
    r = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 200, r.text
    pyfunc = mlflow.pyfunc.load_model(logged.uri)
    status, reference = mlflow_answer(pyfunc, body, "application/json")
    assert status == 200, reference
    assert_same_answer(r.content, reference, rtol=RTOL, atol=ATOL, exact=logged.case.exact, what="NaN/Infinity tokens")
    np.testing.assert_allclose(r.json()["predictions"], logged.model.predict(frame), rtol=RTOL, atol=ATOL)
    # null where the other body has NaN: the same answer.
    nulls = json.dumps({"dataframe_split": {"columns": NUM_COLUMNS, "data": [[None if isinstance(v, float) and math.isnan(v) else v for v in row] for row in rows]}})
    r2 = requests.post(url, data=nulls, headers={"Content-Type": "application/json"}, timeout=60)
    assert r2.status_code == 200 and r2.content == r.content, (r2.text, r.text)


# ------------------------------------------------------------------------------------------------
# Refusals


def _serve_once(base_url: str, name: str, version: str, frame: pd.DataFrame) -> requests.Response:
    body = payloads(frame)["dataframe_split"][1]
    return requests.post(f"{base_url}/serving/models/{name}/{version}/invocations", data=body,
                         headers={"Content-Type": "application/json"}, timeout=60)


@pytest.mark.parametrize("serialization_format", ["cloudpickle", "pickle"])
def test_a_pickled_model_is_refused_with_how_to_relog(serialization_format, base_url, experiment_id, unique_name):
    x = _frame("num", 200, seed=1)
    model = LinearRegression().fit(x, _target(x, "reg", 1))
    name = unique_name("pickled")
    with mlflow.start_run(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.log_model(model, name="model", input_example=x[:5], registered_model_name=name,
                                 serialization_format=serialization_format)
    r = _serve_once(base_url, name, "1", x[:3])
    assert r.status_code == 400, f"HTTP {r.status_code}: {r.text[:500]}"
    message = r.json()["message"]
    low = message.lower()
    assert "pickle" in low and "not load" in low, message
    assert "skops" in low and "onnx" in low, f"the message should say how to re-log: {message}"


def test_autolog_defaults_are_a_pickle_and_refused(base_url, experiment_id, unique_name):
    """`mlflow.sklearn.autolog()` saves with cloudpickle unless told otherwise: refused, saying how
    to re-log (the skops case is served: autolog_random_forest in CASES)."""
    x = _frame("num", 200, seed=2)
    mlflow.sklearn.autolog(silent=True)
    try:
        with mlflow.start_run(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Ridge().fit(x, _target(x, "reg", 2))
    finally:
        mlflow.sklearn.autolog(disable=True)
    name = unique_name("autolog-pickle")
    mlflow.register_model(mlflow.last_logged_model().model_uri, name)
    r = _serve_once(base_url, name, "1", x[:3])
    assert r.status_code == 400, f"HTTP {r.status_code}: {r.text[:500]}"
    low = r.json()["message"].lower()
    assert "pickle" in low and "skops" in low, low


def test_an_unsupported_estimator_is_refused_by_name(base_url, experiment_id, unique_name, server, wasmflow_bin, tmp_path):
    x = _frame("num", 200, seed=3)
    model = KMeans(n_clusters=3, n_init=1, random_state=0).fit(x)
    name = unique_name("kmeans")
    with mlflow.start_run(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.log_model(model, name="model", input_example=x[:5], registered_model_name=name,
                                 **_skops_trust(model))
    r = _serve_once(base_url, name, "1", x[:3])
    assert r.status_code == 400, f"HTTP {r.status_code}: {r.text[:500]}"
    message = r.json()["message"]
    assert "KMeans" in message, message
    assert "LogisticRegression" in message or "supported" in message.lower(), f"should list what is supported: {message}"
    # `models predict` refuses it too, with the same words.
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.url, "WASMFLOW_PLUGIN_CACHE_DIR": str(PLUGIN_CACHE)}
    done = subprocess.run([wasmflow_bin, "models", "predict", "-m", f"models:/{name}/1", "--plugins-dir", str(tmp_path / "p")],
                          input=payloads(x[:3])["dataframe_split"][1], env=env, capture_output=True, timeout=300)
    assert done.returncode != 0 and b"KMeans" in done.stderr, done.stderr[:1000]


# ------------------------------------------------------------------------------------------------
# Request params


def test_params_apply_only_where_the_signature_declares_them(models, base_url, experiment_id, unique_name):
    """MLflow's pyfunc drops a request's `params` (with a warning) when the model's signature has
    no params schema, and applies them, type-checked, when it has one: the same body must get
    MLflow's answer in both cases (XGBoost's `output_margin`)."""
    logged = models("xgb_booster_logistic")  # logged without a params schema
    split = json.loads(logged.bodies["dataframe_split"][1])
    body = json.dumps({**split, "params": {"output_margin": True}}).encode()
    r = requests.post(f"{base_url}/serving/models/{logged.name}/{logged.version}/invocations", data=body,
                      headers={"Content-Type": "application/json"}, timeout=120)
    assert r.status_code == 200, r.text[:500]
    assert_same_answer(r.content, logged.reference["dataframe_split"], exact=True,
                       what="params must be ignored without a params schema")

    # The same booster logged with a params schema: output_margin applies.
    from mlflow.models import infer_signature

    x = _frame("nan", 50, seed=9)
    signature = infer_signature(x, logged.model.predict(xgb.DMatrix(x)), params={"output_margin": False})
    name = unique_name("xgb-params")
    with mlflow.start_run(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.xgboost.log_model(logged.model, name="model", signature=signature, registered_model_name=name,
                                 pip_requirements=[f"xgboost=={xgb.__version__}"])
    r = requests.post(f"{base_url}/serving/models/{name}/1/invocations", data=body,
                      headers={"Content-Type": "application/json"}, timeout=120)
    assert r.status_code == 200, r.text[:500]
    status, reference = mlflow_answer(mlflow.pyfunc.load_model(f"models:/{name}/1"), body, "application/json")
    assert status == 200, reference
    margins = logged.model.predict(xgb.DMatrix(logged.probe), output_margin=True)
    np.testing.assert_array_equal(np.asarray(json.loads(reference)["predictions"], dtype=np.float32), margins)
    assert_same_answer(r.content, reference, exact=True, what="output_margin applied as the params schema declares")
