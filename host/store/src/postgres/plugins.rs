//! [`PluginStore`] on PostgreSQL: the replicas' shared plugins (migration 0008).

use tokio_postgres::Row;
use wasmflow_core::{Error, Result};

use super::{PgStore, listen, pg_err};
use crate::plugins::{Inserted, PluginStore, StoredPlugin};

/// Taken around installs and removals ("plugins" in ASCII): a component is never removed while
/// another replica installs a plugin that names it.
const PLUGIN_LOCK: i64 = 0x0070_6c75_6769_6e73;

fn plugin(row: &Row) -> Result<StoredPlugin> {
    let loads: String = row.get(3);
    Ok(StoredPlugin {
        name: row.get(0),
        version: row.get(1),
        sha256: row.get(2),
        loads: serde_json::from_str(&loads).map_err(|e| {
            Error::internal(format!("invalid stored plugin flavors '{loads}': {e}"))
        })?,
        description: row.get(4),
    })
}

/// Tells the other replicas' listeners, when the transaction commits, that the plugins changed.
async fn notify_change(tx: &tokio_postgres::Transaction<'_>) -> Result<()> {
    tx.execute("SELECT pg_notify($1, '')", &[&listen::PLUGINS_CHANNEL])
        .await
        .map_err(pg_err)?;
    Ok(())
}

impl PluginStore for PgStore {
    fn plugin_changes(&self) -> Option<u64> {
        self.plugin_listener
            .get_or_init(|| self.pool.listen(listen::PLUGINS_CHANNEL))
            .changes()
    }

    fn list_plugins(&self) -> Result<Vec<StoredPlugin>> {
        self.read(async |tx| {
            let rows = tx
                .query(
                    "SELECT name, version, sha256, loads, description FROM wasmflow_plugins
                     ORDER BY name, version",
                    &[],
                )
                .await
                .map_err(pg_err)?;
            rows.iter().map(plugin).collect()
        })
    }

    fn plugin_component(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        self.read(async |tx| {
            let row = tx
                .query_opt(
                    "SELECT component FROM wasmflow_plugin_components WHERE sha256 = $1",
                    &[&sha256],
                )
                .await
                .map_err(pg_err)?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn insert_plugin(&self, p: &StoredPlugin, component: &[u8]) -> Result<Inserted> {
        let loads = serde_json::to_string(&p.loads)
            .map_err(|e| Error::internal(format!("cannot encode the plugin's flavors: {e}")))?;
        self.write(async |tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PLUGIN_LOCK])
                .await
                .map_err(pg_err)?;
            let existing = tx
                .query_opt(
                    "SELECT sha256 FROM wasmflow_plugins WHERE name = $1 AND version = $2",
                    &[&p.name, &p.version],
                )
                .await
                .map_err(pg_err)?;
            if let Some(row) = existing {
                let sha256: String = row.get(0);
                return Ok(if sha256 == p.sha256 {
                    Inserted::Stored
                } else {
                    Inserted::Conflict(sha256)
                });
            }
            tx.execute(
                "INSERT INTO wasmflow_plugin_components (sha256, component) VALUES ($1, $2)
                 ON CONFLICT (sha256) DO NOTHING",
                &[&p.sha256, &component],
            )
            .await
            .map_err(pg_err)?;
            tx.execute(
                "INSERT INTO wasmflow_plugins
                     (name, version, sha256, loads, description, installed_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &p.name,
                    &p.version,
                    &p.sha256,
                    &loads,
                    &p.description,
                    &crate::sqlite::now_ms(),
                ],
            )
            .await
            .map_err(pg_err)?;
            notify_change(tx).await?;
            Ok(Inserted::Stored)
        })
    }

    fn remove_plugins(&self, name: &str, version: Option<&str>) -> Result<Vec<StoredPlugin>> {
        self.write(async |tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PLUGIN_LOCK])
                .await
                .map_err(pg_err)?;
            let rows = tx
                .query(
                    "DELETE FROM wasmflow_plugins
                     WHERE name = $1 AND ($2::TEXT IS NULL OR version = $2)
                     RETURNING name, version, sha256, loads, description",
                    &[&name, &version],
                )
                .await
                .map_err(pg_err)?;
            tx.execute(
                "DELETE FROM wasmflow_plugin_components c
                 WHERE NOT EXISTS (SELECT 1 FROM wasmflow_plugins p WHERE p.sha256 = c.sha256)",
                &[],
            )
            .await
            .map_err(pg_err)?;
            if !rows.is_empty() {
                notify_change(tx).await?;
            }
            rows.iter().map(plugin).collect()
        })
    }
}
