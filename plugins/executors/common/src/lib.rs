//! Bindings of `wasmflow:plugin/executor-plugin` (plugins/sdk/wit/executor.wit) and what the built-in
//! executors share: running a host command while passing its output on, and MLflow's
//! environment variables for a job.
//!
//! An executor implements [`Guest`] and registers it with [`export_executor!`].

wit_bindgen::generate!({
    path: "../../sdk/wit",
    world: "executor-plugin",
    pub_export_macro: true,
    export_macro_name: "export_executor",
    default_bindings_module: "wasmflow_executor_common",
});

pub use exports::wasmflow::plugin::executor::{ExecutorInfo, Guest, Job, Outcome};
pub use wasmflow::plugin::process::{self, OutputLine};
pub use wasmflow::plugin::{programs, tracking};

/// Runs `program` in the project directory, printing its output as it comes (the host passes
/// the executor's stdout and stderr on), and returns its exit code (None: a signal ended it).
pub fn run_streaming(
    program: &str,
    args: &[String],
    env: &[(String, String)],
) -> Result<Option<i32>, String> {
    let child = process::start(program, args, env)?;
    while let Some(line) = child.next_line() {
        match line {
            OutputLine::Stdout(line) => println!("{line}"),
            OutputLine::Stderr(line) => eprintln!("{line}"),
        }
    }
    Ok(child.wait())
}

/// What a project's code needs to log into the job's run with the `mlflow` client.
pub fn mlflow_env(job: &Job) -> Vec<(String, String)> {
    vec![
        ("MLFLOW_RUN_ID".into(), job.run_id.clone()),
        ("MLFLOW_TRACKING_URI".into(), job.tracking_uri.clone()),
        ("MLFLOW_EXPERIMENT_ID".into(), job.experiment_id.clone()),
    ]
}

/// The outcome of an entry point that exited with `code`.
pub fn outcome(code: Option<i32>) -> Outcome {
    let message = match code {
        Some(0) => None,
        Some(code) => Some(format!("the entry point exited with status {code}")),
        None => Some("the entry point was stopped by a signal".into()),
    };
    Outcome {
        exit_code: code,
        message,
    }
}
