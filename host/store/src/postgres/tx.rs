//! One transaction per store call: [`PgStore::write`] commits what its body did, or nothing if
//! the body fails; [`PgStore::read`] sees one consistent snapshot, as SQLite's read transactions.
//! Bodies get deadpool's transaction, whose `prepare_cached` keeps statements per connection.
//! [`PgStore::autocommit`] runs reads that need neither outside a transaction.

use deadpool_postgres::Transaction;
use tokio_postgres::IsolationLevel;
use tokio_postgres::error::SqlState;
use wasmflow_core::Result;

use super::{PgStore, pg_err};

impl PgStore {
    /// Runs `body` in a read-write transaction and commits it; an error from the body rolls the
    /// whole call back (the transaction is dropped unfinished).
    pub(crate) fn write<T>(
        &self,
        body: impl AsyncFnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.pool.run(|conn| async move {
            let mut client = conn.client().await?;
            let tx = client.transaction().await.map_err(pg_err)?;
            let out = body(&tx).await?;
            tx.commit().await.map_err(pg_err)?;
            Ok(out)
        })
    }

    /// Runs `body` on a pooled connection outside any transaction: each statement is one of its
    /// own, with its own snapshot, as each statement of a read-committed transaction sees. For
    /// reads of several statements that need no single snapshot: it saves the round trips of
    /// BEGIN and COMMIT.
    pub(crate) fn autocommit<T>(
        &self,
        body: impl AsyncFnOnce(&deadpool_postgres::Client) -> Result<T>,
    ) -> Result<T> {
        self.pool.run(|conn| async move {
            let client = conn.client().await?;
            body(&client).await
        })
    }

    /// Runs `body` in a read-only transaction over one snapshot.
    pub(crate) fn read<T>(
        &self,
        body: impl AsyncFnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.pool.run(|conn| async move {
            let mut client = conn.client().await?;
            let tx = client
                .build_transaction()
                .read_only(true)
                .isolation_level(IsolationLevel::RepeatableRead)
                .start()
                .await
                .map_err(pg_err)?;
            let out = body(&tx).await?;
            tx.commit().await.map_err(pg_err)?;
            Ok(out)
        })
    }
}

/// Whether the statement broke a unique or primary key: another writer got there first.
pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}
