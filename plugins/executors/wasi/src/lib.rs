//! The `wasi` executor: runs an entry point that is itself a WebAssembly component
//! (`command: "train.wasm --alpha {alpha}"`). The host runs it fully sandboxed (project
//! directory read-only, an output directory, no network; see `programs` in plugins/sdk/wit/executor.wit);
//! this executor records the component's sha256 on the run, so that the run can be reproduced
//! with exactly the same code, and logs the output directory's files as the run's artifacts.

use wasmflow_executor_common::{ExecutorInfo, Guest, Job, Outcome, programs, tracking};

struct Wasi;

impl Guest for Wasi {
    fn info() -> ExecutorInfo {
        ExecutorInfo {
            name: "wasi".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            environments: vec!["wasi".into()],
            description: "runs a .wasm entry point in the host's sandbox".into(),
        }
    }

    fn run(job: Job) -> Result<Outcome, String> {
        let words = shlex::split(&job.command)
            .ok_or_else(|| format!("cannot split the command '{}'", job.command))?;
        let Some((program, args)) = words.split_first() else {
            return Err("the entry point's command is empty".into());
        };
        if !program.ends_with(".wasm") {
            return Err(format!(
                "the wasi executor runs .wasm programs, and the command starts with '{program}'"
            ));
        }
        let env = vec![
            ("MLFLOW_RUN_ID".to_string(), job.run_id.clone()),
            (
                "MLFLOW_EXPERIMENT_ID".to_string(),
                job.experiment_id.clone(),
            ),
        ];
        let exit = programs::run(program, args, &env)?;
        tracking::set_tag("wasmflow.wasi.program", program)?;
        tracking::set_tag("wasmflow.wasi.sha256", &exit.sha256)?;
        // Whatever the program wrote, even when it failed, helps to see why.
        tracking::log_artifact(&exit.output_dir, None)?;
        if let Some(error) = &exit.error {
            eprintln!("{error}");
        }
        Ok(Outcome {
            exit_code: Some(exit.exit_code),
            message: exit.error.or_else(|| {
                (exit.exit_code != 0)
                    .then(|| format!("the program exited with status {}", exit.exit_code))
            }),
        })
    }
}

wasmflow_executor_common::export_executor!(Wasi);
