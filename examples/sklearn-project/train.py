"""Fits an ElasticNet on data.csv and logs its metrics and coefficients with the mlflow client.

`wasmflow run` sets MLFLOW_RUN_ID, MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_ID, so
`mlflow.start_run()` continues the run that `wasmflow run` created and logged the parameters on.
"""

import argparse
import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_squared_error, r2_score


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpha", type=float, required=True)
    parser.add_argument("--l1-ratio", type=float, required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()

    table = np.loadtxt(args.data, delimiter=",", skiprows=1)
    x, y = table[:, :-1], table[:, -1]
    model = ElasticNet(alpha=args.alpha, l1_ratio=args.l1_ratio, random_state=0).fit(x, y)
    pred = model.predict(x)
    rmse = float(np.sqrt(mean_squared_error(y, pred)))
    r2 = float(r2_score(y, pred))
    print(f"alpha={args.alpha} l1_ratio={args.l1_ratio}: rmse={rmse:.4f} r2={r2:.4f}")

    with mlflow.start_run():
        mlflow.log_metric("rmse", rmse)
        mlflow.log_metric("r2", r2)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "coefficients.json"
            path.write_text(json.dumps({"coef": model.coef_.tolist(), "intercept": float(model.intercept_)}))
            mlflow.log_artifact(str(path))


if __name__ == "__main__":
    main()
