//! Project executors: components implementing the `executor-plugin` world (plugins/sdk/wit/executor.wit)
//! that run one entry point of an MLflow Project on a run the host created. The host gives
//! them `tracking` on that run, `process` only where its policy grants it, and `programs`, which
//! runs a project's own `.wasm` entry point in a sandbox of the host's.

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::Level;
use crate::bindings::executor::wasmflow::plugin::process::OutputLine;
use crate::bindings::executor::wasmflow::plugin::programs::ProgramExit;
use crate::bindings::executor::{ExecutorInfo, ExecutorPlugin, ExecutorPluginPre, Job, Outcome};
use crate::runtime::Runtime;
use crate::sandbox::MemoryCap;

const EXECUTOR_EXPORT: &str = "wasmflow:plugin/executor@0.1.0";

/// Where a `.wasm` entry point sees its files.
pub const PROJECT_MOUNT: &str = "/project";
pub const OUTPUT_MOUNT: &str = "/output";

/// How long a stopped process group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// The run an executor logs on; implemented by the CLI over the local store or REST.
pub trait Tracking: Send + Sync {
    fn log_param(&self, key: &str, value: &str) -> Result<()>;
    fn log_metric(&self, key: &str, value: f64, step: i64) -> Result<()>;
    fn set_tag(&self, key: &str, value: &str) -> Result<()>;
    /// Stores one file as the run's artifact at `artifact_path` (relative, `/`-separated).
    fn log_artifact_file(&self, file: &Path, artifact_path: &str) -> Result<()>;
}

/// The capabilities the host's policy gives an executor beyond tracking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grants {
    /// May start host processes.
    pub process: bool,
}

impl Grants {
    /// The host's policy: the built-in `local` and `virtualenv` executors exist to run host
    /// commands; every other executor (the built-in `wasi` one included) gets nothing unless the
    /// user grants it.
    pub fn policy(name: &str, builtin: bool) -> Self {
        Self {
            process: builtin && matches!(name, "local" | "virtualenv"),
        }
    }
}

/// Stops a job from another thread (Ctrl-C): every process group it started gets SIGTERM, then
/// SIGKILL after a grace period, and a running `.wasm` program or executor is interrupted.
#[derive(Clone, Default)]
pub struct Cancel(Arc<CancelState>);

#[derive(Default)]
struct CancelState {
    cancelled: AtomicBool,
    groups: Mutex<HashSet<i32>>,
}

impl Cancel {
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        let groups: Vec<i32> = self.groups().iter().copied().collect();
        for group in &groups {
            signal_group(*group, rustix::process::Signal::TERM);
        }
        // Always, even with no group yet: one registered from now on gets only SIGTERM from
        // `register`, and must not be able to ignore it.
        let this = self.clone();
        std::thread::spawn(move || {
            std::thread::sleep(KILL_GRACE);
            for group in this.groups().iter() {
                signal_group(*group, rustix::process::Signal::KILL);
            }
        });
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        self.0.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, group: i32) {
        self.groups().insert(group);
        // A process started while the job was being stopped is stopped too.
        if self.is_cancelled() {
            signal_group(group, rustix::process::Signal::TERM);
        }
    }

    fn unregister(&self, group: i32) {
        self.groups().remove(&group);
    }
}

fn signal_group(group: i32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(group) {
        // The group may be gone already; nothing to do then.
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// What the host gives one job besides the job record.
pub struct JobSetup {
    pub tracking: Arc<dyn Tracking>,
    pub grants: Grants,
    /// Where a `.wasm` entry point's `/output` is; its files are the run's artifacts.
    pub output_dir: PathBuf,
    pub cancel: Cancel,
}

/// A compiled executor and what it says about itself.
#[derive(Clone)]
pub struct CompiledExecutor {
    pre: ExecutorPluginPre<ExecutorState>,
    pub info: ExecutorInfo,
    pub sha256: String,
    pub builtin: bool,
}

/// Compiles executors and runs jobs on them.
pub struct ExecutorHost {
    runtime: Arc<Runtime>,
    linker: Linker<ExecutorState>,
    program_linker: Arc<Linker<ProgramState>>,
}

impl ExecutorHost {
    pub fn new(runtime: Arc<Runtime>) -> Result<Self> {
        let engine = runtime.engine();
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from)?;
        ExecutorPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        let mut program_linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut program_linker).map_err(anyhow::Error::from)?;
        crate::bindings::program::TrainingProgram::add_to_linker::<_, HasSelf<_>>(
            &mut program_linker,
            |s| s,
        )
        .map_err(anyhow::Error::from)?;
        Ok(Self {
            runtime,
            linker,
            program_linker: Arc::new(program_linker),
        })
    }

    /// The executors built into the binary.
    pub fn builtin(&self) -> Result<Vec<CompiledExecutor>> {
        wasmflow_builtin_plugins::EXECUTORS
            .iter()
            .map(|builtin| {
                self.compile_hashed(
                    crate::runtime::Wasm::Builtin(builtin),
                    builtin.sha256,
                    builtin.name,
                    true,
                )
                .with_context(|| format!("built-in executor '{}'", builtin.name))
            })
            .collect()
    }

    /// Compiles an executor component and reads its `info`.
    pub fn compile(&self, wasm: &[u8], builtin: bool) -> Result<CompiledExecutor> {
        self.compile_hashed(
            wasm.into(),
            &crate::runtime::sha256_hex(wasm),
            "executor",
            builtin,
        )
    }

    fn compile_hashed(
        &self,
        wasm: crate::runtime::Wasm<'_>,
        sha256: &str,
        name: &str,
        builtin: bool,
    ) -> Result<CompiledExecutor> {
        let (component, sha256, _) = self.runtime.compile_component(wasm, sha256, name)?;
        let engine = self.runtime.engine();
        let exports: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        if !exports.iter().any(|e| e == EXECUTOR_EXPORT) {
            bail!(
                "the component does not export '{EXECUTOR_EXPORT}': it is not a project \
                 executor; build it against plugins/sdk/wit/executor.wit's `executor-plugin` world"
            );
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("the component does not fit the executor-plugin world")?;
        let pre = ExecutorPluginPre::new(pre)
            .map_err(anyhow::Error::from)
            .context("the component does not fit the executor-plugin world")?;
        let mut store = self.store("(loading)", None, &stdio_only())?;
        let bindings = pre
            .instantiate(&mut store)
            .map_err(anyhow::Error::from)
            .context("cannot instantiate the executor")?;
        let info = bindings
            .wasmflow_plugin_executor()
            .call_info(&mut store)
            .map_err(anyhow::Error::from)
            .context("the executor's info() failed")?;
        Ok(CompiledExecutor {
            pre,
            info,
            sha256,
            builtin,
        })
    }

    /// Runs `job` on `executor` until it ends. The executor's stdout and stderr are this
    /// process's. An `Err` is an executor that trapped or could not start the job.
    pub fn run(&self, executor: &CompiledExecutor, job: &Job, setup: JobSetup) -> Result<Outcome> {
        let name = executor.info.name.as_str();
        let project_dir = Path::new(&job.project_dir)
            .canonicalize()
            .with_context(|| format!("bad project directory '{}'", job.project_dir))?;
        std::fs::create_dir_all(&setup.output_dir).with_context(|| {
            format!(
                "cannot create the output directory '{}'",
                setup.output_dir.display()
            )
        })?;
        let output_dir = setup.output_dir.canonicalize()?;
        let context = Arc::new(JobContext {
            plugin: name.into(),
            grants: setup.grants,
            tracking: setup.tracking,
            project_dir,
            output_dir,
            cancel: setup.cancel,
            runtime: self.runtime.clone(),
            program_linker: self.program_linker.clone(),
        });
        let mut store = self.store(name, Some(context.clone()), &context.cancel)?;
        let bindings = executor
            .pre
            .instantiate(&mut store)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot instantiate the executor '{name}'"))?;
        let result = bindings
            .wasmflow_plugin_executor()
            .call_run(&mut store, job)
            .map_err(|e| stopped_or(e, &context.cancel))
            .with_context(|| format!("the executor '{name}' failed"))?;
        result.map_err(|message| anyhow::anyhow!("executor '{name}': {message}"))
    }

    fn store(
        &self,
        plugin: &str,
        job: Option<Arc<JobContext>>,
        cancel: &Cancel,
    ) -> Result<Store<ExecutorState>> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout()
            .inherit_stderr()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        let state = ExecutorState {
            plugin: plugin.into(),
            wasi: wasi.build(),
            table: ResourceTable::new(),
            memory: MemoryCap::new(self.runtime.config().memory_limit),
            job,
        };
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| &mut state.memory);
        interrupt_on_cancel(&mut store, cancel.clone());
        Ok(store)
    }
}

/// A job runs as long as it needs; instead of the flavor calls' deadline, the epoch checks
/// whether the job was stopped.
fn interrupt_on_cancel<T>(store: &mut Store<T>, cancel: Cancel) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if cancel.is_cancelled() {
            Err(wasmtime::Error::msg("stopped by the user"))
        } else {
            Ok(UpdateDeadline::Continue(1))
        }
    });
}

fn stopped_or(error: wasmtime::Error, cancel: &Cancel) -> anyhow::Error {
    if cancel.is_cancelled() {
        anyhow::anyhow!("stopped by the user")
    } else {
        anyhow::Error::from(error)
    }
}

fn stdio_only() -> Cancel {
    Cancel::default()
}

/// Everything a job's host calls need; shared by the executor and the programs it runs.
struct JobContext {
    plugin: Arc<str>,
    grants: Grants,
    tracking: Arc<dyn Tracking>,
    project_dir: PathBuf,
    output_dir: PathBuf,
    cancel: Cancel,
    runtime: Arc<Runtime>,
    program_linker: Arc<Linker<ProgramState>>,
}

/// The store data of an executor instance.
pub struct ExecutorState {
    plugin: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    /// None while the host only reads the executor's `info`.
    job: Option<Arc<JobContext>>,
}

impl ExecutorState {
    fn job(&self) -> Result<&Arc<JobContext>, String> {
        self.job
            .as_ref()
            .ok_or_else(|| "there is no job: only run() may use the host's services".into())
    }
}

impl WasiView for ExecutorState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl crate::bindings::wasmflow::plugin::host::Host for ExecutorState {
    fn log(&mut self, level: Level, message: String) {
        crate::sandbox::log(&self.plugin, level, &message);
    }
}

use crate::bindings::executor::wasmflow::plugin::{process, programs, tracking};

impl JobContext {
    fn log_artifact(&self, local_path: &str, artifact_path: Option<&str>) -> Result<()> {
        let path = Path::new(local_path)
            .canonicalize()
            .with_context(|| format!("cannot log '{local_path}'"))?;
        if !path.starts_with(&self.project_dir) && !path.starts_with(&self.output_dir) {
            bail!(
                "'{local_path}' is outside the project and output directories; only their files \
                 can be logged"
            );
        }
        let base = artifact_path.unwrap_or("").trim_matches('/');
        if !base.is_empty()
            && !Path::new(base)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            bail!("invalid artifact path '{base}': it must be a relative path of plain names");
        }
        let join = |rel: &str| {
            if base.is_empty() {
                rel.to_string()
            } else {
                format!("{base}/{rel}")
            }
        };
        if path.is_file() {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            return self.tracking.log_artifact_file(&path, &join(&name));
        }
        let mut files = Vec::new();
        collect_files(&path, &mut files)?;
        for file in files {
            let rel = file.strip_prefix(&path).unwrap_or(&file);
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            self.tracking
                .log_artifact_file(&file, &join(&rel.join("/")))?;
        }
        Ok(())
    }

    fn start(
        &self,
        program: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<ChildProcess, String> {
        if !self.grants.process {
            return Err(format!(
                "executor '{}' may not start processes: the host's policy does not grant it \
                 the 'process' capability (refused to start '{program}')",
                self.plugin
            ));
        }
        if self.cancel.is_cancelled() {
            return Err("the job was stopped".into());
        }
        ChildProcess::start(program, args, env, &self.project_dir, self.cancel.clone())
            .map_err(|e| format!("{e:#}"))
    }

    fn run_program(
        self: &Arc<Self>,
        program: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<ProgramExit> {
        let path = self
            .project_dir
            .join(program)
            .canonicalize()
            .with_context(|| format!("no program '{program}' in the project"))?;
        if !path.starts_with(&self.project_dir) {
            bail!("the program '{program}' is outside the project directory");
        }
        let wasm =
            std::fs::read(&path).with_context(|| format!("cannot read '{}'", path.display()))?;
        let (component, sha256, _) = self
            .runtime
            .compile_component(&wasm, &crate::runtime::sha256_hex(&wasm), program)
            .with_context(|| format!("'{program}' is not a WebAssembly component"))?;
        let mut wasi = WasiCtx::builder();
        let argv: Vec<&str> = std::iter::once(program)
            .chain(args.iter().map(String::as_str))
            .collect();
        wasi.inherit_stdout()
            .inherit_stderr()
            .args(&argv)
            .envs(env)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        for (host, guest, perms) in [
            (&self.project_dir, ".", FsPerms::ReadOnly),
            (&self.project_dir, PROJECT_MOUNT, FsPerms::ReadOnly),
            (&self.output_dir, OUTPUT_MOUNT, FsPerms::ReadWrite),
        ] {
            wasi.preopened_dir(host, guest, perms)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot mount '{}'", host.display()))?;
        }
        let state = ProgramState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            memory: MemoryCap::new(self.runtime.config().memory_limit),
            job: self.clone(),
        };
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| &mut state.memory);
        interrupt_on_cancel(&mut store, self.cancel.clone());
        let command = wasmtime_wasi::p2::bindings::sync::Command::instantiate(
            &mut store,
            &component,
            &self.program_linker,
        )
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!("'{program}' is not a WASI command that wasmflow can run (it may only import WASI and wasmflow:plugin/tracking)")
        })?;
        let (exit_code, error) = match command.wasi_cli_run().call_run(&mut store) {
            Ok(Ok(())) => (0, None),
            Ok(Err(())) => (1, None),
            Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => (exit.0, None),
                None if self.cancel.is_cancelled() => (130, Some("stopped by the user".into())),
                None => (1, Some(format!("'{program}' trapped: {e:#}"))),
            },
        };
        Ok(ProgramExit {
            exit_code,
            sha256,
            output_dir: self.output_dir.display().to_string(),
            error,
        })
    }
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read '{}'", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(&path, files)?;
        } else if kind.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

/// Implements `tracking` for a store whose data can reach the job.
macro_rules! tracking_host {
    ($state:ty, $job:expr) => {
        impl tracking::Host for $state {
            fn log_param(&mut self, key: String, value: String) -> Result<(), String> {
                let job = $job(self)?;
                job.tracking
                    .log_param(&key, &value)
                    .map_err(|e| format!("{e:#}"))
            }

            fn log_metric(&mut self, key: String, value: f64, step: i64) -> Result<(), String> {
                let job = $job(self)?;
                job.tracking
                    .log_metric(&key, value, step)
                    .map_err(|e| format!("{e:#}"))
            }

            fn set_tag(&mut self, key: String, value: String) -> Result<(), String> {
                let job = $job(self)?;
                job.tracking
                    .set_tag(&key, &value)
                    .map_err(|e| format!("{e:#}"))
            }

            fn log_artifact(
                &mut self,
                local_path: String,
                artifact_path: Option<String>,
            ) -> Result<(), String> {
                let job = $job(self)?;
                job.log_artifact(&local_path, artifact_path.as_deref())
                    .map_err(|e| format!("{e:#}"))
            }
        }
    };
}

tracking_host!(ExecutorState, |s: &ExecutorState| s.job().cloned());
tracking_host!(ProgramState, |s: &ProgramState| Ok::<_, String>(
    s.job.clone()
));

impl process::Host for ExecutorState {
    fn start(
        &mut self,
        program: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Result<Resource<ChildProcess>, String> {
        let child = self.job()?.start(&program, &args, &env)?;
        self.table
            .push(child)
            .map_err(|e| format!("cannot keep the child: {e}"))
    }
}

impl process::HostChild for ExecutorState {
    fn next_line(&mut self, child: Resource<ChildProcess>) -> Option<OutputLine> {
        let child = self.table.get(&child).ok()?;
        child.lines.recv().ok()
    }

    fn wait(&mut self, child: Resource<ChildProcess>) -> Option<i32> {
        self.table.get_mut(&child).ok()?.wait()
    }

    fn kill(&mut self, child: Resource<ChildProcess>) {
        if let Ok(child) = self.table.get_mut(&child) {
            child.kill();
        }
    }

    fn drop(&mut self, child: Resource<ChildProcess>) -> wasmtime::Result<()> {
        // Dropping it stops the process group (see `Drop for ChildProcess`).
        self.table.delete(child)?;
        Ok(())
    }
}

impl programs::Host for ExecutorState {
    fn run(
        &mut self,
        program: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Result<ProgramExit, String> {
        self.job()?
            .clone()
            .run_program(&program, &args, &env)
            .map_err(|e| format!("{e:#}"))
    }
}

/// A host process an executor started, in a process group of its own.
pub struct ChildProcess {
    child: std::process::Child,
    lines: mpsc::Receiver<OutputLine>,
    group: i32,
    cancel: Cancel,
    /// Set once waited for: the exit code, or None for a signal.
    status: Option<Option<i32>>,
}

impl ChildProcess {
    fn start(
        program: &str,
        args: &[String],
        env: &[(String, String)],
        dir: &Path,
        cancel: Cancel,
    ) -> Result<Self> {
        use std::os::unix::process::CommandExt as _;
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: a terminal's Ctrl-C reaches the host, which stops the group
            // (grandchildren included) and records the run as KILLED.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start '{program}'"))?;
        let group = child.id() as i32;
        cancel.register(group);
        let (sender, lines) = mpsc::channel();
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for (stream, is_stdout) in [(stdout, true), (stderr, false)] {
            let Some(stream) = stream else { continue };
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).split(b'\n') {
                    let Ok(mut line) = line else { break };
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    let line = String::from_utf8_lossy(&line).into_owned();
                    let line = if is_stdout {
                        OutputLine::Stdout(line)
                    } else {
                        OutputLine::Stderr(line)
                    };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Self {
            child,
            lines,
            group,
            cancel,
            status: None,
        })
    }

    fn wait(&mut self) -> Option<i32> {
        if let Some(status) = self.status {
            return status;
        }
        let status = self.child.wait().ok().and_then(|s| s.code());
        self.status = Some(status);
        self.cancel.unregister(self.group);
        status
    }

    fn kill(&mut self) {
        // Once reaped, the group id may already belong to another process group.
        if self.status.is_none() {
            signal_group(self.group, rustix::process::Signal::KILL);
        }
    }
}

/// However the executor ends (returned, trapped, or never dropped its handle), its processes
/// do not outlive the run.
impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.kill();
            self.wait();
        }
    }
}

/// The store data of a project's `.wasm` entry point.
pub struct ProgramState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    job: Arc<JobContext>,
}

impl WasiView for ProgramState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
