//! The built-in executors under the host's policy: `process` only where granted, tracking on
//! the job's run, artifacts only from the project and output directories, and Ctrl-C stopping
//! a running job.

use std::path::Path;

use sha2::Digest as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmflow_runtime::{
    Cancel, CompiledExecutor, ExecutorHost, Grants, Job, JobSetup, Runtime, RuntimeConfig, Tracking,
};

/// Records what an executor logs.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Tracking for Recorder {
    fn log_param(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.0.lock().unwrap().push(format!("param {key}={value}"));
        Ok(())
    }
    fn log_metric(&self, key: &str, value: f64, step: i64) -> anyhow::Result<()> {
        self.0
            .lock()
            .unwrap()
            .push(format!("metric {key}={value}@{step}"));
        Ok(())
    }
    fn set_tag(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.0.lock().unwrap().push(format!("tag {key}={value}"));
        Ok(())
    }
    fn log_artifact_file(&self, file: &Path, artifact_path: &str) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(file)?;
        self.0
            .lock()
            .unwrap()
            .push(format!("artifact {artifact_path}={text}"));
        Ok(())
    }
}

fn host() -> (ExecutorHost, Vec<CompiledExecutor>) {
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: None,
        memory_limit: 256 << 20,
        call_timeout: Duration::from_secs(5),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let host = ExecutorHost::new(runtime).unwrap();
    let builtin = host.builtin().unwrap();
    (host, builtin)
}

fn job(dir: &Path, command: &str) -> Job {
    Job {
        run_id: "r1".into(),
        experiment_id: "0".into(),
        tracking_uri: "http://127.0.0.1:1".into(),
        project_dir: dir.display().to_string(),
        entry_point: "main".into(),
        command: command.into(),
        parameters: vec![],
        environment: "local".into(),
        environment_spec: None,
        cache_dir: dir.display().to_string(),
        config: None,
    }
}

fn job_setup(dir: &Path, grants: Grants, cancel: Cancel) -> (Arc<Recorder>, JobSetup) {
    let recorder = Arc::new(Recorder::default());
    let setup = JobSetup {
        tracking: recorder.clone(),
        grants,
        output_dir: dir.join("out"),
        cancel,
    };
    (recorder, setup)
}

#[test]
fn the_builtin_executors_describe_themselves_and_the_policy_grants_process_to_two() {
    let (_host, builtin) = host();
    let names: Vec<(&str, Vec<String>)> = builtin
        .iter()
        .map(|e| (e.info.name.as_str(), e.info.environments.clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("local", vec!["local".to_string()]),
            ("virtualenv", vec!["python".to_string()]),
            ("wasi", vec!["wasi".to_string()]),
        ]
    );
    assert!(Grants::policy("local", true).process);
    assert!(Grants::policy("virtualenv", true).process);
    assert!(!Grants::policy("wasi", true).process);
    // A plugin from elsewhere that calls itself `local` gets nothing.
    assert!(!Grants::policy("local", false).process);
}

#[test]
fn an_executor_without_the_process_grant_cannot_start_a_process() {
    let (host, builtin) = host();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let local = builtin.iter().find(|e| e.info.name == "local").unwrap();
    let command = format!("touch {}", marker.display());
    let (_rec, setup) = job_setup(dir.path(), Grants::default(), Cancel::default());
    let error = host
        .run(local, &job(dir.path(), &command), setup)
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("executor 'local' may not start processes")
            && message.contains("'process' capability"),
        "{message}"
    );
    assert!(!marker.exists(), "the command ran without the grant");

    // With the grant, the same job runs, in the project directory, with MLflow's variables.
    let (_rec, setup) = job_setup(dir.path(), Grants { process: true }, Cancel::default());
    let command = "touch ran && echo \"$MLFLOW_RUN_ID $MLFLOW_EXPERIMENT_ID\" > ids && exit 3";
    let outcome = host.run(local, &job(dir.path(), command), setup).unwrap();
    assert_eq!(outcome.exit_code, Some(3));
    assert!(marker.exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ids")).unwrap(),
        "r1 0\n"
    );
}

#[test]
fn cancelling_stops_the_process_group() {
    let (host, builtin) = host();
    let dir = tempfile::tempdir().unwrap();
    let local = builtin.iter().find(|e| e.info.name == "local").unwrap();
    let cancel = Cancel::default();
    let (_rec, setup) = job_setup(dir.path(), Grants { process: true }, cancel.clone());
    let stopper = cancel_after(&cancel, Duration::from_millis(500));
    let started = Instant::now();
    // The grandchild (the first sleep) is in the group too: it is stopped with the child.
    let error = host
        .run(
            local,
            &job(dir.path(), "sleep 30 & echo $! > pid; sleep 30; wait"),
            setup,
        )
        .unwrap_err();
    stopper.join().unwrap();
    assert!(cancel.is_cancelled());
    assert!(
        format!("{error:#}").contains("stopped by the user"),
        "{error:#}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // Gone, or a zombie waiting for its reaper: either way no longer running.
        match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
            Err(_) => break,
            Ok(stat) if stat.contains(") Z ") => break,
            Ok(stat) => assert!(Instant::now() < deadline, "still running: {stat}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_wasi_executor_refuses_host_commands() {
    let (host, builtin) = host();
    let dir = tempfile::tempdir().unwrap();
    let wasi = builtin.iter().find(|e| e.info.name == "wasi").unwrap();
    let (_rec, setup) = job_setup(dir.path(), Grants::policy("wasi", true), Cancel::default());
    let error = host
        .run(wasi, &job(dir.path(), "python train.py"), setup)
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("runs .wasm programs, and the command starts with 'python'"),
        "{error:#}"
    );
    // A program path that leaves the project is refused by the host.
    let (_rec, setup) = job_setup(dir.path(), Grants::policy("wasi", true), Cancel::default());
    let error = host
        .run(wasi, &job(dir.path(), "../escape.wasm"), setup)
        .unwrap_err();
    assert!(format!("{error:#}").contains("escape.wasm"), "{error:#}");
}

/// A project whose entry point is the probe program.
fn probe_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        wasmflow_builtin_plugins::testing::PROBE_PROGRAM,
        dir.path().join("probe.wasm"),
    )
    .unwrap();
    std::fs::write(dir.path().join("MLproject"), "name: probe\n").unwrap();
    dir
}

#[test]
fn a_wasm_entry_point_runs_sandboxed_and_logs_through_tracking() {
    let (host, builtin) = host();
    let dir = probe_project();
    let out = tempfile::tempdir().unwrap();
    let wasi = builtin.iter().find(|e| e.info.name == "wasi").unwrap();
    let (recorder, setup) = job_setup(out.path(), Grants::policy("wasi", true), Cancel::default());
    let mut job = job(dir.path(), "probe.wasm --alpha '0.5 x'");
    job.environment = "wasi".into();
    let outcome = host.run(wasi, &job, setup).unwrap();
    // The probe exits with 3, which WASI 0.2 carries as failure (1); it did not trap.
    assert_eq!(outcome.exit_code, Some(1));
    assert_eq!(
        outcome.message.as_deref(),
        Some("the program exited with status 1")
    );
    let logged = recorder.0.lock().unwrap().clone();
    let tag = |key: &str| {
        logged
            .iter()
            .find_map(|l| l.strip_prefix(&format!("tag probe.{key}=")))
            .unwrap_or_else(|| panic!("no tag probe.{key} in {logged:?}"))
            .to_string()
    };
    assert_eq!(tag("args"), "--alpha 0.5 x");
    assert_eq!(tag("read_project"), "name: probe");
    for key in [
        "write_project",
        "write_project_mount",
        "read_etc",
        "connect",
    ] {
        assert!(tag(key).starts_with("denied"), "{key}: {}", tag(key));
    }
    assert_eq!(tag("env_home"), "unset");
    assert_eq!(tag("env_run_id"), "r1");
    assert_eq!(tag("write_output"), "allowed");
    assert!(!dir.path().join("written.txt").exists());
    assert!(
        logged.contains(&"metric probe.metric=1.5@2".to_string()),
        "{logged:?}"
    );
    // The executor records the exact component and logs the output directory.
    let wasm = std::fs::read(dir.path().join("probe.wasm")).unwrap();
    let sha: String = sha2::Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        logged.contains(&format!("tag wasmflow.wasi.sha256={sha}")),
        "{logged:?}"
    );
    assert!(
        logged.contains(&"artifact probe.txt=probed".to_string()),
        "{logged:?}"
    );
}

#[test]
fn cancelling_interrupts_a_spinning_wasm_entry_point() {
    let (host, builtin) = host();
    let dir = probe_project();
    let out = tempfile::tempdir().unwrap();
    let wasi = builtin.iter().find(|e| e.info.name == "wasi").unwrap();
    let cancel = Cancel::default();
    let (_rec, setup) = job_setup(out.path(), Grants::policy("wasi", true), cancel.clone());
    let stopper = cancel_after(&cancel, Duration::from_millis(500));
    let started = Instant::now();
    let mut job = job(dir.path(), "probe.wasm spin");
    job.environment = "wasi".into();
    let result = host.run(wasi, &job, setup);
    stopper.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let message = match result {
        Ok(outcome) => outcome.message.unwrap_or_default(),
        Err(e) => format!("{e:#}"),
    };
    assert!(message.contains("stopped by the user"), "{message}");
}

/// Cancels the job after `delay`, as Ctrl-C would.
fn cancel_after(cancel: &Cancel, delay: Duration) -> std::thread::JoinHandle<()> {
    let cancel = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        cancel.cancel();
    })
}
