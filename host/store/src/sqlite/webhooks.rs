//! Webhooks in SQLite, and the [`WebhookStore`] implementation.

use rusqlite::{Connection, OptionalExtension, params};
use wasmflow_core::Result;
use wasmflow_core::paging::{Page, decode_token};

use super::{SqliteStore, now_ms, sql_err};
use crate::webhooks::{
    DELIVERY_COLUMNS, NewWebhook, WEBHOOK_COLUMNS, Webhook, WebhookDelivery, WebhookEvent,
    WebhookStatus, WebhookStore, WebhookUpdate, check_new_webhook, check_webhook_update,
    delivery_event, delivery_from, stored_event, webhook_from, webhook_not_found,
};

fn load_events(conn: &Connection, hook: &mut Webhook) -> Result<()> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT entity, action FROM webhook_events WHERE webhook_id = ?1 ORDER BY position",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([&hook.webhook_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(sql_err)?;
    hook.events.clear();
    for row in rows {
        let (entity, action) = row.map_err(sql_err)?;
        hook.events.extend(stored_event(&entity, &action));
    }
    Ok(())
}

fn load(conn: &Connection, webhook_id: &str) -> Result<Webhook> {
    let mut hook = conn
        .prepare_cached(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE webhook_id = ?1 AND deleted_timestamp IS NULL"
        ))
        .map_err(sql_err)?
        .query_row([webhook_id], |r| webhook_from(r))
        .optional()
        .map_err(sql_err)?
        .ok_or_else(|| webhook_not_found(webhook_id))?;
    load_events(conn, &mut hook)?;
    Ok(hook)
}

fn put_events(conn: &Connection, webhook_id: &str, events: &[WebhookEvent]) -> Result<()> {
    conn.prepare_cached("DELETE FROM webhook_events WHERE webhook_id = ?1")
        .map_err(sql_err)?
        .execute([webhook_id])
        .map_err(sql_err)?;
    let mut stmt = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO webhook_events (webhook_id, entity, action, position)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(sql_err)?;
    for (i, e) in events.iter().enumerate() {
        stmt.execute(params![
            webhook_id,
            e.entity.as_str(),
            e.action.as_str(),
            i as i64
        ])
        .map_err(sql_err)?;
    }
    Ok(())
}

fn create(conn: &Connection, id: &str, new: &NewWebhook) -> Result<Webhook> {
    let now = now_ms();
    conn.prepare_cached(
        "INSERT INTO webhooks (webhook_id, name, description, url, status, secret,
                               creation_timestamp, last_updated_timestamp)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )
    .map_err(sql_err)?
    .execute(params![
        id,
        new.name,
        new.description,
        new.url,
        new.status.as_str(),
        new.secret,
        now
    ])
    .map_err(sql_err)?;
    put_events(conn, id, &new.events)?;
    load(conn, id)
}

fn update(conn: &Connection, id: &str, u: &WebhookUpdate) -> Result<Webhook> {
    load(conn, id)?;
    let sets: [(&str, Option<&str>); 5] = [
        ("name", u.name.as_deref()),
        ("description", u.description.as_deref()),
        ("url", u.url.as_deref()),
        ("secret", u.secret.as_deref()),
        ("status", u.status.map(WebhookStatus::as_str)),
    ];
    for (column, value) in sets {
        if let Some(value) = value {
            conn.execute(
                &format!("UPDATE webhooks SET {column} = ?2 WHERE webhook_id = ?1"),
                params![id, value],
            )
            .map_err(sql_err)?;
        }
    }
    if let Some(events) = &u.events {
        put_events(conn, id, events)?;
    }
    conn.prepare_cached("UPDATE webhooks SET last_updated_timestamp = ?2 WHERE webhook_id = ?1")
        .map_err(sql_err)?
        .execute(params![id, now_ms()])
        .map_err(sql_err)?;
    load(conn, id)
}

impl WebhookStore for SqliteStore {
    fn create_webhook(&self, new: NewWebhook) -> Result<Webhook> {
        let id = check_new_webhook(&new)?;
        self.write(move |c| create(c, &id, &new))
    }

    fn get_webhook(&self, webhook_id: &str) -> Result<Webhook> {
        self.read(|c| load(c, webhook_id))
    }

    fn list_webhooks(&self, max_results: usize, page_token: Option<&str>) -> Result<Page<Webhook>> {
        let offset = decode_token(page_token)?;
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE deleted_timestamp IS NULL
                     ORDER BY creation_timestamp DESC, rowid DESC LIMIT ?1 OFFSET ?2"
                ))
                .map_err(sql_err)?;
            let mut hooks = stmt
                .query_map(params![max_results as i64 + 1, offset as i64], |r| {
                    webhook_from(r)
                })
                .map_err(sql_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql_err)?;
            for hook in &mut hooks {
                load_events(c, hook)?;
            }
            Ok(Page::from_overfetched(hooks, offset, max_results))
        })
    }

    fn webhooks_for_event(&self, event: WebhookEvent) -> Result<Vec<Webhook>> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT w.webhook_id, w.name, w.description, w.url, w.status, w.secret,
                            w.creation_timestamp, w.last_updated_timestamp
                     FROM webhooks w JOIN webhook_events e ON e.webhook_id = w.webhook_id
                     WHERE w.deleted_timestamp IS NULL AND e.entity = ?1 AND e.action = ?2
                     ORDER BY w.creation_timestamp DESC, w.rowid DESC",
                )
                .map_err(sql_err)?;
            let mut hooks = stmt
                .query_map(params![event.entity.as_str(), event.action.as_str()], |r| {
                    webhook_from(r)
                })
                .map_err(sql_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql_err)?;
            for hook in &mut hooks {
                load_events(c, hook)?;
            }
            Ok(hooks)
        })
    }

    fn update_webhook(&self, webhook_id: &str, update: WebhookUpdate) -> Result<Webhook> {
        check_webhook_update(&update)?;
        let id = webhook_id.to_string();
        self.write(move |c| self::update(c, &id, &update))
    }

    fn delete_webhook(&self, webhook_id: &str) -> Result<()> {
        let id = webhook_id.to_string();
        self.write(move |c| {
            load(c, &id)?;
            let now = now_ms();
            c.prepare_cached(
                "UPDATE webhooks SET deleted_timestamp = ?2, last_updated_timestamp = ?2
                 WHERE webhook_id = ?1",
            )
            .map_err(sql_err)?
            .execute(params![id, now])
            .map_err(sql_err)?;
            Ok(())
        })
    }

    fn record_webhook_delivery(&self, d: WebhookDelivery) -> Result<()> {
        self.write(move |c| {
            let (entity, action) = delivery_event(&d);
            c.prepare_cached(
                "INSERT OR REPLACE INTO webhook_deliveries (delivery_id, webhook_id, entity,
                     action, timestamp, attempts, success, response_status, error, duration_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(sql_err)?
            .execute(params![
                d.delivery_id,
                d.webhook_id,
                entity,
                action,
                d.timestamp,
                d.attempts,
                d.success,
                d.response_status,
                d.error,
                d.duration_ms
            ])
            .map_err(sql_err)?;
            Ok(())
        })
    }

    fn webhook_deliveries(&self, webhook_id: &str, limit: usize) -> Result<Vec<WebhookDelivery>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = ?1
                     ORDER BY timestamp DESC, rowid DESC LIMIT ?2"
            ))
            .map_err(sql_err)?
            .query_map(params![webhook_id, limit as i64], |r| delivery_from(r))
            .map_err(sql_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_err)
        })
    }
}
