//! The model registry in PostgreSQL ([`RegistryStore`]). Every change is one transaction with
//! its entry in `registry_events`.
//!
//! Unlike SQLite's single writer, several replicas write at once. Each change to a registered
//! model or its versions first locks the model's row (`SELECT ... FOR UPDATE`), so that changes
//! to one model are serialized across replicas: two new versions never get the same number, an
//! alias moves from one version to the next without another writer in between, and the event log
//! is in the order of the changes. Changes to different models do not wait for each other. A
//! name taken by another replica at the same moment is answered as RESOURCE_ALREADY_EXISTS.

use std::collections::HashMap;

use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;
use wasmflow_core::Result;
use wasmflow_core::entities::Tag;
use wasmflow_core::paging::{Page, decode_token};

use super::tx::is_unique_violation;
use super::{PgStore, pg_err};
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
use crate::sqlite::now_ms;

type Tx<'a> = Transaction<'a>;

async fn record(tx: &Tx<'_>, user: &str, name: &str, change: Change) -> Result<()> {
    tx.execute(
        "INSERT INTO registry_events (timestamp, user_id, name, version, kind, details)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &now_ms(),
            &user,
            &name,
            &change.version,
            &change.kind,
            &change.details.to_string(),
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn exists(tx: &Tx<'_>, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<bool> {
    Ok(tx.query_opt(sql, params).await.map_err(pg_err)?.is_some())
}

async fn model_exists(tx: &Tx<'_>, name: &str) -> Result<bool> {
    exists(
        tx,
        "SELECT 1 FROM registered_models WHERE name = $1",
        &[&name],
    )
    .await
}

/// Whether the registered model `name` is a prompt (its `mlflow.prompt.is_prompt` tag).
async fn is_prompt(tx: &Tx<'_>, name: &str) -> Result<bool> {
    exists(
        tx,
        "SELECT 1 FROM registered_model_tags
         WHERE name = $1 AND key = $2 AND lower(value) = 'true'",
        &[&name, &IS_PROMPT_TAG_KEY],
    )
    .await
}

async fn require_model(tx: &Tx<'_>, name: &str) -> Result<()> {
    validate_model_name(name)?;
    if model_exists(tx, name).await? {
        Ok(())
    } else {
        Err(model_not_found(name))
    }
}

/// Locks the model's row for the rest of the transaction: the changes of other replicas to
/// this model wait until this one commits.
async fn lock_model(tx: &Tx<'_>, name: &str) -> Result<()> {
    validate_model_name(name)?;
    if exists(
        tx,
        "SELECT 1 FROM registered_models WHERE name = $1 FOR UPDATE",
        &[&name],
    )
    .await?
    {
        Ok(())
    } else {
        Err(model_not_found(name))
    }
}

async fn touch_model(tx: &Tx<'_>, name: &str, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE registered_models SET last_updated_time = $2 WHERE name = $1",
        &[&name, &now],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

fn versions_from(rows: &[tokio_postgres::Row]) -> Result<Vec<ModelVersion>> {
    rows.iter()
        .map(version_from)
        .collect::<std::result::Result<_, _>>()
        .map_err(pg_err)
}

/// Loads the tags and aliases of `versions` in two queries.
async fn fill_versions(tx: &Tx<'_>, versions: &mut [ModelVersion]) -> Result<()> {
    if versions.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = versions.iter().map(|v| v.name.as_str()).collect();
    let numbers: Vec<i64> = versions.iter().map(|v| v.version).collect();
    let keyed = |table: &str, columns: &str, order: &str| {
        format!(
            "SELECT t.name, t.version, {columns} FROM {table} t
             JOIN unnest($1::text[], $2::bigint[]) AS k (name, version)
               ON t.name = k.name AND t.version = k.version
             ORDER BY {order}"
        )
    };
    let mut tags: HashMap<(String, i64), Vec<Tag>> = HashMap::new();
    for r in tx
        .query(
            &keyed("model_version_tags", "t.key, t.value", "t.key"),
            &[&names, &numbers],
        )
        .await
        .map_err(pg_err)?
    {
        tags.entry((r.get(0), r.get(1))).or_default().push(Tag {
            key: r.get(2),
            value: r.get(3),
        });
    }
    let mut aliases: HashMap<(String, i64), Vec<String>> = HashMap::new();
    for r in tx
        .query(
            &keyed("registered_model_aliases", "t.alias", "t.alias"),
            &[&names, &numbers],
        )
        .await
        .map_err(pg_err)?
    {
        aliases
            .entry((r.get(0), r.get(1)))
            .or_default()
            .push(r.get(2));
    }
    for v in versions {
        let key = (v.name.clone(), v.version);
        v.tags = tags.remove(&key).unwrap_or_default();
        v.aliases = aliases.remove(&key).unwrap_or_default();
    }
    Ok(())
}

/// The version, unless it does not exist or was deleted.
async fn find_version(tx: &Tx<'_>, name: &str, version: i64) -> Result<Option<ModelVersion>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {MV_COLUMNS} FROM model_versions mv
                 WHERE mv.name = $1 AND mv.version = $2 AND mv.current_stage <> '{DELETED}'"
            ),
            &[&name, &version],
        )
        .await
        .map_err(pg_err)?;
    let mut found = versions_from(&rows)?;
    fill_versions(tx, &mut found).await?;
    Ok(found.pop())
}

async fn load_version(tx: &Tx<'_>, name: &str, version: i64) -> Result<ModelVersion> {
    validate_model_name(name)?;
    find_version(tx, name, version)
        .await?
        .ok_or_else(|| version_not_found(name, version))
}

/// The newest live version of each stage, oldest version first.
async fn latest_versions(tx: &Tx<'_>, name: &str) -> Result<Vec<ModelVersion>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {MV_COLUMNS} FROM model_versions mv
                 WHERE mv.name = $1 AND mv.current_stage <> '{DELETED}'
                   AND mv.version = (SELECT MAX(o.version) FROM model_versions o
                                     WHERE o.name = mv.name AND o.current_stage = mv.current_stage)
                 ORDER BY mv.version"
            ),
            &[&name],
        )
        .await
        .map_err(pg_err)?;
    let mut versions = versions_from(&rows)?;
    fill_versions(tx, &mut versions).await?;
    Ok(versions)
}

async fn load_model(tx: &Tx<'_>, name: &str) -> Result<RegisteredModel> {
    validate_model_name(name)?;
    let row = tx
        .query_opt(
            &format!("SELECT {RM_COLUMNS} FROM registered_models WHERE name = $1"),
            &[&name],
        )
        .await
        .map_err(pg_err)?
        .ok_or_else(|| model_not_found(name))?;
    let mut model = model_from(&row).map_err(pg_err)?;
    model.tags = tx
        .query(
            "SELECT key, value FROM registered_model_tags WHERE name = $1 ORDER BY key",
            &[&name],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| Tag {
            key: r.get(0),
            value: r.get(1),
        })
        .collect();
    model.aliases = tx
        .query(
            "SELECT alias, version FROM registered_model_aliases WHERE name = $1 ORDER BY alias",
            &[&name],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(alias_from)
        .collect::<std::result::Result<_, _>>()
        .map_err(pg_err)?;
    model.latest_versions = latest_versions(tx, name).await?;
    Ok(model)
}

async fn put_model_tag(tx: &Tx<'_>, name: &str, tag: &Tag) -> Result<()> {
    tx.execute(
        "INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
        &[&name, &tag.key, &tag.value],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn put_version_tag(tx: &Tx<'_>, name: &str, version: i64, tag: &Tag) -> Result<()> {
    tx.execute(
        "INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
        &[&name, &version, &tag.key, &tag.value],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

// ---- registered models ----

async fn create_model(
    tx: &Tx<'_>,
    user: &str,
    name: &str,
    tags: &[Tag],
    description: Option<&str>,
) -> Result<RegisteredModel> {
    validate_model_name(name)?;
    for tag in tags {
        validate_registry_tag(tag)?;
    }
    let now = now_ms();
    // A name another replica takes at the same moment waits for its commit, then conflicts.
    let inserted = tx
        .execute(
            "INSERT INTO registered_models (name, creation_time, last_updated_time, description)
             VALUES ($1, $2, $2, $3) ON CONFLICT (name) DO NOTHING",
            &[&name, &now, &description],
        )
        .await
        .map_err(pg_err)?;
    if inserted == 0 {
        return Err(name_taken(
            name,
            is_prompt(tx, name).await?,
            has_prompt_tag(tags),
        ));
    }
    for tag in tags {
        put_model_tag(tx, name, tag).await?;
    }
    record(tx, user, name, Change::model_created(description, tags)).await?;
    load_model(tx, name).await
}

async fn rename_model(
    tx: &Tx<'_>,
    user: &str,
    name: &str,
    new_name: &str,
) -> Result<RegisteredModel> {
    validate_new_model_name(new_name)?;
    lock_model(tx, name).await?;
    if new_name != name && model_exists(tx, new_name).await? {
        return Err(model_name_taken(new_name));
    }
    let now = now_ms();
    // Versions, their tags and the aliases follow by ON UPDATE CASCADE.
    tx.execute(
        "UPDATE registered_models SET name = $2, last_updated_time = $3 WHERE name = $1",
        &[&name, &new_name, &now],
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            model_name_taken(new_name)
        } else {
            pg_err(e)
        }
    })?;
    tx.execute(
        "UPDATE model_versions SET last_updated_time = $2 WHERE name = $1",
        &[&new_name, &now],
    )
    .await
    .map_err(pg_err)?;
    // The history follows the model.
    tx.execute(
        "UPDATE registry_events SET name = $2 WHERE name = $1",
        &[&name, &new_name],
    )
    .await
    .map_err(pg_err)?;
    record(tx, user, new_name, Change::model_renamed(name, new_name)).await?;
    load_model(tx, new_name).await
}

async fn update_model(
    tx: &Tx<'_>,
    user: &str,
    name: &str,
    description: Option<&str>,
) -> Result<RegisteredModel> {
    lock_model(tx, name).await?;
    tx.execute(
        "UPDATE registered_models SET description = $2, last_updated_time = $3 WHERE name = $1",
        &[&name, &description, &now_ms()],
    )
    .await
    .map_err(pg_err)?;
    record(tx, user, name, Change::model_updated(description)).await?;
    load_model(tx, name).await
}

async fn delete_model(tx: &Tx<'_>, user: &str, name: &str) -> Result<()> {
    lock_model(tx, name).await?;
    let versions: i64 = tx
        .query_one(
            &format!(
                "SELECT COUNT(*) FROM model_versions WHERE name = $1 AND current_stage <> '{DELETED}'"
            ),
            &[&name],
        )
        .await
        .map_err(pg_err)?
        .get(0);
    // Versions, tags and aliases go by ON DELETE CASCADE.
    tx.execute("DELETE FROM registered_models WHERE name = $1", &[&name])
        .await
        .map_err(pg_err)?;
    record(tx, user, name, Change::model_deleted(versions)).await
}

async fn set_model_tag(tx: &Tx<'_>, user: &str, name: &str, tag: &Tag) -> Result<()> {
    validate_registry_tag(tag)?;
    lock_model(tx, name).await?;
    put_model_tag(tx, name, tag).await?;
    record(tx, user, name, Change::model_tag_set(tag)).await
}

async fn delete_model_tag(tx: &Tx<'_>, user: &str, name: &str, key: &str) -> Result<()> {
    wasmflow_core::validation::validate_key("key", key)?;
    lock_model(tx, name).await?;
    let n = tx
        .execute(
            "DELETE FROM registered_model_tags WHERE name = $1 AND key = $2",
            &[&name, &key],
        )
        .await
        .map_err(pg_err)?;
    // As in MLflow, deleting a tag that is not there is not an error.
    if n > 0 {
        record(tx, user, name, Change::model_tag_deleted(key)).await?;
    }
    Ok(())
}

async fn get_latest(tx: &Tx<'_>, name: &str, stages: &[Stage]) -> Result<Vec<ModelVersion>> {
    require_model(tx, name).await?;
    let wanted = wanted_stages(stages);
    Ok(latest_versions(tx, name)
        .await?
        .into_iter()
        .filter(|v| wanted.contains(&v.current_stage.as_str()))
        .collect())
}

// ---- model versions ----

/// A live logged model's artifact location and source run.
async fn logged_model(tx: &Tx<'_>, model_id: &str) -> Result<Option<(String, Option<String>)>> {
    Ok(tx
        .query_opt(
            "SELECT artifact_location, source_run_id FROM logged_models
             WHERE model_id = $1 AND lifecycle_stage = 'active'",
            &[&model_id],
        )
        .await
        .map_err(pg_err)?
        .map(|r| (r.get(0), r.get(1))))
}

/// The source rules' lookups, in this database.
struct Lookup<'a, 'b>(&'a Tx<'b>);

impl SourceLookup for Lookup<'_, '_> {
    async fn run_artifact_uri(&self, run_id: &str) -> Result<Option<String>> {
        Ok(self
            .0
            .query_opt(
                "SELECT artifact_uri FROM runs WHERE run_uuid = $1",
                &[&run_id],
            )
            .await
            .map_err(pg_err)?
            .map(|r| r.get(0)))
    }

    async fn live_logged_model(&self, model_id: &str) -> Result<Option<(String, Option<String>)>> {
        logged_model(self.0, model_id).await
    }

    async fn registered_version(&self, uri: &ModelUri, text: &str) -> Result<ModelVersion> {
        // A version registered from another registered version, never from a prompt's.
        if let Some(name) = registered_name(uri)
            && model_exists(self.0, name).await?
            && is_prompt(self.0, name).await?
        {
            return Err(prompt_as_source(text));
        }
        let resolved = resolve(self.0, uri, text).await?;
        let (name, version) = resolved_version(&resolved);
        load_version(self.0, name, version).await
    }
}

async fn create_version(tx: &Tx<'_>, user: &str, new: &NewModelVersion) -> Result<ModelVersion> {
    let prompt = check_new_version(new)?;
    // Versions of one model are numbered one at a time, whichever replica creates them.
    lock_model(tx, &new.name).await?;
    let (source, storage, run_id, model_id) = match prompt {
        Some(given) => given,
        None => resolve_source(&Lookup(tx), new).await?,
    };
    let version: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = $1",
            &[&new.name],
        )
        .await
        .map_err(pg_err)?
        .get(0);
    let now = now_ms();
    tx.execute(
        "INSERT INTO model_versions (name, version, creation_time, last_updated_time, description,
             current_stage, source, storage_location, run_id, run_link, model_id, status)
         VALUES ($1, $2, $3, $3, $4, 'None', $5, $6, $7, $8, $9, 'READY')",
        &[
            &new.name,
            &version,
            &now,
            &new.description.as_deref().unwrap_or_default(),
            &source,
            &storage,
            &run_id,
            &new.run_link.as_deref().unwrap_or_default(),
            &model_id,
        ],
    )
    .await
    .map_err(pg_err)?;
    for tag in &new.tags {
        put_version_tag(tx, &new.name, version, tag).await?;
    }
    if let Some(id) = &model_id {
        link_logged_model(tx, id, &new.name, version).await?;
    }
    touch_model(tx, &new.name, now).await?;
    record(
        tx,
        user,
        &new.name,
        Change::version_created(version, &source, &run_id, model_id.as_deref(), &storage),
    )
    .await?;
    load_version(tx, &new.name, version).await
}

/// Lists the version in its logged model's `mlflow.modelVersions` tag, as MLflow's server does.
/// The logged model's row is locked first, so that versions of two models registered from it
/// at once both end up in the list.
async fn link_logged_model(tx: &Tx<'_>, model_id: &str, name: &str, version: i64) -> Result<()> {
    tx.execute(
        "SELECT 1 FROM logged_models WHERE model_id = $1 FOR UPDATE",
        &[&model_id],
    )
    .await
    .map_err(pg_err)?;
    let existing: Option<String> = tx
        .query_opt(
            "SELECT value FROM logged_model_tags WHERE model_id = $1 AND key = $2",
            &[&model_id, &LINKED_VERSIONS_TAG],
        )
        .await
        .map_err(pg_err)?
        .map(|r| r.get(0));
    tx.execute(
        "INSERT INTO logged_model_tags (model_id, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
        &[
            &model_id,
            &LINKED_VERSIONS_TAG,
            &linked_versions(existing, name, version),
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn update_version(
    tx: &Tx<'_>,
    user: &str,
    name: &str,
    version: i64,
    description: Option<&str>,
) -> Result<ModelVersion> {
    lock_model(tx, name).await?;
    load_version(tx, name, version).await?;
    tx.execute(
        "UPDATE model_versions SET description = $3, last_updated_time = $4
         WHERE name = $1 AND version = $2",
        &[&name, &version, &description, &now_ms()],
    )
    .await
    .map_err(pg_err)?;
    record(
        tx,
        user,
        name,
        Change::version_updated(version, description),
    )
    .await?;
    load_version(tx, name, version).await
}

async fn transition(
    tx: &Tx<'_>,
    user: &str,
    name: &str,
    version: i64,
    stage: Stage,
    archive_existing: bool,
) -> Result<ModelVersion> {
    check_transition(stage, archive_existing)?;
    lock_model(tx, name).await?;
    let current = load_version(tx, name, version).await?;
    let now = now_ms();
    if archive_existing {
        let others = tx
            .query(
                "UPDATE model_versions SET current_stage = 'Archived', last_updated_time = $4
                 WHERE name = $1 AND version <> $2 AND current_stage = $3
                 RETURNING version",
                &[&name, &version, &stage.as_str(), &now],
            )
            .await
            .map_err(pg_err)?;
        let mut others: Vec<i64> = others.iter().map(|r| r.get(0)).collect();
        others.sort_unstable();
        for other in others {
            record(
                tx,
                user,
                name,
                Change::version_archived(other, stage, version),
            )
            .await?;
        }
    }
    tx.execute(
        "UPDATE model_versions SET current_stage = $3, last_updated_time = $4
         WHERE name = $1 AND version = $2",
        &[&name, &version, &stage.as_str(), &now],
    )
    .await
    .map_err(pg_err)?;
    touch_model(tx, name, now).await?;
    record(
        tx,
        user,
        name,
        Change::version_transitioned(version, &current.current_stage, stage, archive_existing),
    )
    .await?;
    load_version(tx, name, version).await
}

async fn delete_version(tx: &Tx<'_>, user: &str, name: &str, version: i64) -> Result<()> {
    lock_model(tx, name).await?;
    let current = load_version(tx, name, version).await?;
    let now = now_ms();
    for table in ["registered_model_aliases", "model_version_tags"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE name = $1 AND version = $2"),
            &[&name, &version],
        )
        .await
        .map_err(pg_err)?;
    }
    tx.execute(
        &format!(
            "UPDATE model_versions SET current_stage = '{DELETED}', last_updated_time = $3,
                 {REDACTED_VERSION}
             WHERE name = $1 AND version = $2"
        ),
        &[&name, &version, &now],
    )
    .await
    .map_err(pg_err)?;
    touch_model(tx, name, now).await?;
    record(tx, user, name, Change::version_deleted(&current)).await
}

async fn set_version_tag(
    tx: &Tx<'_>,
    user: &str,
    name: &str,
    version: i64,
    tag: &Tag,
) -> Result<()> {
    validate_registry_tag(tag)?;
    lock_model(tx, name).await?;
    load_version(tx, name, version).await?;
    put_version_tag(tx, name, version, tag).await?;
    record(tx, user, name, Change::version_tag_set(version, tag)).await
}

async fn delete_version_tag(
    tx: &Tx<'_>,
    user: &str,
    name: &str,
    version: i64,
    key: &str,
) -> Result<()> {
    wasmflow_core::validation::validate_key("key", key)?;
    lock_model(tx, name).await?;
    load_version(tx, name, version).await?;
    let n = tx
        .execute(
            "DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3",
            &[&name, &version, &key],
        )
        .await
        .map_err(pg_err)?;
    if n > 0 {
        record(tx, user, name, Change::version_tag_deleted(version, key)).await?;
    }
    Ok(())
}

// ---- aliases ----

async fn alias_version(tx: &Tx<'_>, name: &str, alias: &str) -> Result<Option<i64>> {
    Ok(tx
        .query_opt(
            "SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2",
            &[&name, &alias],
        )
        .await
        .map_err(pg_err)?
        .map(|r| r.get(0)))
}

/// Moves (or sets) an alias in one transaction, under the model's lock: every replica sees
/// the alias on the old version or on the new one, and the event names the one it left.
async fn set_alias(tx: &Tx<'_>, user: &str, name: &str, alias: &str, version: i64) -> Result<()> {
    validate_model_name(name)?;
    validate_alias(alias)?;
    validate_alias_not_reserved(alias)?;
    lock_model(tx, name).await?;
    load_version(tx, name, version).await?;
    let previous = alias_version(tx, name, alias).await?;
    tx.execute(
        "INSERT INTO registered_model_aliases (name, alias, version) VALUES ($1, $2, $3)
         ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
        &[&name, &alias, &version],
    )
    .await
    .map_err(pg_err)?;
    record(tx, user, name, Change::alias_set(version, alias, previous)).await
}

async fn delete_alias(tx: &Tx<'_>, user: &str, name: &str, alias: &str) -> Result<()> {
    validate_alias(alias)?;
    lock_model(tx, name).await?;
    if let Some(version) = alias_version(tx, name, alias).await? {
        tx.execute(
            "DELETE FROM registered_model_aliases WHERE name = $1 AND alias = $2",
            &[&name, &alias],
        )
        .await
        .map_err(pg_err)?;
        record(tx, user, name, Change::alias_deleted(version, alias)).await?;
    }
    Ok(())
}

async fn version_by_alias(tx: &Tx<'_>, name: &str, alias: &str) -> Result<ModelVersion> {
    validate_model_name(name)?;
    validate_alias(alias)?;
    require_model(tx, name).await?;
    let version = if alias.eq_ignore_ascii_case("latest") {
        tx.query_one(
            &format!(
                "SELECT MAX(version) FROM model_versions
                 WHERE name = $1 AND current_stage <> '{DELETED}'"
            ),
            &[&name],
        )
        .await
        .map_err(pg_err)?
        .get::<_, Option<i64>>(0)
        .ok_or_else(|| no_latest_version(name))?
    } else {
        alias_version(tx, name, alias)
            .await?
            .ok_or_else(|| alias_not_found(alias))?
    };
    load_version(tx, name, version).await
}

// ---- events and model URIs ----

async fn events(tx: &Tx<'_>, name: &str, version: Option<i64>) -> Result<Vec<RegistryEvent>> {
    tx.query(
        &format!(
            "SELECT {EVENT_COLUMNS} FROM registry_events
             WHERE name = $1 AND ($2::bigint IS NULL OR version = $2) ORDER BY id"
        ),
        &[&name, &version],
    )
    .await
    .map_err(pg_err)?
    .iter()
    .map(event_from)
    .collect::<std::result::Result<_, _>>()
    .map_err(pg_err)
}

async fn resolve(tx: &Tx<'_>, uri: &ModelUri, text: &str) -> Result<ResolvedModel> {
    match uri {
        ModelUri::Version { name, version } => {
            Ok(resolved(load_version(tx, name, *version).await?))
        }
        ModelUri::Alias { name, alias } => Ok(resolved(version_by_alias(tx, name, alias).await?)),
        ModelUri::Latest { name } => Ok(resolved(version_by_alias(tx, name, "latest").await?)),
        ModelUri::Stage { name, stage } => {
            let version = get_latest(tx, name, &[*stage])
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| stage_not_found(name, *stage))?;
            Ok(resolved(version))
        }
        ModelUri::LoggedModel { model_id } => {
            let (location, _) = logged_model(tx, model_id)
                .await?
                .ok_or_else(|| logged_model_not_found(model_id))?;
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

// ---- searches ----

async fn search_models(tx: &Tx<'_>, search: &RegistrySearch) -> Result<Page<RegisteredModel>> {
    let offset = decode_token(search.page_token.as_deref())?;
    let query = model_search_sql(Dialect::Postgres, search, offset)?;
    let names: Vec<String> = tx
        .query(&query.sql, &query.pg_params())
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let page = Page::from_overfetched(names, offset, search.max_results);
    let mut models = Vec::with_capacity(page.items.len());
    for name in &page.items {
        models.push(load_model(tx, name).await?);
    }
    Ok(Page {
        items: models,
        next_page_token: page.next_page_token,
    })
}

async fn search_versions(tx: &Tx<'_>, search: &RegistrySearch) -> Result<Page<ModelVersion>> {
    let offset = decode_token(search.page_token.as_deref())?;
    let query = version_search_sql(Dialect::Postgres, search, offset)?;
    let rows = tx
        .query(&query.sql, &query.pg_params())
        .await
        .map_err(pg_err)?;
    let mut page = Page::from_overfetched(versions_from(&rows)?, offset, search.max_results);
    fill_versions(tx, &mut page.items).await?;
    Ok(page)
}

impl RegistryStore for PgStore {
    fn create_registered_model(
        &self,
        user: &str,
        name: &str,
        tags: Vec<Tag>,
        description: Option<String>,
    ) -> Result<RegisteredModel> {
        self.write(async |tx| create_model(tx, user, name, &tags, description.as_deref()).await)
    }

    fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        self.read(async |tx| load_model(tx, name).await)
    }

    fn rename_registered_model(
        &self,
        user: &str,
        name: &str,
        new_name: &str,
    ) -> Result<RegisteredModel> {
        self.write(async |tx| rename_model(tx, user, name, new_name).await)
    }

    fn update_registered_model(
        &self,
        user: &str,
        name: &str,
        description: Option<String>,
    ) -> Result<RegisteredModel> {
        self.write(async |tx| update_model(tx, user, name, description.as_deref()).await)
    }

    fn delete_registered_model(&self, user: &str, name: &str) -> Result<()> {
        self.write(async |tx| delete_model(tx, user, name).await)
    }

    fn search_registered_models(&self, search: &RegistrySearch) -> Result<Page<RegisteredModel>> {
        self.read(async |tx| search_models(tx, search).await)
    }

    fn get_latest_versions(&self, name: &str, stages: &[Stage]) -> Result<Vec<ModelVersion>> {
        self.read(async |tx| get_latest(tx, name, stages).await)
    }

    fn set_registered_model_tag(&self, user: &str, name: &str, tag: Tag) -> Result<()> {
        self.write(async |tx| set_model_tag(tx, user, name, &tag).await)
    }

    fn delete_registered_model_tag(&self, user: &str, name: &str, key: &str) -> Result<()> {
        self.write(async |tx| delete_model_tag(tx, user, name, key).await)
    }

    fn create_model_version(&self, user: &str, new: NewModelVersion) -> Result<ModelVersion> {
        self.write(async |tx| create_version(tx, user, &new).await)
    }

    fn get_model_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        self.read(async |tx| load_version(tx, name, version).await)
    }

    fn update_model_version(
        &self,
        user: &str,
        name: &str,
        version: i64,
        description: Option<String>,
    ) -> Result<ModelVersion> {
        self.write(async |tx| update_version(tx, user, name, version, description.as_deref()).await)
    }

    fn transition_model_version_stage(
        &self,
        user: &str,
        name: &str,
        version: i64,
        stage: Stage,
        archive_existing_versions: bool,
    ) -> Result<ModelVersion> {
        self.write(async |tx| {
            transition(tx, user, name, version, stage, archive_existing_versions).await
        })
    }

    fn delete_model_version(&self, user: &str, name: &str, version: i64) -> Result<()> {
        self.write(async |tx| delete_version(tx, user, name, version).await)
    }

    fn get_model_version_download_uri(&self, name: &str, version: i64) -> Result<String> {
        self.read(async |tx| Ok(download_uri(load_version(tx, name, version).await?)))
    }

    fn search_model_versions(&self, search: &RegistrySearch) -> Result<Page<ModelVersion>> {
        self.read(async |tx| search_versions(tx, search).await)
    }

    fn set_model_version_tag(&self, user: &str, name: &str, version: i64, tag: Tag) -> Result<()> {
        self.write(async |tx| set_version_tag(tx, user, name, version, &tag).await)
    }

    fn delete_model_version_tag(
        &self,
        user: &str,
        name: &str,
        version: i64,
        key: &str,
    ) -> Result<()> {
        self.write(async |tx| delete_version_tag(tx, user, name, version, key).await)
    }

    fn set_registered_model_alias(
        &self,
        user: &str,
        name: &str,
        alias: &str,
        version: i64,
    ) -> Result<()> {
        self.write(async |tx| set_alias(tx, user, name, alias, version).await)
    }

    fn delete_registered_model_alias(&self, user: &str, name: &str, alias: &str) -> Result<()> {
        self.write(async |tx| delete_alias(tx, user, name, alias).await)
    }

    fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        self.read(async |tx| version_by_alias(tx, name, alias).await)
    }

    fn registry_events(&self, name: &str, version: Option<i64>) -> Result<Vec<RegistryEvent>> {
        self.read(async |tx| events(tx, name, version).await)
    }

    fn resolve_model_uri(&self, uri: &str) -> Result<ResolvedModel> {
        let parsed = parse_model_uri(uri)?;
        self.read(async |tx| resolve(tx, &parsed, uri).await)
    }
}
