//! The model registry in SQLite, and the [`RegistryStore`] implementation. Every change is
//! recorded in `registry_events` inside the same transaction as the change itself.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use wasmflow_core::entities::Tag;
use wasmflow_core::paging::{Page, decode_token};

use wasmflow_core::Result;

use super::search_sql::SqlQuery;
use super::tracking::{json_list, key_values};
use super::{SqliteStore, now_ms, sql_err};
use crate::registry::shared::{
    Change, DELETED, EVENT_COLUMNS, LINKED_VERSIONS_TAG, MV_COLUMNS, REDACTED_VERSION, RM_COLUMNS,
    alias_from, alias_not_found, check_new_version, check_transition, download_uri, event_from,
    has_prompt_tag, linked_versions, logged_model_not_found, model_from, model_name_taken,
    model_not_found, model_search_sql, name_taken, no_latest_version, prompt_as_source,
    registered_name, resolved, resolved_version, stage_not_found, version_from, version_not_found,
    version_search_sql, wanted_stages,
};
use crate::registry::source::{SourceLookup, resolve_source};
use crate::registry::{
    IS_PROMPT_TAG_KEY, ModelUri, ModelVersion, NewModelVersion, RegisteredModel, RegistryEvent,
    RegistrySearch, RegistryStore, ResolvedModel, Stage, parse_model_uri, validate_alias,
    validate_alias_not_reserved, validate_model_name, validate_new_model_name,
    validate_registry_tag,
};
use crate::search_sql::Dialect;

/// Writes `change` to the event log, in the caller's transaction.
fn record(conn: &Connection, user: &str, name: &str, change: Change) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO registry_events (timestamp, user_id, name, version, kind, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .map_err(sql_err)?
    .execute(params![
        now_ms(),
        user,
        name,
        change.version,
        change.kind,
        change.details.to_string()
    ])
    .map_err(sql_err)?;
    Ok(())
}

/// Whether the registered model `name` is a prompt (its `mlflow.prompt.is_prompt` tag).
fn is_prompt(conn: &Connection, name: &str) -> Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM registered_model_tags WHERE name = ?1 AND key = ?2 AND lower(value) = 'true'",
    )
    .map_err(sql_err)?
    .exists(params![name, IS_PROMPT_TAG_KEY])
    .map_err(sql_err)
}

fn model_exists(conn: &Connection, name: &str) -> Result<bool> {
    conn.prepare_cached("SELECT 1 FROM registered_models WHERE name = ?1")
        .map_err(sql_err)?
        .exists([name])
        .map_err(sql_err)
}

fn require_model(conn: &Connection, name: &str) -> Result<()> {
    validate_model_name(name)?;
    if model_exists(conn, name)? {
        Ok(())
    } else {
        Err(model_not_found(name))
    }
}

fn touch_model(conn: &Connection, name: &str, now: i64) -> Result<()> {
    conn.prepare_cached("UPDATE registered_models SET last_updated_time = ?2 WHERE name = ?1")
        .map_err(sql_err)?
        .execute(params![name, now])
        .map_err(sql_err)?;
    Ok(())
}

/// Loads the tags and aliases of `versions` in two queries.
fn fill_versions(conn: &Connection, versions: &mut [ModelVersion]) -> Result<()> {
    if versions.is_empty() {
        return Ok(());
    }
    let keys: Vec<(&str, i64)> = versions
        .iter()
        .map(|v| (v.name.as_str(), v.version))
        .collect();
    let keys = json_list(&keys);
    let mut tags: HashMap<(String, i64), Vec<Tag>> = HashMap::new();
    let mut stmt = conn
        .prepare_cached(
            "SELECT t.name, t.version, t.key, t.value FROM json_each(?1) j
             JOIN model_version_tags t ON t.name = j.value ->> '$[0]' AND t.version = j.value ->> '$[1]'
             ORDER BY t.key",
        )
        .map_err(sql_err)?;
    let mut rows = stmt.query([&keys]).map_err(sql_err)?;
    while let Some(r) = rows.next().map_err(sql_err)? {
        tags.entry((r.get(0).map_err(sql_err)?, r.get(1).map_err(sql_err)?))
            .or_default()
            .push(Tag {
                key: r.get(2).map_err(sql_err)?,
                value: r.get(3).map_err(sql_err)?,
            });
    }
    let mut aliases: HashMap<(String, i64), Vec<String>> = HashMap::new();
    let mut stmt = conn
        .prepare_cached(
            "SELECT a.name, a.version, a.alias FROM json_each(?1) j
             JOIN registered_model_aliases a
               ON a.name = j.value ->> '$[0]' AND a.version = j.value ->> '$[1]'
             ORDER BY a.alias",
        )
        .map_err(sql_err)?;
    let mut rows = stmt.query([&keys]).map_err(sql_err)?;
    while let Some(r) = rows.next().map_err(sql_err)? {
        aliases
            .entry((r.get(0).map_err(sql_err)?, r.get(1).map_err(sql_err)?))
            .or_default()
            .push(r.get(2).map_err(sql_err)?);
    }
    for v in versions {
        let key = (v.name.clone(), v.version);
        v.tags = tags.remove(&key).unwrap_or_default();
        v.aliases = aliases.remove(&key).unwrap_or_default();
    }
    Ok(())
}

/// The version, unless it does not exist or was deleted.
fn find_version(conn: &Connection, name: &str, version: i64) -> Result<Option<ModelVersion>> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {MV_COLUMNS} FROM model_versions mv
             WHERE mv.name = ?1 AND mv.version = ?2 AND mv.current_stage != '{DELETED}'"
        ))
        .map_err(sql_err)?
        .query_row(params![name, version], |r| version_from(r))
        .optional()
        .map_err(sql_err)?;
    let Some(mv) = found else { return Ok(None) };
    let mut one = [mv];
    fill_versions(conn, &mut one)?;
    let [mv] = one;
    Ok(Some(mv))
}

fn load_version(conn: &Connection, name: &str, version: i64) -> Result<ModelVersion> {
    validate_model_name(name)?;
    find_version(conn, name, version)?.ok_or_else(|| version_not_found(name, version))
}

/// The newest live version of each stage, oldest version first.
fn latest_versions(conn: &Connection, name: &str) -> Result<Vec<ModelVersion>> {
    let mut versions = conn
        .prepare_cached(&format!(
            "SELECT {MV_COLUMNS} FROM model_versions mv
             WHERE mv.name = ?1 AND mv.current_stage != '{DELETED}'
               AND mv.version = (SELECT MAX(o.version) FROM model_versions o
                                 WHERE o.name = mv.name AND o.current_stage = mv.current_stage)
             ORDER BY mv.version"
        ))
        .map_err(sql_err)?
        .query_map([name], |r| version_from(r))
        .map_err(sql_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_err)?;
    fill_versions(conn, &mut versions)?;
    Ok(versions)
}

fn newest_version(conn: &Connection, name: &str) -> Result<Option<i64>> {
    conn.prepare_cached(&format!(
        "SELECT MAX(version) FROM model_versions WHERE name = ?1 AND current_stage != '{DELETED}'"
    ))
    .map_err(sql_err)?
    .query_row([name], |r| r.get(0))
    .map_err(sql_err)
}

fn load_model(conn: &Connection, name: &str) -> Result<RegisteredModel> {
    validate_model_name(name)?;
    let row = conn
        .prepare_cached(&format!(
            "SELECT {RM_COLUMNS} FROM registered_models WHERE name = ?1"
        ))
        .map_err(sql_err)?
        .query_row([name], |r| model_from(r))
        .optional()
        .map_err(sql_err)?;
    let mut model = row.ok_or_else(|| model_not_found(name))?;
    model.tags = key_values(
        conn,
        "SELECT key, value FROM registered_model_tags WHERE name = ?1 ORDER BY key",
        name,
    )?
    .into_iter()
    .map(|(key, value)| Tag { key, value })
    .collect();
    model.aliases = conn
        .prepare_cached(
            "SELECT alias, version FROM registered_model_aliases WHERE name = ?1 ORDER BY alias",
        )
        .map_err(sql_err)?
        .query_map([name], |r| alias_from(r))
        .map_err(sql_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err)?;
    model.latest_versions = latest_versions(conn, name)?;
    Ok(model)
}

fn put_model_tag(conn: &Connection, name: &str, tag: &Tag) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO registered_model_tags (name, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
    )
    .map_err(sql_err)?
    .execute(params![name, tag.key, tag.value])
    .map_err(sql_err)?;
    Ok(())
}

fn put_version_tag(conn: &Connection, name: &str, version: i64, tag: &Tag) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO model_version_tags (name, version, key, value) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
    )
    .map_err(sql_err)?
    .execute(params![name, version, tag.key, tag.value])
    .map_err(sql_err)?;
    Ok(())
}

// ---- registered models ----

fn create_model(
    conn: &Connection,
    user: &str,
    name: &str,
    tags: &[Tag],
    description: Option<&str>,
) -> Result<RegisteredModel> {
    validate_model_name(name)?;
    for tag in tags {
        validate_registry_tag(tag)?;
    }
    if model_exists(conn, name)? {
        return Err(name_taken(
            name,
            is_prompt(conn, name)?,
            has_prompt_tag(tags),
        ));
    }
    let now = now_ms();
    conn.execute(
        "INSERT INTO registered_models (name, creation_time, last_updated_time, description)
         VALUES (?1, ?2, ?2, ?3)",
        params![name, now, description],
    )
    .map_err(sql_err)?;
    for tag in tags {
        put_model_tag(conn, name, tag)?;
    }
    record(conn, user, name, Change::model_created(description, tags))?;
    load_model(conn, name)
}

fn rename_model(
    conn: &Connection,
    user: &str,
    name: &str,
    new_name: &str,
) -> Result<RegisteredModel> {
    validate_new_model_name(new_name)?;
    require_model(conn, name)?;
    if new_name != name && model_exists(conn, new_name)? {
        return Err(model_name_taken(new_name));
    }
    let now = now_ms();
    // Versions, their tags and the aliases follow by ON UPDATE CASCADE.
    conn.execute(
        "UPDATE registered_models SET name = ?2, last_updated_time = ?3 WHERE name = ?1",
        params![name, new_name, now],
    )
    .map_err(sql_err)?;
    conn.execute(
        "UPDATE model_versions SET last_updated_time = ?2 WHERE name = ?1",
        params![new_name, now],
    )
    .map_err(sql_err)?;
    // The history follows the model.
    conn.execute(
        "UPDATE registry_events SET name = ?2 WHERE name = ?1",
        params![name, new_name],
    )
    .map_err(sql_err)?;
    record(conn, user, new_name, Change::model_renamed(name, new_name))?;
    load_model(conn, new_name)
}

fn update_model(
    conn: &Connection,
    user: &str,
    name: &str,
    description: Option<&str>,
) -> Result<RegisteredModel> {
    require_model(conn, name)?;
    conn.execute(
        "UPDATE registered_models SET description = ?2, last_updated_time = ?3 WHERE name = ?1",
        params![name, description, now_ms()],
    )
    .map_err(sql_err)?;
    record(conn, user, name, Change::model_updated(description))?;
    load_model(conn, name)
}

fn delete_model(conn: &Connection, user: &str, name: &str) -> Result<()> {
    require_model(conn, name)?;
    let versions: i64 = conn
        .query_row(
            &format!(
                "SELECT COUNT(*) FROM model_versions WHERE name = ?1 AND current_stage != '{DELETED}'"
            ),
            [name],
            |r| r.get(0),
        )
        .map_err(sql_err)?;
    // Versions, tags and aliases go by ON DELETE CASCADE.
    conn.execute("DELETE FROM registered_models WHERE name = ?1", [name])
        .map_err(sql_err)?;
    record(conn, user, name, Change::model_deleted(versions))
}

fn set_model_tag(conn: &Connection, user: &str, name: &str, tag: &Tag) -> Result<()> {
    validate_registry_tag(tag)?;
    require_model(conn, name)?;
    put_model_tag(conn, name, tag)?;
    record(conn, user, name, Change::model_tag_set(tag))
}

fn delete_model_tag(conn: &Connection, user: &str, name: &str, key: &str) -> Result<()> {
    wasmflow_core::validation::validate_key("key", key)?;
    require_model(conn, name)?;
    let n = conn
        .execute(
            "DELETE FROM registered_model_tags WHERE name = ?1 AND key = ?2",
            params![name, key],
        )
        .map_err(sql_err)?;
    // As in MLflow, deleting a tag that is not there is not an error.
    if n > 0 {
        record(conn, user, name, Change::model_tag_deleted(key))?;
    }
    Ok(())
}

fn search_models(conn: &Connection, search: &RegistrySearch) -> Result<Page<RegisteredModel>> {
    let offset = decode_token(search.page_token.as_deref())?;
    let query = model_search_sql(Dialect::Sqlite, search, offset)?;
    let names: Vec<String> = SqlQuery::from(query).first_column(conn)?;
    let page = Page::from_overfetched(names, offset, search.max_results);
    let models = page
        .items
        .iter()
        .map(|n| load_model(conn, n))
        .collect::<Result<Vec<_>>>()?;
    Ok(Page {
        items: models,
        next_page_token: page.next_page_token,
    })
}

fn get_latest(conn: &Connection, name: &str, stages: &[Stage]) -> Result<Vec<ModelVersion>> {
    require_model(conn, name)?;
    let wanted = wanted_stages(stages);
    Ok(latest_versions(conn, name)?
        .into_iter()
        .filter(|v| wanted.contains(&v.current_stage.as_str()))
        .collect())
}

// ---- model versions ----

fn run_artifact_uri(conn: &Connection, run_id: &str) -> Result<Option<String>> {
    conn.prepare_cached("SELECT artifact_uri FROM runs WHERE run_uuid = ?1")
        .map_err(sql_err)?
        .query_row([run_id], |r| r.get(0))
        .optional()
        .map_err(sql_err)
}

/// A live logged model's artifact location and source run.
fn logged_model(conn: &Connection, model_id: &str) -> Result<Option<(String, Option<String>)>> {
    conn.prepare_cached(
        "SELECT artifact_location, source_run_id FROM logged_models
         WHERE model_id = ?1 AND lifecycle_stage = 'active'",
    )
    .map_err(sql_err)?
    .query_row([model_id], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
    .map_err(sql_err)
}

/// Runs a future that never waits to its end: the source rules are async for the backends whose
/// driver is, and this database's lookups are ready at once.
fn ready<T>(f: impl std::future::Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => unreachable!("SQLite lookups never wait"),
    }
}

/// The source rules' lookups, in this database.
struct Lookup<'a>(&'a Connection);

impl SourceLookup for Lookup<'_> {
    async fn run_artifact_uri(&self, run_id: &str) -> Result<Option<String>> {
        run_artifact_uri(self.0, run_id)
    }

    async fn live_logged_model(&self, model_id: &str) -> Result<Option<(String, Option<String>)>> {
        logged_model(self.0, model_id)
    }

    async fn registered_version(&self, uri: &ModelUri, text: &str) -> Result<ModelVersion> {
        // A version registered from another registered version, never from a prompt's.
        if let Some(name) = registered_name(uri)
            && model_exists(self.0, name)?
            && is_prompt(self.0, name)?
        {
            return Err(prompt_as_source(text));
        }
        find_version_of(self.0, &resolve(self.0, uri, text)?)
    }
}

fn find_version_of(conn: &Connection, resolved: &ResolvedModel) -> Result<ModelVersion> {
    let (name, version) = resolved_version(resolved);
    load_version(conn, name, version)
}

fn create_version(conn: &Connection, user: &str, new: &NewModelVersion) -> Result<ModelVersion> {
    let prompt = check_new_version(new)?;
    require_model(conn, &new.name)?;
    let (source, storage, run_id, model_id) = match prompt {
        Some(given) => given,
        None => ready(resolve_source(&Lookup(conn), new))?,
    };
    let version: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = ?1")
        .map_err(sql_err)?
        .query_row([&new.name], |r| r.get(0))
        .map_err(sql_err)?;
    let now = now_ms();
    conn.prepare_cached(
        "INSERT INTO model_versions (name, version, creation_time, last_updated_time, description,
             current_stage, source, storage_location, run_id, run_link, model_id, status)
         VALUES (?1, ?2, ?3, ?3, ?4, 'None', ?5, ?6, ?7, ?8, ?9, 'READY')",
    )
    .map_err(sql_err)?
    .execute(params![
        new.name,
        version,
        now,
        new.description.clone().unwrap_or_default(),
        source,
        storage,
        run_id,
        new.run_link.clone().unwrap_or_default(),
        model_id,
    ])
    .map_err(sql_err)?;
    for tag in &new.tags {
        put_version_tag(conn, &new.name, version, tag)?;
    }
    if let Some(id) = &model_id {
        link_logged_model(conn, id, &new.name, version)?;
    }
    touch_model(conn, &new.name, now)?;
    record(
        conn,
        user,
        &new.name,
        Change::version_created(version, &source, &run_id, model_id.as_deref(), &storage),
    )?;
    load_version(conn, &new.name, version)
}

/// Lists the version in its logged model's `mlflow.modelVersions` tag, as MLflow's server does.
fn link_logged_model(conn: &Connection, model_id: &str, name: &str, version: i64) -> Result<()> {
    let existing: Option<String> = conn
        .prepare_cached("SELECT value FROM logged_model_tags WHERE model_id = ?1 AND key = ?2")
        .map_err(sql_err)?
        .query_row(params![model_id, LINKED_VERSIONS_TAG], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    conn.prepare_cached(
        "INSERT INTO logged_model_tags (model_id, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
    )
    .map_err(sql_err)?
    .execute(params![
        model_id,
        LINKED_VERSIONS_TAG,
        linked_versions(existing, name, version)
    ])
    .map_err(sql_err)?;
    Ok(())
}

fn update_version(
    conn: &Connection,
    user: &str,
    name: &str,
    version: i64,
    description: Option<&str>,
) -> Result<ModelVersion> {
    load_version(conn, name, version)?;
    conn.execute(
        "UPDATE model_versions SET description = ?3, last_updated_time = ?4
         WHERE name = ?1 AND version = ?2",
        params![name, version, description, now_ms()],
    )
    .map_err(sql_err)?;
    record(
        conn,
        user,
        name,
        Change::version_updated(version, description),
    )?;
    load_version(conn, name, version)
}

fn transition(
    conn: &Connection,
    user: &str,
    name: &str,
    version: i64,
    stage: Stage,
    archive_existing: bool,
) -> Result<ModelVersion> {
    check_transition(stage, archive_existing)?;
    let current = load_version(conn, name, version)?;
    let now = now_ms();
    if archive_existing {
        let others: Vec<i64> = conn
            .prepare_cached(
                "SELECT version FROM model_versions
                 WHERE name = ?1 AND version != ?2 AND current_stage = ?3",
            )
            .map_err(sql_err)?
            .query_map(params![name, version, stage.as_str()], |r| r.get(0))
            .map_err(sql_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql_err)?;
        for other in others {
            conn.execute(
                "UPDATE model_versions SET current_stage = 'Archived', last_updated_time = ?3
                 WHERE name = ?1 AND version = ?2",
                params![name, other, now],
            )
            .map_err(sql_err)?;
            record(
                conn,
                user,
                name,
                Change::version_archived(other, stage, version),
            )?;
        }
    }
    conn.execute(
        "UPDATE model_versions SET current_stage = ?3, last_updated_time = ?4
         WHERE name = ?1 AND version = ?2",
        params![name, version, stage.as_str(), now],
    )
    .map_err(sql_err)?;
    touch_model(conn, name, now)?;
    record(
        conn,
        user,
        name,
        Change::version_transitioned(version, &current.current_stage, stage, archive_existing),
    )?;
    load_version(conn, name, version)
}

fn delete_version(conn: &Connection, user: &str, name: &str, version: i64) -> Result<()> {
    let current = load_version(conn, name, version)?;
    let now = now_ms();
    conn.execute(
        "DELETE FROM registered_model_aliases WHERE name = ?1 AND version = ?2",
        params![name, version],
    )
    .map_err(sql_err)?;
    conn.execute(
        "DELETE FROM model_version_tags WHERE name = ?1 AND version = ?2",
        params![name, version],
    )
    .map_err(sql_err)?;
    // The row stays, redacted as MLflow does, so that the number is never reused.
    conn.execute(
        &format!(
            "UPDATE model_versions SET current_stage = '{DELETED}', last_updated_time = ?3,
                 {REDACTED_VERSION}
             WHERE name = ?1 AND version = ?2"
        ),
        params![name, version, now],
    )
    .map_err(sql_err)?;
    touch_model(conn, name, now)?;
    record(conn, user, name, Change::version_deleted(&current))
}

fn search_versions(conn: &Connection, search: &RegistrySearch) -> Result<Page<ModelVersion>> {
    let offset = decode_token(search.page_token.as_deref())?;
    let query = version_search_sql(Dialect::Sqlite, search, offset)?;
    let rows = SqlQuery::from(query).rows(conn, |r| version_from(r))?;
    let mut page = Page::from_overfetched(rows, offset, search.max_results);
    fill_versions(conn, &mut page.items)?;
    Ok(page)
}

fn set_version_tag(
    conn: &Connection,
    user: &str,
    name: &str,
    version: i64,
    tag: &Tag,
) -> Result<()> {
    validate_registry_tag(tag)?;
    load_version(conn, name, version)?;
    put_version_tag(conn, name, version, tag)?;
    record(conn, user, name, Change::version_tag_set(version, tag))
}

fn delete_version_tag(
    conn: &Connection,
    user: &str,
    name: &str,
    version: i64,
    key: &str,
) -> Result<()> {
    wasmflow_core::validation::validate_key("key", key)?;
    load_version(conn, name, version)?;
    let n = conn
        .execute(
            "DELETE FROM model_version_tags WHERE name = ?1 AND version = ?2 AND key = ?3",
            params![name, version, key],
        )
        .map_err(sql_err)?;
    if n > 0 {
        record(conn, user, name, Change::version_tag_deleted(version, key))?;
    }
    Ok(())
}

// ---- aliases ----

fn set_alias(conn: &Connection, user: &str, name: &str, alias: &str, version: i64) -> Result<()> {
    validate_model_name(name)?;
    validate_alias(alias)?;
    validate_alias_not_reserved(alias)?;
    load_version(conn, name, version)?;
    let previous: Option<i64> = conn
        .prepare_cached(
            "SELECT version FROM registered_model_aliases WHERE name = ?1 AND alias = ?2",
        )
        .map_err(sql_err)?
        .query_row(params![name, alias], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    conn.prepare_cached(
        "INSERT INTO registered_model_aliases (name, alias, version) VALUES (?1, ?2, ?3)
         ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
    )
    .map_err(sql_err)?
    .execute(params![name, alias, version])
    .map_err(sql_err)?;
    record(
        conn,
        user,
        name,
        Change::alias_set(version, alias, previous),
    )
}

fn delete_alias(conn: &Connection, user: &str, name: &str, alias: &str) -> Result<()> {
    validate_alias(alias)?;
    require_model(conn, name)?;
    let previous: Option<i64> = conn
        .prepare_cached(
            "SELECT version FROM registered_model_aliases WHERE name = ?1 AND alias = ?2",
        )
        .map_err(sql_err)?
        .query_row(params![name, alias], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    if let Some(version) = previous {
        conn.execute(
            "DELETE FROM registered_model_aliases WHERE name = ?1 AND alias = ?2",
            params![name, alias],
        )
        .map_err(sql_err)?;
        record(conn, user, name, Change::alias_deleted(version, alias))?;
    }
    Ok(())
}

fn version_by_alias(conn: &Connection, name: &str, alias: &str) -> Result<ModelVersion> {
    validate_model_name(name)?;
    validate_alias(alias)?;
    if alias.eq_ignore_ascii_case("latest") {
        require_model(conn, name)?;
        let newest = newest_version(conn, name)?.ok_or_else(|| no_latest_version(name))?;
        return load_version(conn, name, newest);
    }
    require_model(conn, name)?;
    let version: Option<i64> = conn
        .prepare_cached(
            "SELECT version FROM registered_model_aliases WHERE name = ?1 AND alias = ?2",
        )
        .map_err(sql_err)?
        .query_row(params![name, alias], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    let version = version.ok_or_else(|| alias_not_found(alias))?;
    load_version(conn, name, version)
}

// ---- events and model URIs ----

fn events(conn: &Connection, name: &str, version: Option<i64>) -> Result<Vec<RegistryEvent>> {
    conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM registry_events
         WHERE name = ?1 AND (?2 IS NULL OR version = ?2) ORDER BY id"
    ))
    .map_err(sql_err)?
    .query_map(params![name, version], |r| event_from(r))
    .map_err(sql_err)?
    .collect::<rusqlite::Result<_>>()
    .map_err(sql_err)
}

fn resolve(conn: &Connection, uri: &ModelUri, text: &str) -> Result<ResolvedModel> {
    match uri {
        ModelUri::Version { name, version } => Ok(resolved(load_version(conn, name, *version)?)),
        ModelUri::Alias { name, alias } => Ok(resolved(version_by_alias(conn, name, alias)?)),
        ModelUri::Latest { name } => Ok(resolved(version_by_alias(conn, name, "latest")?)),
        ModelUri::Stage { name, stage } => {
            let latest = get_latest(conn, name, &[*stage])?;
            let version = latest
                .into_iter()
                .next()
                .ok_or_else(|| stage_not_found(name, *stage))?;
            Ok(resolved(version))
        }
        ModelUri::LoggedModel { model_id } => {
            let (location, _) =
                logged_model(conn, model_id)?.ok_or_else(|| logged_model_not_found(model_id))?;
            Ok(ResolvedModel {
                name: None,
                version: None,
                source: text.to_string(),
                artifact_uri: location,
                model_id: Some(model_id.clone()),
            })
        }
    }
}

impl RegistryStore for SqliteStore {
    fn create_registered_model(
        &self,
        user: &str,
        name: &str,
        tags: Vec<Tag>,
        description: Option<String>,
    ) -> Result<RegisteredModel> {
        let (user, name) = (user.to_string(), name.to_string());
        self.write(move |c| create_model(c, &user, &name, &tags, description.as_deref()))
    }

    fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        self.read(|c| load_model(c, name))
    }

    fn rename_registered_model(
        &self,
        user: &str,
        name: &str,
        new_name: &str,
    ) -> Result<RegisteredModel> {
        let (user, name, new_name) = (user.to_string(), name.to_string(), new_name.to_string());
        self.write(move |c| rename_model(c, &user, &name, &new_name))
    }

    fn update_registered_model(
        &self,
        user: &str,
        name: &str,
        description: Option<String>,
    ) -> Result<RegisteredModel> {
        let (user, name) = (user.to_string(), name.to_string());
        self.write(move |c| update_model(c, &user, &name, description.as_deref()))
    }

    fn delete_registered_model(&self, user: &str, name: &str) -> Result<()> {
        let (user, name) = (user.to_string(), name.to_string());
        self.write(move |c| delete_model(c, &user, &name))
    }

    fn search_registered_models(&self, search: &RegistrySearch) -> Result<Page<RegisteredModel>> {
        self.read(|c| search_models(c, search))
    }

    fn get_latest_versions(&self, name: &str, stages: &[Stage]) -> Result<Vec<ModelVersion>> {
        self.read(|c| get_latest(c, name, stages))
    }

    fn set_registered_model_tag(&self, user: &str, name: &str, tag: Tag) -> Result<()> {
        let (user, name) = (user.to_string(), name.to_string());
        self.write(move |c| set_model_tag(c, &user, &name, &tag))
    }

    fn delete_registered_model_tag(&self, user: &str, name: &str, key: &str) -> Result<()> {
        let (user, name, key) = (user.to_string(), name.to_string(), key.to_string());
        self.write(move |c| delete_model_tag(c, &user, &name, &key))
    }

    fn create_model_version(&self, user: &str, new: NewModelVersion) -> Result<ModelVersion> {
        let user = user.to_string();
        self.write(move |c| create_version(c, &user, &new))
    }

    fn get_model_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        self.read(|c| load_version(c, name, version))
    }

    fn update_model_version(
        &self,
        user: &str,
        name: &str,
        version: i64,
        description: Option<String>,
    ) -> Result<ModelVersion> {
        let (user, name) = (user.to_string(), name.to_string());
        self.write(move |c| update_version(c, &user, &name, version, description.as_deref()))
    }

    fn transition_model_version_stage(
        &self,
        user: &str,
        name: &str,
        version: i64,
        stage: Stage,
        archive_existing_versions: bool,
    ) -> Result<ModelVersion> {
        let (user, name) = (user.to_string(), name.to_string());
        self.write(move |c| transition(c, &user, &name, version, stage, archive_existing_versions))
    }

    fn delete_model_version(&self, user: &str, name: &str, version: i64) -> Result<()> {
        let (user, name) = (user.to_string(), name.to_string());
        self.write(move |c| delete_version(c, &user, &name, version))
    }

    fn get_model_version_download_uri(&self, name: &str, version: i64) -> Result<String> {
        self.read(|c| Ok(download_uri(load_version(c, name, version)?)))
    }

    fn search_model_versions(&self, search: &RegistrySearch) -> Result<Page<ModelVersion>> {
        self.read(|c| search_versions(c, search))
    }

    fn set_model_version_tag(&self, user: &str, name: &str, version: i64, tag: Tag) -> Result<()> {
        let (user, name) = (user.to_string(), name.to_string());
        self.write(move |c| set_version_tag(c, &user, &name, version, &tag))
    }

    fn delete_model_version_tag(
        &self,
        user: &str,
        name: &str,
        version: i64,
        key: &str,
    ) -> Result<()> {
        let (user, name, key) = (user.to_string(), name.to_string(), key.to_string());
        self.write(move |c| delete_version_tag(c, &user, &name, version, &key))
    }

    fn set_registered_model_alias(
        &self,
        user: &str,
        name: &str,
        alias: &str,
        version: i64,
    ) -> Result<()> {
        let (user, name, alias) = (user.to_string(), name.to_string(), alias.to_string());
        self.write(move |c| set_alias(c, &user, &name, &alias, version))
    }

    fn delete_registered_model_alias(&self, user: &str, name: &str, alias: &str) -> Result<()> {
        let (user, name, alias) = (user.to_string(), name.to_string(), alias.to_string());
        self.write(move |c| delete_alias(c, &user, &name, &alias))
    }

    fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        self.read(|c| version_by_alias(c, name, alias))
    }

    fn registry_events(&self, name: &str, version: Option<i64>) -> Result<Vec<RegistryEvent>> {
        self.read(|c| events(c, name, version))
    }

    fn resolve_model_uri(&self, uri: &str) -> Result<ResolvedModel> {
        let parsed = parse_model_uri(uri)?;
        self.read(|c| resolve(c, &parsed, uri))
    }
}
