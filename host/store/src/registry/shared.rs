//! What every backend's registry shares: entities assembled from column values, MLflow's
//! messages, the checks that need no stored state, the order of searches, and the registry
//! events each change records. The backends keep only their SQL and transactions.

use serde_json::{Value, json};
use wasmflow_core::entities::Tag;
use wasmflow_core::search::{Comparison, Entity, Op, OrderBy, Value as FilterValue};
use wasmflow_core::{Error, Result};

use super::source::{VersionSource, validate_new_version};
use super::{
    AliasRef, IS_PROMPT_TAG_KEY, ModelUri, ModelVersion, NewModelVersion, RegisteredModel,
    RegistryEvent, RegistrySearch, ResolvedModel, Stage,
};
use crate::columns::Columns;
use crate::search_sql::{Binder, Dialect, Query, compare};

pub(crate) const DELETED: &str = Stage::DELETED_INTERNAL;

/// The columns [`version_from`] reads, on `model_versions mv`.
pub(crate) const MV_COLUMNS: &str = "mv.name, mv.version, mv.creation_time, \
    mv.last_updated_time, mv.description, mv.user_id, mv.current_stage, mv.source, \
    mv.storage_location, mv.run_id, mv.run_link, mv.model_id, mv.status, mv.status_message";

/// A version, without its tags and aliases, from the row of [`MV_COLUMNS`].
pub(crate) fn version_from<R: Columns>(r: &R) -> std::result::Result<ModelVersion, R::Error> {
    Ok(ModelVersion {
        name: r.text(0)?,
        version: r.int(1)?,
        creation_timestamp: r.int(2)?,
        last_updated_timestamp: r.int(3)?,
        description: r.opt_text(4)?,
        user_id: r.opt_text(5)?,
        current_stage: r.text(6)?,
        source: r.text(7)?,
        storage_location: r.text(8)?,
        run_id: r.text(9)?,
        run_link: r.text(10)?,
        model_id: r.opt_text(11)?,
        status: r.text(12)?,
        status_message: r.opt_text(13)?,
        tags: Vec::new(),
        aliases: Vec::new(),
    })
}

/// The columns [`model_from`] reads, on `registered_models`.
pub(crate) const RM_COLUMNS: &str = "name, creation_time, last_updated_time, description";

/// A registered model, without tags, aliases and latest versions, from the row of
/// [`RM_COLUMNS`].
pub(crate) fn model_from<R: Columns>(r: &R) -> std::result::Result<RegisteredModel, R::Error> {
    Ok(RegisteredModel {
        name: r.text(0)?,
        creation_timestamp: r.int(1)?,
        last_updated_timestamp: r.int(2)?,
        description: r.opt_text(3)?.filter(|d| !d.is_empty()),
        latest_versions: Vec::new(),
        tags: Vec::new(),
        aliases: Vec::new(),
    })
}

pub(crate) fn alias_from<R: Columns>(r: &R) -> std::result::Result<AliasRef, R::Error> {
    Ok(AliasRef {
        alias: r.text(0)?,
        version: r.int(1)?,
    })
}

/// The columns [`event_from`] reads, on `registry_events`.
pub(crate) const EVENT_COLUMNS: &str = "id, timestamp, user_id, name, version, kind, details";

pub(crate) fn event_from<R: Columns>(r: &R) -> std::result::Result<RegistryEvent, R::Error> {
    Ok(RegistryEvent {
        id: r.int(0)?,
        timestamp: r.int(1)?,
        user_id: r.text(2)?,
        name: r.text(3)?,
        version: r.opt_int(4)?,
        kind: r.text(5)?,
        details: serde_json::from_str(&r.text(6)?).unwrap_or(Value::Null),
    })
}

// ---- messages ----

pub(crate) fn model_not_found(name: &str) -> Error {
    Error::not_found(format!("Registered Model with name={name} not found"))
}

pub(crate) fn version_not_found(name: &str, version: i64) -> Error {
    Error::not_found(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}

pub(crate) fn alias_not_found(alias: &str) -> Error {
    Error::invalid(format!("Registered model alias {alias} not found."))
}

pub(crate) fn no_latest_version(name: &str) -> Error {
    Error::not_found(format!("Latest version not found for model {name}."))
}

pub(crate) fn model_name_taken(new_name: &str) -> Error {
    Error::already_exists(format!(
        "Registered Model (name={new_name}) already exists."
    ))
}

/// MLflow's `handle_resource_already_exist_error`: a model and a prompt never share a name.
pub(crate) fn name_taken(name: &str, existing_is_prompt: bool, new_is_prompt: bool) -> Error {
    let entity = |prompt: bool| if prompt { "Prompt" } else { "Registered Model" };
    if existing_is_prompt != new_is_prompt {
        return Error::already_exists(format!(
            "Tried to create a {} with name '{name}', but the name is already taken by a {}. \
             MLflow does not allow creating a model and a prompt with the same name.",
            entity(new_is_prompt).to_lowercase(),
            entity(existing_is_prompt).to_lowercase(),
        ));
    }
    Error::already_exists(format!(
        "{} (name={name}) already exists.",
        entity(new_is_prompt)
    ))
}

pub(crate) fn prompt_as_source(text: &str) -> Error {
    Error::invalid(format!(
        "Invalid model version source: '{text}'. Prompt versions cannot be used as model \
         version sources."
    ))
}

// ---- checks ----

/// MLflow's `has_prompt_tag` on request tags: the last `mlflow.prompt.is_prompt` tag says "true".
pub(crate) fn has_prompt_tag(tags: &[Tag]) -> bool {
    tags.iter()
        .rev()
        .find(|t| t.key == IS_PROMPT_TAG_KEY)
        .is_some_and(|t| t.value.eq_ignore_ascii_case("true"))
}

/// The placeholder sources MLflow's senders use for prompt versions (`prompt/constants.py`);
/// a prompt version has no files, and MLflow's server refuses any other source for one.
const PROMPT_SOURCE_PLACEHOLDERS: [&str; 2] = ["dummy-source", "prompt-template"];

/// The checks on a new version before the store is read. A prompt version (MLflow's
/// `_is_prompt_request`) carries its template in tags and a placeholder source; for one, its
/// (source, storage location, run id, model id) are returned as given, since there are no files
/// to find. `None`: a model version, whose source the store resolves.
pub(crate) fn check_new_version(new: &NewModelVersion) -> Result<Option<VersionSource>> {
    validate_new_version(new)?;
    if !has_prompt_tag(&new.tags) {
        return Ok(None);
    }
    if !PROMPT_SOURCE_PLACEHOLDERS.contains(&new.source.as_str()) {
        return Err(Error::invalid(format!(
            "Invalid prompt source: '{}'. Prompt sources must use an MLflow placeholder.",
            new.source
        )));
    }
    Ok(Some((
        new.source.clone(),
        new.source.clone(),
        new.run_id.clone().unwrap_or_default(),
        new.model_id.clone().filter(|m| !m.is_empty()),
    )))
}

/// `archive_existing_versions` only applies to the active stages.
pub(crate) fn check_transition(stage: Stage, archive_existing: bool) -> Result<()> {
    if archive_existing && !stage.is_active() {
        return Err(Error::invalid(format!(
            "Model version transition cannot archive existing model versions because '{}' is \
             not an Active stage. Valid stages are ['Staging', 'Production']",
            stage.as_str()
        )));
    }
    Ok(())
}

/// The stages `get_latest_versions` answers for (every stage when none is named).
pub(crate) fn wanted_stages(stages: &[Stage]) -> Vec<&'static str> {
    if stages.is_empty() {
        Stage::ALL.iter().map(|s| s.as_str()).collect()
    } else {
        stages.iter().map(|s| s.as_str()).collect()
    }
}

/// Where a version's files are: its storage location, or its source for versions that have none.
pub(crate) fn download_uri(version: ModelVersion) -> String {
    if version.storage_location.is_empty() {
        version.source
    } else {
        version.storage_location
    }
}

pub(crate) fn resolved(version: ModelVersion) -> ResolvedModel {
    ResolvedModel {
        name: Some(version.name.clone()),
        version: Some(version.version.to_string()),
        source: version.source.clone(),
        model_id: version.model_id.clone(),
        artifact_uri: download_uri(version),
    }
}

/// The registered model a `models:/` URI names, unless it names a logged model.
pub(crate) fn registered_name(uri: &ModelUri) -> Option<&str> {
    match uri {
        ModelUri::Version { name, .. }
        | ModelUri::Stage { name, .. }
        | ModelUri::Latest { name }
        | ModelUri::Alias { name, .. } => Some(name),
        ModelUri::LoggedModel { .. } => None,
    }
}

/// The (name, version) a resolved `models:/` URI names.
pub(crate) fn resolved_version(resolved: &ResolvedModel) -> (&str, i64) {
    let name = resolved.name.as_deref().unwrap_or_default();
    let version = resolved
        .version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    (name, version)
}

pub(crate) fn stage_not_found(name: &str, stage: Stage) -> Error {
    Error::not_found(format!(
        "No versions of model with name '{name}' and stage '{}' found",
        stage.as_str()
    ))
}

pub(crate) fn logged_model_not_found(model_id: &str) -> Error {
    Error::not_found(format!("Logged model with ID '{model_id}' not found."))
}

/// The logged model's `mlflow.modelVersions` tag with the version added, as MLflow's server
/// writes it: byte for byte `json.dumps` with its default separators (clients and MLflow's UI
/// read the tag as text).
pub(crate) fn linked_versions(existing: Option<String>, name: &str, version: i64) -> String {
    let mut list: Vec<Value> = existing
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    let entry = json!({ "name": name, "version": version });
    if !list.contains(&entry) {
        list.push(entry);
    }
    wasmflow_core::pyjson::dumps(&Value::Array(list), wasmflow_core::pyjson::Style::Default)
}

pub(crate) const LINKED_VERSIONS_TAG: &str = "mlflow.modelVersions";

// ---- searches ----

/// Whether a filter asks for prompts (MLflow's `_is_querying_prompt`); otherwise prompts are
/// left out of registry searches and the prompt tag's clauses are dropped.
fn querying_prompts(filter: &[Comparison]) -> bool {
    filter
        .iter()
        .find(|c| c.entity == Entity::Tag && c.key == IS_PROMPT_TAG_KEY)
        .is_some_and(|c| match (&c.op, &c.value) {
            (Op::Eq, FilterValue::Str(v)) => v.eq_ignore_ascii_case("true"),
            (Op::Ne, FilterValue::Str(v)) => v.eq_ignore_ascii_case("false"),
            _ => false,
        })
}

/// The column a registered-model search filters `name` on.
fn model_filter_column(key: &str) -> Result<&'static str> {
    match key {
        "name" => Ok("rm.name"),
        other => Err(Error::invalid(format!("Invalid attribute name: {other}"))),
    }
}

/// The column a model-version search filters an attribute on; `version_number` takes integers.
fn version_filter_column(c: &Comparison) -> Result<&'static str> {
    Ok(match c.key.as_str() {
        "name" => "mv.name",
        "run_id" => "mv.run_id",
        "source_path" => "mv.source",
        "version_number" => {
            if let FilterValue::Number(n) = c.value
                && n.fract() != 0.0
            {
                return Err(Error::invalid(format!(
                    "Invalid value for numeric attribute 'version_number': {n}"
                )));
            }
            "mv.version"
        }
        other => return Err(Error::invalid(format!("Invalid attribute name: {other}"))),
    })
}

/// The SQL condition for one tag clause against `table` (correlated on `on`).
fn tag_condition(c: &Comparison, table: &str, on: &str, b: &mut Binder) -> Result<String> {
    let key = b.text(c.key.clone());
    let cond = compare("t.value", c.op, &c.value, b)?;
    Ok(format!(
        "EXISTS (SELECT 1 FROM {table} t WHERE {on} AND t.key = {key} AND {cond})"
    ))
}

/// The WHERE conditions of a registry search, in the order they are bound.
fn registry_conditions(
    filter: &[Comparison],
    tag_table: &str,
    on: &str,
    same_name: &str,
    attribute: impl Fn(&Comparison) -> Result<&'static str>,
    b: &mut Binder,
) -> Result<Vec<String>> {
    let prompts = querying_prompts(filter);
    let mut conditions = Vec::new();
    for c in filter {
        match c.entity {
            Entity::Attribute => conditions.push(compare(attribute(c)?, c.op, &c.value, b)?),
            Entity::Tag if c.key == IS_PROMPT_TAG_KEY && !prompts => {}
            Entity::Tag => conditions.push(tag_condition(c, tag_table, on, b)?),
            other => {
                return Err(Error::invalid(format!(
                    "Invalid entity type '{other:?}' for the model registry"
                )));
            }
        }
    }
    if !prompts {
        // As MLflow's anti-join: a name with any prompt-tagged row is a prompt, all its rows go.
        let key = b.text(IS_PROMPT_TAG_KEY);
        conditions.push(format!(
            "NOT EXISTS (SELECT 1 FROM {tag_table} t WHERE {same_name} AND t.key = {key} \
             AND t.value = 'true')"
        ));
    }
    Ok(conditions)
}

/// One page of a registered-model search in `dialect`: the names, one more than a page (see
/// `Page::from_overfetched`), from `offset`.
pub(crate) fn model_search_sql(
    dialect: Dialect,
    search: &RegistrySearch,
    offset: u64,
) -> Result<Query> {
    let mut b = Binder::new(dialect);
    let mut conditions = registry_conditions(
        &search.filter,
        "registered_model_tags",
        "t.name = rm.name",
        "t.name = rm.name",
        |c| model_filter_column(&c.key),
        &mut b,
    )?;
    if conditions.is_empty() {
        conditions.push("TRUE".into());
    }
    let order = model_order(&search.order_by)?;
    let page = b.page(search.max_results.saturating_add(1), offset);
    let sql = format!(
        "SELECT rm.name FROM registered_models rm WHERE {} ORDER BY {order} {page}",
        conditions.join(" AND "),
    );
    Ok(b.finish(sql))
}

/// One page of a model-version search in `dialect`: rows of [`MV_COLUMNS`], one more than a
/// page, from `offset`.
pub(crate) fn version_search_sql(
    dialect: Dialect,
    search: &RegistrySearch,
    offset: u64,
) -> Result<Query> {
    let mut b = Binder::new(dialect);
    let mut conditions = registry_conditions(
        &search.filter,
        "model_version_tags",
        "t.name = mv.name AND t.version = mv.version",
        "t.name = mv.name",
        version_filter_column,
        &mut b,
    )?;
    conditions.push(format!("mv.current_stage <> '{DELETED}'"));
    let order = version_order(&search.order_by)?;
    let page = b.page(search.max_results.saturating_add(1), offset);
    let sql = format!(
        "SELECT {MV_COLUMNS} FROM model_versions mv WHERE {} ORDER BY {order} {page}",
        conditions.join(" AND "),
    );
    Ok(b.finish(sql))
}

fn order_clauses(
    order_by: &[OrderBy],
    column: impl Fn(&str) -> Result<&'static str>,
) -> Result<(Vec<String>, Vec<&'static str>)> {
    let mut seen = Vec::new();
    let mut clauses = Vec::new();
    for o in order_by {
        let col = column(&o.key)?;
        if seen.contains(&col) {
            return Err(Error::invalid(format!(
                "`order_by` contains duplicate fields: {:?}",
                order_by.iter().map(|o| o.key.as_str()).collect::<Vec<_>>()
            )));
        }
        seen.push(col);
        clauses.push(format!(
            "{col} {}",
            if o.ascending { "ASC" } else { "DESC" }
        ));
    }
    Ok((clauses, seen))
}

/// The ORDER BY of a registered-model search (on `registered_models rm`): the requested order,
/// then the name, so that pages are stable.
fn model_order(order_by: &[OrderBy]) -> Result<String> {
    let (mut order, seen) = order_clauses(order_by, |key| match key {
        "name" => Ok("rm.name"),
        "creation_timestamp" => Ok("rm.creation_time"),
        "last_updated_timestamp" | "timestamp" => Ok("rm.last_updated_time"),
        other => Err(Error::invalid(format!(
            "Invalid order by key '{other}' specified.Valid keys are '{{'name', 'timestamp'}}'"
        ))),
    })?;
    if !seen.contains(&"rm.name") {
        order.push("rm.name ASC".into());
    }
    Ok(order.join(", "))
}

/// The ORDER BY of a model-version search (on `model_versions mv`): the requested order
/// (MLflow's default: most recently updated first), then name and newest version.
fn version_order(order_by: &[OrderBy]) -> Result<String> {
    let default_order;
    let order_by = if order_by.is_empty() {
        default_order = [
            ("last_updated_timestamp", false),
            ("name", true),
            ("version_number", false),
        ]
        .map(|(key, ascending)| OrderBy {
            entity: Entity::Attribute,
            key: key.into(),
            ascending,
        });
        &default_order[..]
    } else {
        order_by
    };
    let (mut order, seen) = order_clauses(order_by, |key| match key {
        "name" => Ok("mv.name"),
        "version_number" => Ok("mv.version"),
        "creation_timestamp" => Ok("mv.creation_time"),
        "last_updated_timestamp" | "timestamp" => Ok("mv.last_updated_time"),
        other => Err(Error::invalid(format!(
            "Invalid order by key '{other}' specified. Valid keys are {{'name', \
             'version_number', 'creation_timestamp', 'last_updated_timestamp'}}"
        ))),
    })?;
    if !seen.contains(&"mv.name") {
        order.push("mv.name ASC".into());
    }
    if !seen.contains(&"mv.version") {
        order.push("mv.version DESC".into());
    }
    Ok(order.join(", "))
}

// ---- registry events ----

/// One change as the event log records it (with the acting user and the model's name).
pub(crate) struct Change {
    pub version: Option<i64>,
    pub kind: &'static str,
    pub details: Value,
}

impl Change {
    fn model(kind: &'static str, details: Value) -> Self {
        Self {
            version: None,
            kind,
            details,
        }
    }

    fn version(version: i64, kind: &'static str, details: Value) -> Self {
        Self {
            version: Some(version),
            kind,
            details,
        }
    }

    pub fn model_created(description: Option<&str>, tags: &[Tag]) -> Self {
        Self::model(
            "registered_model_created",
            json!({ "description": description, "tags": tags }),
        )
    }

    pub fn model_renamed(from: &str, to: &str) -> Self {
        Self::model(
            "registered_model_renamed",
            json!({ "from": from, "to": to }),
        )
    }

    pub fn model_updated(description: Option<&str>) -> Self {
        Self::model(
            "registered_model_updated",
            json!({ "description": description }),
        )
    }

    pub fn model_deleted(versions: i64) -> Self {
        Self::model("registered_model_deleted", json!({ "versions": versions }))
    }

    pub fn model_tag_set(tag: &Tag) -> Self {
        Self::model(
            "registered_model_tag_set",
            json!({ "key": tag.key, "value": tag.value }),
        )
    }

    pub fn model_tag_deleted(key: &str) -> Self {
        Self::model("registered_model_tag_deleted", json!({ "key": key }))
    }

    pub fn version_created(
        version: i64,
        source: &str,
        run_id: &str,
        model_id: Option<&str>,
        storage: &str,
    ) -> Self {
        Self::version(
            version,
            "model_version_created",
            json!({ "source": source, "run_id": run_id, "model_id": model_id,
                    "storage_location": storage }),
        )
    }

    pub fn version_updated(version: i64, description: Option<&str>) -> Self {
        Self::version(
            version,
            "model_version_updated",
            json!({ "description": description }),
        )
    }

    /// Another version moved to Archived by `archived_by`'s transition.
    pub fn version_archived(version: i64, from: Stage, archived_by: i64) -> Self {
        Self::version(
            version,
            "model_version_stage_transitioned",
            json!({ "from": from.as_str(), "to": "Archived", "archived_by": archived_by }),
        )
    }

    pub fn version_transitioned(version: i64, from: &str, to: Stage, archive: bool) -> Self {
        Self::version(
            version,
            "model_version_stage_transitioned",
            json!({ "from": from, "to": to.as_str(), "archive_existing_versions": archive }),
        )
    }

    pub fn version_deleted(current: &ModelVersion) -> Self {
        Self::version(
            current.version,
            "model_version_deleted",
            json!({ "stage": current.current_stage, "source": current.source,
                    "aliases_cleared": current.aliases }),
        )
    }

    pub fn version_tag_set(version: i64, tag: &Tag) -> Self {
        Self::version(
            version,
            "model_version_tag_set",
            json!({ "key": tag.key, "value": tag.value }),
        )
    }

    pub fn version_tag_deleted(version: i64, key: &str) -> Self {
        Self::version(version, "model_version_tag_deleted", json!({ "key": key }))
    }

    pub fn alias_set(version: i64, alias: &str, previous: Option<i64>) -> Self {
        Self::version(
            version,
            "alias_set",
            json!({ "alias": alias, "previous_version": previous }),
        )
    }

    pub fn alias_deleted(version: i64, alias: &str) -> Self {
        Self::version(version, "alias_deleted", json!({ "alias": alias }))
    }
}

/// What a deleted version's row keeps: MLflow redacts it but keeps the number, so that the
/// number is never reused. The SET list of the UPDATE, after `current_stage` and
/// `last_updated_time`.
pub(crate) const REDACTED_VERSION: &str = "description = NULL, user_id = NULL, \
    source = 'REDACTED-SOURCE-PATH', storage_location = '', run_id = 'REDACTED-RUN-ID', \
    run_link = 'REDACTED-RUN-LINK', status_message = NULL";
