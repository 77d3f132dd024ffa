//! PostgreSQL `LISTEN`/`NOTIFY` between replicas: a write that other replicas must see at once
//! (an installed or removed plugin) sends a notification on a channel in its transaction, which
//! PostgreSQL delivers when it commits; each replica keeps one connection of its own listening on
//! the channel and counts what arrives. Readers compare the count with the one they last saw
//! and re-read only when it moved, so the count stands in for polling the table.
//!
//! A notification sent while the listener was disconnected is lost, so every (re)connection
//! counts as a change too, and while the listener is down [`Listener::changes`] says so (`None`):
//! readers then fall back to re-reading on their own schedule.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_postgres::AsyncMessage;
use tokio_postgres::tls::MakeTlsConnect;

/// The channel installs and removals of plugins notify.
pub(crate) const PLUGINS_CHANNEL: &str = "wasmflow_plugins";

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// How often the listening connection is checked with an empty query: a connection whose peer
/// vanished without closing it (a cut network) is noticed within this and [`PING_TIMEOUT`].
const PING_EVERY: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// What one listening connection has heard.
#[derive(Default)]
pub(crate) struct Listener {
    changes: AtomicU64,
    live: AtomicBool,
}

impl Listener {
    /// How many changes were announced (or may have been missed: one per reconnection) since
    /// the listener started; `None` while it is not connected.
    pub(crate) fn changes(&self) -> Option<u64> {
        // Read `live` first: a count read while live is at least what a reader must compare.
        self.live
            .load(Ordering::Acquire)
            .then(|| self.changes.load(Ordering::Acquire))
    }

    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }
}

/// Starts listening on `channel` on `runtime`, reconnecting for as long as the runtime lives.
pub(crate) fn spawn<T>(
    runtime: &tokio::runtime::Handle,
    config: tokio_postgres::Config,
    tls: T,
    channel: &'static str,
    display_uri: Arc<str>,
) -> Arc<Listener>
where
    T: MakeTlsConnect<tokio_postgres::Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send,
    T::TlsConnect: Send,
    <T::TlsConnect as tokio_postgres::tls::TlsConnect<tokio_postgres::Socket>>::Future: Send,
{
    let listener = Arc::new(Listener::default());
    let state = listener.clone();
    runtime.spawn(async move {
        let mut first = true;
        loop {
            let outcome = listen_once(&config, tls.clone(), channel, &state).await;
            let was_live = state.live.swap(false, Ordering::AcqRel);
            // Logged once per outage, not once a second while the database is down.
            if was_live || first {
                tracing::warn!(
                    "not listening for {channel} notifications at '{display_uri}': {outcome}; \
                     connecting again every second, and re-reading meanwhile"
                );
            }
            first = false;
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    });
    listener
}

/// Connects, listens and counts notifications until the connection fails; says why it ended.
async fn listen_once<T>(
    config: &tokio_postgres::Config,
    tls: T,
    channel: &str,
    state: &Listener,
) -> String
where
    T: MakeTlsConnect<tokio_postgres::Socket>,
{
    let (client, mut connection) = match config.connect(tls).await {
        Ok(pair) => pair,
        Err(e) => return super::describe(&e),
    };
    // Polling the connection both runs the client's queries and yields the notifications.
    let drive = async {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => state.changed(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return super::describe(&e),
                None => return "the connection closed".to_string(),
            }
        }
    };
    let watch = async {
        if let Err(e) = client.batch_execute(&format!("LISTEN {channel}")).await {
            return super::describe(&e);
        }
        // Whatever was announced while no connection listened counts as a change.
        state.changed();
        state.live.store(true, Ordering::Release);
        tracing::info!("listening for {channel} notifications");
        loop {
            tokio::time::sleep(PING_EVERY).await;
            match tokio::time::timeout(PING_TIMEOUT, client.simple_query("")).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return super::describe(&e),
                Err(_) => {
                    return format!(
                        "no answer to a check within {} seconds",
                        PING_TIMEOUT.as_secs()
                    );
                }
            }
        }
    };
    tokio::select! {
        why = drive => why,
        why = watch => why,
    }
}
