//! What a plugin instance may touch: a WASI context with no network, no environment and no
//! files but the model directory (read-only at `/model`), a memory cap, and its stdout and
//! stderr sent to the server log.

use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::Level;

/// Where the model's files appear inside the sandbox.
pub const MODEL_MOUNT: &str = "/model";

/// The store data of one plugin instance.
pub struct PluginState {
    pub plugin: Arc<str>,
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub memory: MemoryCap,
    /// When the current call must end (set with the epoch deadline by `Runtime::arm_deadline`).
    pub(crate) deadline: Instant,
}

impl PluginState {
    /// A sandbox for `plugin`, with `model_dir` mounted read-only when given.
    pub fn new(plugin: Arc<str>, model_dir: Option<&Path>, memory_limit: usize) -> Result<Self> {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(LogSink::new(plugin.clone(), "stdout"))
            .stderr(LogSink::new(plugin.clone(), "stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        if let Some(dir) = model_dir {
            wasi.preopened_dir(dir, MODEL_MOUNT, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                // The model directory is named by the plugin's mount: its place on the host
                // stays out of errors that reach clients.
                .with_context(|| format!("cannot mount the model directory at {MODEL_MOUNT}"))?;
        }
        Ok(Self {
            plugin,
            wasi: wasi.build(),
            table: ResourceTable::new(),
            memory: MemoryCap::new(memory_limit),
            deadline: Instant::now(),
        })
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl crate::bindings::wasmflow::plugin::types::Host for PluginState {}

impl crate::bindings::wasmflow::plugin::host::Host for PluginState {
    fn log(&mut self, level: Level, message: String) {
        log(&self.plugin, level, &message);
    }
}

/// A plugin's `host.log` call, as a server log event naming the plugin.
pub(crate) fn log(plugin: &str, level: Level, message: &str) {
    match level {
        Level::Trace => tracing::trace!(plugin, "{message}"),
        Level::Debug => tracing::debug!(plugin, "{message}"),
        Level::Info => tracing::info!(plugin, "{message}"),
        Level::Warn => tracing::warn!(plugin, "{message}"),
        Level::Error => tracing::error!(plugin, "{message}"),
    }
}

/// Caps an instance's memory (its linear memory plus what the host holds for it, such as the
/// tensor interface's layers) and remembers whether the cap was hit, so that the error can say
/// so rather than show a bare trap.
pub struct MemoryCap {
    limit: usize,
    pub exceeded: Option<usize>,
    /// Bytes of linear memory the instance holds, over all its memories: what a model costs
    /// a server that keeps it warm.
    pub used: usize,
    /// Bytes the host holds on the instance's behalf (freed with the instance).
    pub host_held: usize,
}

impl MemoryCap {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            exceeded: None,
            used: 0,
            host_held: 0,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes still free under the limit.
    pub(crate) fn available(&self) -> usize {
        self.limit
            .saturating_sub(self.used)
            .saturating_sub(self.host_held)
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired.saturating_add(self.host_held) > self.limit {
            self.exceeded = Some(desired.saturating_add(self.host_held));
            // An error (not `Ok(false)`) traps at once: a plugin that checks for failed growth
            // would otherwise go on with a broken allocator.
            wasmtime::bail!(
                "memory would grow to {} MiB, beyond the limit of {} MiB",
                desired >> 20,
                self.limit >> 20
            );
        }
        // Called for each memory's first allocation too (from 0), so the sum is the total.
        self.used += desired.saturating_sub(current);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Sends a plugin's stdout or stderr to the server log, one event per line. Output past
/// `BUDGET` bytes per instance is dropped so that a chatty plugin cannot flood the log.
#[derive(Clone)]
struct LogSink {
    plugin: Arc<str>,
    stream: &'static str,
    state: Arc<Mutex<SinkState>>,
}

#[derive(Default)]
struct SinkState {
    line: Vec<u8>,
    written: usize,
    truncated: bool,
}

const BUDGET: usize = 1 << 20;
const MAX_LINE: usize = 8 << 10;

impl LogSink {
    fn new(plugin: Arc<str>, stream: &'static str) -> Self {
        Self {
            plugin,
            stream,
            state: Arc::default(),
        }
    }

    fn write(&self, bytes: &[u8]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.written >= BUDGET {
            if !state.truncated {
                state.truncated = true;
                tracing::warn!(
                    plugin = &*self.plugin,
                    "{} beyond 1 MiB dropped",
                    self.stream
                );
            }
            return;
        }
        state.written += bytes.len();
        for &byte in bytes {
            if byte == b'\n' || state.line.len() >= MAX_LINE {
                self.emit(&state.line);
                state.line.clear();
                if byte == b'\n' {
                    continue;
                }
            }
            state.line.push(byte);
        }
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        tracing::info!(plugin = &*self.plugin, stream = self.stream, "{line}");
    }
}

impl Drop for SinkState {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            tracing::info!("{}", String::from_utf8_lossy(&self.line));
        }
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for LogSink {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        LogSink::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogSink {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        LogSink::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
