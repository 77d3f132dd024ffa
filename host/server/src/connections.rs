//! The accept loop of both servers (`wasmflow server` and `wasmflow models serve`), with the
//! bounds `axum::serve` lacks: a connection must send each request's headers within the idle
//! timeout (counted from when it opened or its previous answer was sent, so idle keep-alive
//! connections and slowloris clients are both closed), at most `max_connections` are open at
//! once (past it a new connection gets a 503 in MLflow's error shape and is closed), and
//! accepted sockets have TCP_NODELAY (without it a small answer on a kept-alive connection
//! waits ~40 ms for the client's delayed ACK). A server that has answered no request for a
//! while gives its code pages back (`--idle-release`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use wasmflow_core::ErrorCode;

/// How connections and requests are bounded; shared by both servers' command lines.
#[derive(clap::Args, Clone, Debug)]
pub struct LimitArgs {
    /// Seconds a connection may take to send a request's headers, counted from when it opened
    /// or its previous answer was sent: idle keep-alive connections and clients that send
    /// headers slowly are closed after it.
    #[arg(long, env = "WASMFLOW_IDLE_TIMEOUT", default_value_t = 30.0)]
    pub idle_timeout: f64,
    /// The most connections open at once; past it a new connection is answered 503 and closed.
    /// Defaults to 1,024, or fewer when the open-file limit is lower (half of it).
    #[arg(long, env = "WASMFLOW_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// The most rows (or tensor elements along the first axis) one scoring request may hold;
    /// larger requests are answered 400 before they are parsed into memory.
    #[arg(long, env = "WASMFLOW_MAX_SCORING_ROWS", default_value_t = wasmflow_serving::DEFAULT_MAX_ROWS)]
    pub max_scoring_rows: usize,
    /// Seconds without a request (health checks aside) after which the server asks the kernel
    /// to reclaim the pages of its code and of its plugins' compiled code: they are read back
    /// when the next request needs them, which makes that request slower. 0: never.
    #[arg(long, env = "WASMFLOW_IDLE_RELEASE", default_value_t = 60.0)]
    pub idle_release: f64,
}

/// The validated bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub idle_release: Option<Duration>,
}

impl LimitArgs {
    /// The connection bounds; sets the scoring row limit of this process.
    pub fn limits(&self) -> anyhow::Result<Limits> {
        anyhow::ensure!(
            self.max_scoring_rows > 0,
            "invalid --max-scoring-rows '0': it must be at least 1"
        );
        wasmflow_serving::set_max_rows(self.max_scoring_rows);
        anyhow::ensure!(
            self.idle_timeout > 0.0 && self.idle_timeout.is_finite(),
            "invalid --idle-timeout '{}': it must be a positive number of seconds",
            self.idle_timeout
        );
        let max_connections = match self.max_connections {
            Some(n) if n == 0 || n > 1_000_000 => {
                anyhow::bail!("invalid --max-connections '{n}': it must be 1 to 1000000")
            }
            Some(n) => n,
            None => default_max_connections(),
        };
        anyhow::ensure!(
            self.idle_release >= 0.0 && self.idle_release.is_finite(),
            "invalid --idle-release '{}': it must be 0 (never) or a positive number of seconds",
            self.idle_release
        );
        Ok(Limits {
            idle_timeout: Duration::from_secs_f64(self.idle_timeout),
            max_connections,
            idle_release: (self.idle_release > 0.0)
                .then(|| Duration::from_secs_f64(self.idle_release)),
        })
    }
}

/// 1,024, or half the open-file limit when that is lower: the store, the artifacts and the
/// plugins need descriptors of their own, and running out of them locks every client out.
fn default_max_connections() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    match soft {
        Some(limit) => (limit as usize / 2).clamp(16, 1024),
        None => 1024,
    }
}

/// Runtimes of one worker thread each that connections are spread over, every connection
/// staying on one of them for its life (`models serve`). On one multi-threaded runtime, as
/// `wasmflow server` has, a kept-alive connection's task moves between the workers and each
/// short request wakes more than one thread (measured with one connection: 1.9 context switches
/// and 1.7 futex calls a 1-row request on two workers, against 1 and 1 on one worker). Each of
/// these runtimes is still multi-threaded in tokio's sense, so a plugin's WASI call that must
/// wait can hand its worker over (`block_in_place`) as on the shared runtime.
pub struct ConnectionRuntimes {
    runtimes: Vec<(tokio::runtime::Runtime, Arc<AtomicU64>)>,
}

impl ConnectionRuntimes {
    /// `count` runtimes (at least one).
    pub fn new(count: usize) -> std::io::Result<Self> {
        let runtimes = (0..count.max(1))
            .map(|i| {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name(format!("connections-{i}"))
                    .enable_all()
                    .build()?;
                Ok((runtime, Arc::new(AtomicU64::new(0))))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Self { runtimes })
    }

    /// The first runtime, on which the server's own tasks (accepting, loading) run.
    pub fn first(&self) -> &tokio::runtime::Runtime {
        &self.runtimes[0].0
    }

    /// The runtime with the fewest open connections, and its count to hold while one is open.
    fn least_busy(&self) -> (tokio::runtime::Handle, Arc<AtomicU64>) {
        let (runtime, open) = self
            .runtimes
            .iter()
            .min_by_key(|(_, open)| open.load(Ordering::Relaxed))
            .expect("at least one runtime");
        (runtime.handle().clone(), open.clone())
    }
}

/// Where accepted connections run: on the accepting runtime's workers, or each on one of
/// [`ConnectionRuntimes`].
#[derive(Clone, Copy)]
pub enum Placement<'a> {
    Shared,
    Pinned(&'a ConnectionRuntimes),
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the requests in flight
/// finish (idle connections close at once) before returning.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    placement: Placement<'_>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let requests = Arc::new(AtomicU64::new(0));
    let releaser = limits
        .idle_release
        .map(|after| tokio::spawn(release_when_idle(requests.clone(), after)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (EMFILE) and the like: wait for some to be freed
                    // rather than spin on the error.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY for {peer}: {e}");
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(
                "refused a connection from {peer}: {} connections are open (--max-connections)",
                limits.max_connections
            );
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        let connection = Connection {
            app: app.clone(),
            stop: stop_rx.clone(),
            requests: requests.clone(),
            idle_timeout: limits.idle_timeout,
            peer,
        };
        match placement {
            Placement::Shared => {
                tokio::spawn(connection.serve(stream, permit));
            }
            Placement::Pinned(runtimes) => {
                // Registered with the reactor of the runtime that serves it: the accepting
                // runtime's would wake its task from another thread on every request.
                let stream = match stream.into_std() {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::debug!("cannot hand over the connection from {peer}: {e}");
                        continue;
                    }
                };
                let (runtime, open) = runtimes.least_busy();
                let open = OpenConnection::count(open);
                runtime.spawn(async move {
                    let _open = open;
                    match TcpStream::from_std(stream) {
                        Ok(stream) => connection.serve(stream, permit).await,
                        Err(e) => {
                            tracing::debug!("cannot take over the connection from {peer}: {e}")
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    if let Some(releaser) = releaser {
        releaser.abort();
    }
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it ends: having them all back means all ended.
    let _all = permits
        .acquire_many(u32::try_from(limits.max_connections).unwrap_or(u32::MAX))
        .await
        .map_err(std::io::Error::other)?;
    Ok(())
}

/// One accepted connection's share of the server.
struct Connection {
    app: Router,
    stop: watch::Receiver<bool>,
    requests: Arc<AtomicU64>,
    idle_timeout: Duration,
    peer: std::net::SocketAddr,
}

impl Connection {
    /// Answers the connection's requests until it closes or the server stops; `permit` is
    /// its place under `--max-connections`.
    async fn serve(self, stream: TcpStream, permit: tokio::sync::OwnedSemaphorePermit) {
        let _permit = permit;
        let Self {
            app,
            mut stop,
            requests,
            idle_timeout,
            peer,
        } = self;
        let service = TowerToHyperService::new(app);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            if !matches!(request.uri().path(), "/ping" | "/health") {
                requests.fetch_add(1, Ordering::Relaxed);
            }
            hyper::service::Service::call(&service, request)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(idle_timeout)
            .keep_alive(true);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut connection = std::pin::pin!(connection);
        let stopping = async {
            // A dropped sender means the server is stopping too.
            let _ = stop.wait_for(|stop| *stop).await;
        };
        tokio::select! {
            result = connection.as_mut() => log_end(result, peer),
            () = stopping => {
                connection.as_mut().graceful_shutdown();
                log_end(connection.await, peer);
            }
        }
    }
}

/// A connection counted open on its runtime until dropped.
struct OpenConnection(Arc<AtomicU64>);

impl OpenConnection {
    fn count(open: Arc<AtomicU64>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Gives the process's code pages back (`wasmflow_runtime::release_file_pages`) each time no
/// request but health checks has come for `after`: an idle server's resident set is nearly all
/// such pages. Health checks do not count, so that an orchestrator probing every few seconds
/// does not keep them resident; a probe touches little code, and only that comes back.
async fn release_when_idle(requests: Arc<AtomicU64>, after: Duration) {
    let mut seen = requests.load(Ordering::Relaxed);
    let mut released = false;
    loop {
        tokio::time::sleep(after).await;
        let now = requests.load(Ordering::Relaxed);
        if now != seen {
            (seen, released) = (now, false);
            continue;
        }
        if released {
            continue;
        }
        released = true;
        let rss = tokio::task::spawn_blocking(|| {
            let before = wasmflow_runtime::resident_bytes();
            wasmflow_runtime::release_free_memory();
            wasmflow_runtime::release_file_pages();
            (before, wasmflow_runtime::resident_bytes())
        })
        .await;
        if let Ok((Some(before), Some(after_release))) = rss {
            tracing::debug!(
                "idle: gave back code pages, resident {:.1} -> {:.1} MiB",
                before as f64 / 1048576.0,
                after_release as f64 / 1048576.0
            );
        }
    }
}

fn log_end(result: Result<(), hyper::Error>, peer: std::net::SocketAddr) {
    match result {
        Ok(()) => {}
        Err(e) if e.is_timeout() => {
            tracing::debug!("closed the connection from {peer}: no request within the timeout")
        }
        Err(e) => tracing::debug!("connection from {peer} ended: {e}"),
    }
}

/// The answer to a connection past the limit, written without reading its request.
fn refusal_body(max_connections: usize) -> String {
    let body = crate::error::error_body(
        ErrorCode::TemporarilyUnavailable,
        format!(
            "the server has {max_connections} connections open, its limit \
             (--max-connections); try again later"
        ),
    )
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\
         x-content-type-options: nosniff\r\n\r\n{body}",
        body.len()
    )
}

async fn refuse(mut stream: TcpStream, max_connections: usize) {
    let answer = refusal_body(max_connections);
    // Bounded: a client that does not read cannot keep this socket open.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent until it closes: closing a socket with unread bytes sends
        // a reset, which can reach the client before the answer and destroy it.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_one_complete_http_answer_in_mlflows_shape() {
        let answer = refusal_body(7);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error_code"], "TEMPORARILY_UNAVAILABLE");
        assert!(json["message"].as_str().unwrap().contains("7 connections"));
    }

    #[test]
    fn limits_refuse_nonsense() {
        let args = |idle_timeout, max_connections| LimitArgs {
            idle_timeout,
            max_connections,
            max_scoring_rows: wasmflow_serving::DEFAULT_MAX_ROWS,
            idle_release: 60.0,
        };
        assert!(args(0.0, None).limits().is_err());
        assert!(args(f64::NAN, None).limits().is_err());
        assert!(args(1.0, Some(0)).limits().is_err());
        let limits = args(0.5, Some(3)).limits().unwrap();
        assert_eq!(limits.idle_timeout, Duration::from_millis(500));
        assert_eq!(limits.max_connections, 3);
        assert!((16..=1024).contains(&args(1.0, None).limits().unwrap().max_connections));
        assert_eq!(limits.idle_release, Some(Duration::from_secs(60)));
        let release = |idle_release| LimitArgs {
            idle_release,
            ..args(1.0, None)
        };
        assert_eq!(release(0.0).limits().unwrap().idle_release, None);
        assert!(release(-1.0).limits().is_err());
        assert!(release(f64::INFINITY).limits().is_err());
    }
}
