"""Track a small training loop in wasmflow with the official MLflow client.

    cargo run --release -- server            # in one terminal
    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python examples/quickstart.py

Needs `pip install mlflow scikit-learn`. Logs params, a metric per epoch, an artifact and a model,
then finds the best run with MLflow's search syntax and loads its model back.
"""

import os

import mlflow
import numpy as np
from sklearn.linear_model import SGDRegressor

mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
mlflow.set_experiment("wasmflow-quickstart")

rng = np.random.default_rng(0)
X = rng.normal(size=(500, 4))
y = X @ np.array([2.0, -1.0, 0.5, 3.0]) + rng.normal(scale=0.1, size=500)

for alpha in (1e-4, 1e-3, 1e-2):
    with mlflow.start_run(run_name=f"sgd-alpha-{alpha}"):
        mlflow.log_param("alpha", alpha)
        model = SGDRegressor(alpha=alpha, random_state=0)
        for epoch in range(20):
            model.partial_fit(X, y)
            mse = float(np.mean((model.predict(X) - y) ** 2))
            mlflow.log_metric("mse", mse, step=epoch)
        mlflow.log_dict({"coef": model.coef_.tolist()}, "coefficients.json")
        mlflow.sklearn.log_model(model, name="model", input_example=X[:3])

best = mlflow.search_runs(
    filter_string="metrics.mse < 1 and params.alpha != '0.01'",
    order_by=["metrics.mse ASC"],
    max_results=1,
)
run_id = best.iloc[0]["run_id"]
print(f"best run {run_id}: mse={best.iloc[0]['metrics.mse']:.5f}")
model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
print("prediction for the first row:", model.predict(X[:1]))
