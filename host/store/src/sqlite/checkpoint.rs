//! WAL checkpoints on a thread of their own, so the writer thread (the one serial stage of every
//! write) does not copy the log into the database file.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the threshold, on the
//! committing connection: under OTLP ingest that was the writer thread writing every page twice
//! (once to the WAL, once to the database file) plus two fsyncs a checkpoint, a third of its CPU
//! a span. Here the writer's connection has no automatic checkpoint; its WAL hook records the
//! log's length after each commit, and past [`Thresholds::start`] frames a checkpointer thread,
//! on its own connection, copies the log with PASSIVE checkpoints (which never block the
//! writer), pass after pass until what is left is small. The log only starts over from its
//! beginning (instead of growing) when a write transaction begins with every frame copied, so
//! the writer itself copies the last few ([`Thresholds::catch_up`]) frames, which then costs it
//! little. If the checkpointer falls behind, at [`Thresholds::limit`] frames the writer waits
//! for it and checkpoints itself: the log is bounded as it was with the automatic checkpoint.
//!
//! Durability is unchanged: a commit is in the WAL (written to the OS) before it is acknowledged
//! whoever copies it later, and a checkpoint never drops a frame it has not copied.

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;

use rusqlite::Connection;
use wasmflow_core::{Error, Result};

use super::sql_err;

/// When checkpoints run, in WAL frames (4 KiB pages).
#[derive(Clone, Copy)]
pub(super) struct Thresholds {
    /// The WAL length past which the checkpointer starts.
    start: i64,
    /// How many frames left uncopied the writer copies itself, so that the log starts over.
    catch_up: i64,
    /// The WAL length at which the writer waits for the checkpointer and checkpoints itself.
    limit: i64,
}

impl Thresholds {
    /// 64 MiB to start, the automatic checkpoint's threshold before, so that large batches
    /// still rarely meet a checkpoint; at most 256 MiB of log. Under sustained OTLP ingest
    /// (the bench's 4 generators) the checkpointer caught up at about twice `start`.
    pub(super) const STORE: Self = Self {
        start: 16384,
        catch_up: 1024,
        limit: 4 * 16384,
    };
}

thread_local! {
    /// The WAL length after the writer thread's last commit, from the connection's WAL hook,
    /// which takes a plain function: the writer thread is the only one committing on it.
    static WAL_FRAMES: Cell<i64> = const { Cell::new(0) };
}

/// What the writer and the checkpointer share.
struct Shared {
    /// Held for the length of a checkpoint, whoever runs it.
    running: Mutex<()>,
    /// The WAL length after the writer's last commit.
    frames: AtomicI64,
    /// The log length and the frames copied of the last checkpoint: `(log << 32) | copied`.
    last: AtomicI64,
    thresholds: Thresholds,
}

impl Shared {
    fn record(&self, (log, copied): (i64, i64)) {
        if log >= 0 && copied >= 0 {
            self.last.store((log << 32) | copied, Ordering::Relaxed);
        }
    }

    /// Frames of the current log not known to be copied.
    fn uncopied(&self, frames: i64) -> i64 {
        let last = self.last.load(Ordering::Relaxed);
        let (log, copied) = (last >> 32, last & 0xffff_ffff);
        if log > frames {
            // That checkpoint was of the log before it started over.
            self.last.store(0, Ordering::Relaxed);
            return frames;
        }
        frames - copied
    }
}

/// The writer's side: call [`Checkpoints::after_commit`] after each commit.
pub(super) struct Checkpoints {
    shared: Arc<Shared>,
    wake: SyncSender<()>,
}

impl Checkpoints {
    /// Turns off `writer`'s automatic checkpoint, installs its WAL hook, and starts the
    /// checkpointer thread on a connection of its own to `path`. The thread ends when the
    /// returned value is dropped.
    pub(super) fn start(writer: &Connection, path: &Path, thresholds: Thresholds) -> Result<Self> {
        let conn = Connection::open(path).map_err(sql_err)?;
        // The fsyncs a checkpoint makes depend on the connection running it: as the writer's.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_err)?;
        // Replaces the hook `wal_autocheckpoint` installs: no automatic checkpoint any more.
        writer.wal_hook(Some(|_, frames| {
            WAL_FRAMES.with(|f| f.set(i64::from(frames)));
            Ok(())
        }));
        let shared = Arc::new(Shared {
            running: Mutex::new(()),
            frames: AtomicI64::new(0),
            last: AtomicI64::new(0),
            thresholds,
        });
        let (wake, woken) = mpsc::sync_channel(1);
        let theirs = shared.clone();
        thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&conn, &theirs, &woken))
            .map_err(|e| Error::internal(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self { shared, wake })
    }

    /// After a commit on the writer's connection `conn` (on the writer thread).
    pub(super) fn after_commit(&self, conn: &Connection) {
        let frames = WAL_FRAMES.with(Cell::take);
        if frames == 0 {
            return; // nothing written
        }
        self.shared.frames.store(frames, Ordering::Relaxed);
        let t = self.shared.thresholds;
        if frames < t.start {
            return;
        }
        if frames >= t.limit {
            let _running = self.shared.running.lock();
            self.shared.record(checkpoint(conn));
        } else if self.shared.uncopied(frames) <= t.catch_up {
            // The checkpointer may be copying: then this is for a later commit.
            if let Ok(_running) = self.shared.running.try_lock() {
                self.shared.record(checkpoint(conn));
            }
        } else {
            // Full: the checkpointer is already woken.
            let _ = self.wake.try_send(());
        }
    }
}

fn checkpoint_loop(conn: &Connection, shared: &Shared, woken: &Receiver<()>) {
    while woken.recv().is_ok() {
        let mut before = -1;
        loop {
            let (log, copied) = {
                let _running = shared.running.lock();
                checkpoint(conn)
            };
            shared.record((log, copied));
            // Stop when the writer can copy the rest, or when a reader's snapshot holds frames
            // back (no progress): the next commit past the threshold wakes this thread again.
            let frames = shared.frames.load(Ordering::Relaxed);
            if copied < 0 || copied <= before || frames - copied <= shared.thresholds.catch_up {
                break;
            }
            before = copied;
        }
    }
}

/// A PASSIVE checkpoint on `conn`: the log's length and the frames copied, or -1 each when it
/// could not run (another process checkpointing).
fn checkpoint(conn: &Connection) -> (i64, i64) {
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    }) {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!("checkpoint failed: {e}");
            (-1, -1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sustained commits, as OTLP ingest makes them: the log starts over again and again
    /// (checkpoints keep up and the writer's last small copy lets it restart), it never grows
    /// past the limit by more than a commit, and every committed row is in the database.
    #[test]
    fn sustained_commits_restart_the_log_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = super::super::open_migrated(&path).unwrap();
        writer
            .execute_batch("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            .unwrap();
        let thresholds = Thresholds {
            start: 64,
            catch_up: 16,
            limit: 256,
        };
        let checkpoints = Checkpoints::start(&writer, &path, thresholds).unwrap();
        // 5 pages a commit.
        let body = vec![7u8; 5 * 4096];
        let (mut restarts, mut max, mut before) = (0, 0, 0);
        for i in 0..3000 {
            writer.execute_batch("BEGIN IMMEDIATE").unwrap();
            writer
                .execute("INSERT INTO blobs (id, body) VALUES (?1, ?2)", (i, &body))
                .unwrap();
            writer.execute_batch("COMMIT").unwrap();
            checkpoints.after_commit(&writer);
            let frames = checkpoints.shared.frames.load(Ordering::Relaxed);
            restarts += usize::from(frames < before);
            max = max.max(frames);
            before = frames;
        }
        assert!(restarts >= 10, "the log restarted {restarts} times");
        assert!(max <= thresholds.limit + 8, "the log reached {max} frames");
        drop(checkpoints);
        let reader = Connection::open(&path).unwrap();
        let (rows, bytes): (i64, i64) = reader
            .query_row("SELECT COUNT(*), SUM(length(body)) FROM blobs", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((rows, bytes), (3000, 3000 * 5 * 4096));
        let check: String = reader
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
}
