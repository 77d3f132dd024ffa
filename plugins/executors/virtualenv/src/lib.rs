//! The `virtualenv` executor: makes a virtual environment from the project's `python_env.yaml`
//! (the Python version, `build_dependencies`, `dependencies`), keeps it under the host's cache
//! directory by the content hash of that specification so that the next run reuses it, and runs
//! the entry point's command in it.

use sha2::{Digest, Sha256};
use wasmflow_executor_common::{ExecutorInfo, Guest, Job, Outcome, mlflow_env, outcome};

struct Virtualenv;

/// Creates the environment unless a complete one exists. A half-made environment (a run
/// stopped during `pip install`) has no marker file and is made again.
const SETUP: &str = r#"set -euo pipefail
venv="$1"; pyver="$2"; nbuild="$3"; shift 3
build=("${@:1:nbuild}"); deps=("${@:nbuild+1}")
mkdir -p "$(dirname "$venv")"
# Two runs of projects with the same environment: the second waits for the first to make it.
if command -v flock >/dev/null 2>&1; then exec 9>"$venv.lock"; flock 9; fi
if [ -f "$venv/.wasmflow-ready" ]; then exit 0; fi
rm -rf "$venv"
py=python3
if [ -n "$pyver" ] && command -v "python$pyver" >/dev/null 2>&1; then py="python$pyver"; fi
echo "wasmflow: creating the virtual environment $venv with $("$py" --version)"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip "${build[@]}"
if [ "${#deps[@]}" -gt 0 ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${deps[@]}"
fi
touch "$venv/.wasmflow-ready"
"#;

impl Guest for Virtualenv {
    fn info() -> ExecutorInfo {
        ExecutorInfo {
            name: "virtualenv".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            environments: vec!["python".into()],
            description: "runs the command in a cached virtualenv made from python_env.yaml".into(),
        }
    }

    fn run(job: Job) -> Result<Outcome, String> {
        let spec_text = job
            .environment_spec
            .clone()
            .ok_or("the project has no python_env.yaml to make an environment from")?;
        let spec: serde_json::Value = serde_json::from_str(&spec_text)
            .map_err(|e| format!("bad python environment specification: {e}"))?;
        let strings = |key: &str| -> Result<Vec<String>, String> {
            match &spec[key] {
                serde_json::Value::Null => Ok(Vec::new()),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_string).ok_or_else(|| {
                            format!("python_env.yaml: '{key}' holds {v}, not a string")
                        })
                    })
                    .collect(),
                other => Err(format!("python_env.yaml: '{key}' is {other}, not a list")),
            }
        };
        let python = match &spec["python"] {
            serde_json::Value::String(v) => v.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        let build = strings("build_dependencies")?;
        let deps = strings("dependencies")?;
        let hash: String = Sha256::digest(spec_text.as_bytes())
            .iter()
            .take(10)
            .map(|b| format!("{b:02x}"))
            .collect();
        let venv = format!("{}/virtualenv/{hash}", job.cache_dir.trim_end_matches('/'));
        // `python: "3.11.4"` asks for 3.11.4; an interpreter named python3.11 is the closest a
        // plain host has.
        let short: String = python.split('.').take(2).collect::<Vec<_>>().join(".");
        let mut args = vec![
            "-c".to_string(),
            SETUP.to_string(),
            "wasmflow-venv".into(),
            venv.clone(),
            short,
            build.len().to_string(),
        ];
        args.extend(build);
        args.extend(deps);
        match wasmflow_executor_common::run_streaming("bash", &args, &[])? {
            Some(0) => {}
            code => {
                return Ok(Outcome {
                    exit_code: code,
                    message: Some(format!("creating the virtual environment {venv} failed")),
                });
            }
        }
        let mut env = mlflow_env(&job);
        env.push(("VIRTUAL_ENV".into(), venv));
        let command = format!("export PATH=\"$VIRTUAL_ENV/bin:$PATH\"\n{}", job.command);
        let code = wasmflow_executor_common::run_streaming("bash", &["-c".into(), command], &env)?;
        Ok(outcome(code))
    }
}

wasmflow_executor_common::export_executor!(Virtualenv);
