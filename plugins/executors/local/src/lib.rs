//! The `local` executor: runs the entry point's command with bash in the project directory, in
//! the environment `wasmflow run` was started in, with `MLFLOW_RUN_ID`, `MLFLOW_TRACKING_URI`
//! and `MLFLOW_EXPERIMENT_ID` set so that the project's `mlflow` client logs into the job's run.

use wasmflow_executor_common::{ExecutorInfo, Guest, Job, Outcome, mlflow_env, outcome};

struct Local;

impl Guest for Local {
    fn info() -> ExecutorInfo {
        ExecutorInfo {
            name: "local".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            environments: vec!["local".into()],
            description: "runs the command in the current environment".into(),
        }
    }

    fn run(job: Job) -> Result<Outcome, String> {
        // MLflow runs an entry point's command with bash -c as well.
        let args = ["-c".to_string(), job.command.clone()];
        let code = wasmflow_executor_common::run_streaming("bash", &args, &mlflow_env(&job))?;
        Ok(outcome(code))
    }
}

wasmflow_executor_common::export_executor!(Local);
