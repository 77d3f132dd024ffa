//! Webhooks in PostgreSQL ([`WebhookStore`]). A webhook's row and its events change in one
//! transaction. PostgreSQL rows have no insertion order (SQLite's rowid), so webhooks created
//! in the same millisecond are ordered by id.

use std::collections::HashMap;

use tokio_postgres::Transaction;
use wasmflow_core::Result;
use wasmflow_core::paging::{Page, decode_token};

use super::{PgStore, pg_err};
use crate::sqlite::now_ms;
use crate::webhooks::{
    DELIVERY_COLUMNS, NewWebhook, WEBHOOK_COLUMNS, Webhook, WebhookDelivery, WebhookEvent,
    WebhookStatus, WebhookStore, WebhookUpdate, check_new_webhook, check_webhook_update,
    delivery_event, delivery_from, stored_event, webhook_from, webhook_not_found,
};

/// Webhooks from rows of `WEBHOOK_COLUMNS`, each with its events (one query for all).
async fn with_events(tx: &Transaction<'_>, rows: &[tokio_postgres::Row]) -> Result<Vec<Webhook>> {
    let mut hooks = rows
        .iter()
        .map(webhook_from)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pg_err)?;
    let ids: Vec<&str> = hooks.iter().map(|h| h.webhook_id.as_str()).collect();
    let mut events: HashMap<String, Vec<WebhookEvent>> = HashMap::new();
    for r in tx
        .query(
            "SELECT webhook_id, entity, action FROM webhook_events
             WHERE webhook_id = ANY($1) ORDER BY webhook_id, position",
            &[&ids],
        )
        .await
        .map_err(pg_err)?
    {
        let (entity, action): (&str, &str) = (r.get(1), r.get(2));
        events
            .entry(r.get(0))
            .or_default()
            .extend(stored_event(entity, action));
    }
    for hook in &mut hooks {
        hook.events = events.remove(&hook.webhook_id).unwrap_or_default();
    }
    Ok(hooks)
}

async fn load(tx: &Transaction<'_>, webhook_id: &str) -> Result<Webhook> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks
                 WHERE webhook_id = $1 AND deleted_timestamp IS NULL"
            ),
            &[&webhook_id],
        )
        .await
        .map_err(pg_err)?
        .ok_or_else(|| webhook_not_found(webhook_id))?;
    let mut one = with_events(tx, &[row]).await?;
    Ok(one.remove(0))
}

async fn put_events(tx: &Transaction<'_>, webhook_id: &str, events: &[WebhookEvent]) -> Result<()> {
    tx.execute(
        "DELETE FROM webhook_events WHERE webhook_id = $1",
        &[&webhook_id],
    )
    .await
    .map_err(pg_err)?;
    let entities: Vec<&str> = events.iter().map(|e| e.entity.as_str()).collect();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    // One statement for all; a repeated event keeps its first position, as SQLite's OR IGNORE.
    tx.execute(
        "INSERT INTO webhook_events (webhook_id, entity, action, position)
         SELECT $1, e.entity, e.action, e.position - 1
         FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS e (entity, action, position)
         ON CONFLICT DO NOTHING",
        &[&webhook_id, &entities, &actions],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

impl WebhookStore for PgStore {
    fn create_webhook(&self, new: NewWebhook) -> Result<Webhook> {
        let id = check_new_webhook(&new)?;
        self.write(async |tx| {
            tx.execute(
                "INSERT INTO webhooks (webhook_id, name, description, url, status, secret,
                                       creation_timestamp, last_updated_timestamp)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                &[
                    &id,
                    &new.name,
                    &new.description,
                    &new.url,
                    &new.status.as_str(),
                    &new.secret,
                    &now_ms(),
                ],
            )
            .await
            .map_err(pg_err)?;
            put_events(tx, &id, &new.events).await?;
            load(tx, &id).await
        })
    }

    fn get_webhook(&self, webhook_id: &str) -> Result<Webhook> {
        self.read(async |tx| load(tx, webhook_id).await)
    }

    fn list_webhooks(&self, max_results: usize, page_token: Option<&str>) -> Result<Page<Webhook>> {
        let offset = decode_token(page_token)?;
        self.read(async |tx| {
            let rows = tx
                .query(
                    &format!(
                        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE deleted_timestamp IS NULL
                         ORDER BY creation_timestamp DESC, webhook_id DESC LIMIT $1 OFFSET $2"
                    ),
                    &[&(max_results as i64 + 1), &(offset as i64)],
                )
                .await
                .map_err(pg_err)?;
            let hooks = with_events(tx, &rows).await?;
            Ok(Page::from_overfetched(hooks, offset, max_results))
        })
    }

    fn webhooks_for_event(&self, event: WebhookEvent) -> Result<Vec<Webhook>> {
        self.read(async |tx| {
            let rows = tx
                .query(
                    &format!(
                        "SELECT {WEBHOOK_COLUMNS} FROM webhooks
                         WHERE deleted_timestamp IS NULL AND webhook_id IN
                             (SELECT webhook_id FROM webhook_events
                              WHERE entity = $1 AND action = $2)
                         ORDER BY creation_timestamp DESC, webhook_id DESC"
                    ),
                    &[&event.entity.as_str(), &event.action.as_str()],
                )
                .await
                .map_err(pg_err)?;
            with_events(tx, &rows).await
        })
    }

    fn update_webhook(&self, webhook_id: &str, update: WebhookUpdate) -> Result<Webhook> {
        check_webhook_update(&update)?;
        self.write(async |tx| {
            load(tx, webhook_id).await?;
            // Only the fields given change; COALESCE keeps the others.
            tx.execute(
                "UPDATE webhooks SET name = COALESCE($2, name),
                     description = COALESCE($3, description), url = COALESCE($4, url),
                     secret = COALESCE($5, secret), status = COALESCE($6, status),
                     last_updated_timestamp = $7
                 WHERE webhook_id = $1",
                &[
                    &webhook_id,
                    &update.name,
                    &update.description,
                    &update.url,
                    &update.secret,
                    &update.status.map(WebhookStatus::as_str),
                    &now_ms(),
                ],
            )
            .await
            .map_err(pg_err)?;
            if let Some(events) = &update.events {
                put_events(tx, webhook_id, events).await?;
            }
            load(tx, webhook_id).await
        })
    }

    fn delete_webhook(&self, webhook_id: &str) -> Result<()> {
        self.write(async |tx| {
            load(tx, webhook_id).await?;
            tx.execute(
                "UPDATE webhooks SET deleted_timestamp = $2, last_updated_timestamp = $2
                 WHERE webhook_id = $1",
                &[&webhook_id, &now_ms()],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn record_webhook_delivery(&self, d: WebhookDelivery) -> Result<()> {
        let (entity, action) = delivery_event(&d);
        self.write(async |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (delivery_id) DO UPDATE SET webhook_id = excluded.webhook_id,
                         entity = excluded.entity, action = excluded.action,
                         timestamp = excluded.timestamp, attempts = excluded.attempts,
                         success = excluded.success, response_status = excluded.response_status,
                         error = excluded.error, duration_ms = excluded.duration_ms"
                ),
                &[
                    &d.delivery_id,
                    &d.webhook_id,
                    &entity,
                    &action,
                    &d.timestamp,
                    &i64::from(d.attempts),
                    &i64::from(d.success),
                    &d.response_status.map(i64::from),
                    &d.error,
                    &d.duration_ms,
                ],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn webhook_deliveries(&self, webhook_id: &str, limit: usize) -> Result<Vec<WebhookDelivery>> {
        self.read(async |tx| {
            let rows = tx
                .query(
                    &format!(
                        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1
                         ORDER BY timestamp DESC, delivery_id DESC LIMIT $2"
                    ),
                    &[&webhook_id, &(limit as i64)],
                )
                .await
                .map_err(pg_err)?;
            rows.iter()
                .map(delivery_from)
                .collect::<std::result::Result<_, _>>()
                .map_err(pg_err)
        })
    }
}
