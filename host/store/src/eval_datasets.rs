//! MLflow 3's GenAI evaluation datasets (`datasets.proto`): the entities in their wire shape,
//! the [`EvalDatasetStore`] trait, and the rules every store shares: how a record is read from a
//! request, deduplicated by its inputs and merged into the stored one, how the dataset's schema
//! and digest follow its records (MLflow's `SqlAlchemyStore` dataset methods).

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use wasmflow_core::paging::Page;
use wasmflow_core::pyjson::{self, Style};
use wasmflow_core::search::{Comparison, Entity, OrderBy};
use wasmflow_core::{Error, Result};

use crate::columns::Columns;
use crate::search_sql::{Binder, Bound, Dialect, Query, compare};

/// What MLflow answers for `max_results` of a dataset search, and its upper bound.
pub const SEARCH_MAX_RESULTS_DEFAULT: usize = 1000;
pub const SEARCH_MAX_RESULTS_THRESHOLD: usize = 50_000;
/// The page size of `GET .../records` when the request gives none.
pub const RECORDS_MAX_RESULTS_DEFAULT: usize = 1000;
/// The tag whose value MLflow takes as the acting user (`mlflow.user`).
pub const USER_TAG: &str = "mlflow.user";

/// An evaluation dataset in MLflow's wire shape (`Dataset` in datasets.proto): tags, schema and
/// profile are JSON texts there.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalDataset {
    pub dataset_id: String,
    pub name: String,
    pub tags: Vec<(String, String)>,
    pub schema: Option<String>,
    pub profile: Option<String>,
    pub digest: String,
    pub created_time: i64,
    pub last_update_time: i64,
    pub created_by: Option<String>,
    pub last_updated_by: Option<String>,
    /// Only what MLflow's create answer carries; other answers leave it out (the client asks
    /// `experiment-ids` for it).
    pub experiment_ids: Vec<String>,
}

impl EvalDataset {
    /// The message as MLflow's server writes it (`EvaluationDataset.to_proto`).
    pub fn to_json(&self) -> Value {
        let tags: Map<String, Value> = self
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut out = Map::new();
        out.insert("dataset_id".into(), json!(self.dataset_id));
        out.insert("name".into(), json!(self.name));
        out.insert("tags".into(), json!(python_json(&Value::Object(tags))));
        if let Some(schema) = &self.schema {
            out.insert("schema".into(), json!(schema));
        }
        if let Some(profile) = &self.profile {
            out.insert("profile".into(), json!(profile));
        }
        out.insert("digest".into(), json!(self.digest));
        out.insert("created_time".into(), json!(self.created_time));
        out.insert("last_update_time".into(), json!(self.last_update_time));
        if let Some(by) = &self.created_by {
            out.insert("created_by".into(), json!(by));
        }
        if let Some(by) = &self.last_updated_by {
            out.insert("last_updated_by".into(), json!(by));
        }
        if !self.experiment_ids.is_empty() {
            out.insert("experiment_ids".into(), json!(self.experiment_ids));
        }
        Value::Object(out)
    }
}

#[derive(Debug, Clone)]
pub struct EvalDatasetSearch {
    /// Only datasets linked to one of these experiments (all when empty).
    pub experiment_ids: Vec<String>,
    pub filter: Vec<Comparison>,
    pub order_by: Vec<OrderBy>,
    pub max_results: usize,
    pub page_token: Option<String>,
}

/// Where a page of records starts: after the record with this (created_time, id).
pub type RecordCursor = (i64, String);

/// One page of records, each in MLflow's `DatasetRecord.to_dict` shape.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordsPage {
    pub records: Vec<Value>,
    pub next: Option<RecordCursor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpsertCounts {
    pub inserted: u64,
    pub updated: u64,
}

/// Evaluation datasets, their records, tags and experiment links.
pub trait EvalDatasetStore: Send + Sync + 'static {
    fn create_eval_dataset(
        &self,
        name: &str,
        tags: Vec<(String, String)>,
        experiment_ids: Vec<String>,
    ) -> Result<EvalDataset>;
    fn get_eval_dataset(&self, dataset_id: &str) -> Result<EvalDataset>;
    /// Deletes the dataset with its records, tags and links; an unknown id is not an error.
    fn delete_eval_dataset(&self, dataset_id: &str) -> Result<()>;
    fn search_eval_datasets(&self, search: &EvalDatasetSearch) -> Result<Page<EvalDataset>>;
    /// Sets (adds or replaces) these tags.
    fn set_eval_dataset_tags(&self, dataset_id: &str, tags: Vec<(String, String)>) -> Result<()>;
    /// Removes a tag; an unknown dataset or tag is not an error.
    fn delete_eval_dataset_tag(&self, dataset_id: &str, key: &str) -> Result<()>;
    /// Inserts records whose inputs are new and merges the others into the stored ones.
    fn upsert_eval_dataset_records(
        &self,
        dataset_id: &str,
        records: Vec<NewRecord>,
    ) -> Result<UpsertCounts>;
    /// Records in (created_time, id) order, `max_results` at most, after `after`.
    fn eval_dataset_records(
        &self,
        dataset_id: &str,
        max_results: usize,
        after: Option<RecordCursor>,
    ) -> Result<RecordsPage>;
    /// Deletes these records of the dataset; returns how many there were.
    fn delete_eval_dataset_records(&self, dataset_id: &str, record_ids: &[String]) -> Result<u64>;
    fn eval_dataset_experiment_ids(&self, dataset_id: &str) -> Result<Vec<String>>;
    fn add_eval_dataset_to_experiments(
        &self,
        dataset_id: &str,
        experiment_ids: &[String],
    ) -> Result<EvalDataset>;
    fn remove_eval_dataset_from_experiments(
        &self,
        dataset_id: &str,
        experiment_ids: &[String],
    ) -> Result<EvalDataset>;
}

/// JSON text as MLflow's server writes the JSON strings inside its messages (`json.dumps`).
pub fn python_json(value: &Value) -> String {
    pyjson::dumps(value, Style::Default)
}

// ---- ids, digests and errors ----

pub fn new_dataset_id() -> String {
    format!("d-{}", uuid::Uuid::new_v4().simple())
}

pub fn new_record_id() -> String {
    format!("dr-{}", uuid::Uuid::new_v4().simple())
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// MLflow's `_compute_dataset_digest`: the first 8 hex digits of SHA-256 of `name:time`, so
/// every change of the records gives a new digest.
pub fn dataset_digest(name: &str, last_update_time: i64) -> String {
    sha256_hex(format!("{name}:{last_update_time}").as_bytes())[..8].to_string()
}

pub fn dataset_not_found(dataset_id: &str) -> Error {
    Error::not_found(format!(
        "Evaluation dataset with id '{dataset_id}' not found"
    ))
}

/// What `add-experiments`/`remove-experiments` answer for an unknown dataset.
pub fn dataset_not_found_short(dataset_id: &str) -> Error {
    Error::not_found(format!("Dataset '{dataset_id}' not found"))
}

pub fn experiment_not_found(experiment_id: &str) -> Error {
    Error::not_found(format!("No Experiment with id={experiment_id}"))
}

/// A tag value as MLflow stores it: `str(value)` of the JSON value; absent for `null`.
pub fn tag_value(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        other => Some(other.to_string()),
    }
}

/// Parses the JSON object text of a `tags` field into (key, value) pairs.
pub fn parse_tags(text: &str) -> Result<Vec<(String, String)>> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid(format!("'tags' must be a JSON object: {e} (got '{text}')")))?;
    let Value::Object(map) = value else {
        return Err(Error::invalid(format!(
            "'tags' must be a JSON object, got '{text}'"
        )));
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| tag_value(&v).map(|v| (k, v)))
        .collect())
}

// ---- rows (both backends read the same columns) ----

/// The `evaluation_datasets d` columns [`dataset_from_row`] reads, in its order.
pub(crate) const DATASET_COLUMNS: &str = "d.dataset_id, d.name, d.schema_json, d.profile, \
    d.digest, d.created_time, d.last_update_time, d.created_by, d.last_updated_by";

/// A dataset from a row of [`DATASET_COLUMNS`], without tags and experiments.
pub(crate) fn dataset_from_row<C: Columns>(r: &C) -> std::result::Result<EvalDataset, C::Error> {
    Ok(EvalDataset {
        dataset_id: r.text(0)?,
        name: r.text(1)?,
        tags: Vec::new(),
        schema: r.opt_text(2)?,
        profile: r.opt_text(3)?,
        digest: r.text(4)?,
        created_time: r.int(5)?,
        last_update_time: r.int(6)?,
        created_by: r.opt_text(7)?,
        last_updated_by: r.opt_text(8)?,
        experiment_ids: Vec::new(),
    })
}

/// The `evaluation_dataset_records` columns [`record_from_row`] reads, in its order.
pub(crate) const RECORD_COLUMNS: &str = "dataset_record_id, dataset_id, inputs, outputs, \
    expectations, tags, source, source_id, source_type, created_time, last_update_time, \
    created_by, last_updated_by";

pub(crate) fn record_from_row<C: Columns>(r: &C) -> std::result::Result<StoredRecord, C::Error> {
    Ok(StoredRecord {
        dataset_record_id: r.text(0)?,
        dataset_id: r.text(1)?,
        inputs: r.text(2)?,
        outputs: r.opt_text(3)?,
        expectations: r.opt_text(4)?,
        tags: r.opt_text(5)?,
        source: r.opt_text(6)?,
        source_id: r.opt_text(7)?,
        source_type: r.opt_text(8)?,
        created_time: r.int(9)?,
        last_update_time: r.int(10)?,
        created_by: r.opt_text(11)?,
        last_updated_by: r.opt_text(12)?,
    })
}

/// A new dataset needs a name.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid(
            "Missing value for required parameter 'name'. See the API docs for more \
             information about request parameters.",
        ));
    }
    Ok(())
}

/// The acting user MLflow records for a new dataset: its `mlflow.user` tag.
pub(crate) fn creator(tags: &[(String, String)]) -> Option<&str> {
    tags.iter()
        .find(|(k, _)| k == USER_TAG)
        .map(|(_, v)| v.as_str())
}

/// The column of `evaluation_datasets d` an attribute filter compares.
fn filter_column(key: &str) -> Result<&'static str> {
    Ok(match key {
        "name" => "d.name",
        "created_time" => "d.created_time",
        "last_update_time" => "d.last_update_time",
        "created_by" => "d.created_by",
        "last_updated_by" => "d.last_updated_by",
        other => {
            return Err(Error::invalid(format!(
                "Invalid attribute key '{other}' specified."
            )));
        }
    })
}

/// The search's `ORDER BY` on `evaluation_datasets d`: the asked order (newest first by
/// default), then the id.
fn order_by_sql(order_by: &[OrderBy]) -> Result<String> {
    let mut order = Vec::new();
    for o in order_by {
        let column = match o.key.as_str() {
            "name" => "d.name",
            "created_time" => "d.created_time",
            "last_update_time" => "d.last_update_time",
            other => {
                return Err(Error::invalid(format!(
                    "Invalid attribute key '{other}' specified. Valid keys are: \
                     {{'name', 'created_time', 'last_update_time'}}"
                )));
            }
        };
        order.push(format!(
            "{column} {}",
            if o.ascending { "ASC" } else { "DESC" }
        ));
    }
    if order.is_empty() {
        order.push("d.created_time DESC".into());
    }
    order.push("d.dataset_id DESC".into());
    Ok(order.join(", "))
}

/// The search compiled for `dialect`: rows of [`DATASET_COLUMNS`], one more than asked (to know
/// whether a next page exists).
pub(crate) fn search_query(
    search: &EvalDatasetSearch,
    offset: u64,
    dialect: Dialect,
) -> Result<Query> {
    let mut b = Binder::new(dialect);
    let mut conditions = vec!["1 = 1".to_string()];
    if !search.experiment_ids.is_empty() {
        let linked = b.in_list(
            "CAST(e.experiment_id AS TEXT)",
            false,
            Bound::TextList(search.experiment_ids.clone()),
        );
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM evaluation_dataset_experiments e
                     WHERE e.dataset_id = d.dataset_id AND {linked})"
        ));
    }
    for c in &search.filter {
        match c.entity {
            Entity::Attribute => {
                conditions.push(compare(filter_column(&c.key)?, c.op, &c.value, &mut b)?);
            }
            Entity::Tag => {
                let key = b.text(c.key.clone());
                let cond = compare("t.value", c.op, &c.value, &mut b)?;
                conditions.push(format!(
                    "EXISTS (SELECT 1 FROM evaluation_dataset_tags t
                             WHERE t.dataset_id = d.dataset_id AND t.key = {key} AND {cond})"
                ));
            }
            other => {
                return Err(Error::invalid(format!(
                    "Invalid entity type '{other:?}' for evaluation datasets"
                )));
            }
        }
    }
    let sql = format!(
        "SELECT {DATASET_COLUMNS} FROM evaluation_datasets d WHERE {} ORDER BY {} {}",
        conditions.join(" AND "),
        order_by_sql(&search.order_by)?,
        b.page(search.max_results + 1, offset)
    );
    Ok(b.finish(sql))
}

/// The profile after deleting records: MLflow counts it down, and an emptied dataset's profile
/// is JSON `null`.
pub(crate) fn profile_after_delete(remaining: u64) -> String {
    profile(remaining).unwrap_or_else(|| "null".into())
}

/// The page of records after overfetching one: the cursor of the next page when there is more.
pub(crate) fn records_page(mut rows: Vec<StoredRecord>, max_results: usize) -> RecordsPage {
    let next = if rows.len() > max_results {
        rows.truncate(max_results);
        rows.last()
            .map(|r| (r.created_time, r.dataset_record_id.clone()))
    } else {
        None
    };
    RecordsPage {
        records: rows.iter().map(StoredRecord::to_json).collect(),
        next,
    }
}

/// The record an upsert writes for `record`: the stored one (found by its inputs' hash) merged
/// with it, or a new one. The flag says whether it is new.
pub(crate) fn upserted(
    dataset_id: &str,
    stored: Option<StoredRecord>,
    record: &NewRecord,
    now: i64,
) -> (StoredRecord, bool) {
    match stored {
        Some(mut stored) => {
            stored.merge(record, now);
            (stored, false)
        }
        None => (StoredRecord::new(dataset_id, record, now), true),
    }
}

/// What an upsert sets on its dataset: the schema with the records' fields, the record count
/// (`remaining`), a new digest, and the last updater (the last record naming a user, or nobody,
/// as MLflow).
pub(crate) struct DatasetUpdate {
    pub last_updated_by: Option<String>,
    pub digest: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
}

impl DatasetUpdate {
    pub(crate) fn after_upsert(
        dataset: &EvalDataset,
        records: &[NewRecord],
        num_records: u64,
        now: i64,
    ) -> Self {
        Self {
            last_updated_by: records.iter().rev().find_map(NewRecord::user),
            digest: dataset_digest(&dataset.name, now),
            schema: updated_schema(dataset.schema.as_deref(), records)
                .or_else(|| dataset.schema.clone()),
            profile: profile(num_records).or_else(|| dataset.profile.clone()),
        }
    }
}

// ---- records ----

/// The source types of `DatasetRecordSourceType`.
const SOURCE_TYPES: [&str; 5] = ["UNSPECIFIED", "TRACE", "HUMAN", "DOCUMENT", "CODE"];

/// A record as a request gives it, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    pub inputs: Map<String, Value>,
    /// `None`: the request has no `outputs` key; `Some(Null)`: it says `null`.
    pub outputs: Option<Value>,
    pub expectations: Option<Map<String, Value>>,
    pub tags: Option<Map<String, Value>>,
    /// `{"source_type": ..., "source_data": {...}}` with the type in upper case.
    pub source: Option<Value>,
}

impl NewRecord {
    /// Reads one element of the upsert's `records` list as MLflow's store does.
    pub fn from_json(value: Value) -> Result<Self> {
        let Value::Object(mut map) = value else {
            return Err(Error::invalid(format!(
                "each dataset record must be a JSON object, got '{value}'"
            )));
        };
        let object = |field: &str, v: Option<Value>| -> Result<Option<Map<String, Value>>> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(m)) => Ok(Some(m)),
                Some(other) => Err(Error::invalid(format!(
                    "the record's '{field}' must be a JSON object, got '{other}'"
                ))),
            }
        };
        let inputs = object("inputs", map.remove("inputs"))?.unwrap_or_default();
        let expectations = object("expectations", map.remove("expectations"))?;
        let tags = object("tags", map.remove("tags"))?;
        let source = match map.remove("source") {
            None | Some(Value::Null) => None,
            Some(Value::Object(source)) => Some(parse_source(source)?),
            Some(other) => {
                return Err(Error::invalid(format!(
                    "the record's 'source' must be a JSON object, got '{other}'"
                )));
            }
        };
        Ok(Self {
            inputs,
            outputs: map.remove("outputs"),
            expectations,
            tags,
            source,
        })
    }

    /// SHA-256 of the inputs as JSON with sorted keys (MLflow's dedup key).
    pub fn input_hash(&self) -> String {
        sha256_hex(canonical_json(&Value::Object(self.inputs.clone())).as_bytes())
    }

    /// The `mlflow.user` tag, which MLflow records as the acting user.
    pub fn user(&self) -> Option<String> {
        self.tags
            .as_ref()
            .and_then(|t| t.get(USER_TAG))
            .and_then(tag_value)
    }

    /// (source_id, source_type) as `DatasetRecord` derives them from the source: a trace's id,
    /// else the source data's `source_id`.
    pub fn source_keys(&self) -> (Option<String>, Option<String>) {
        let Some(source) = &self.source else {
            return (None, None);
        };
        let kind = source["source_type"].as_str().unwrap_or("UNSPECIFIED");
        let id_key = if kind == "TRACE" {
            "trace_id"
        } else {
            "source_id"
        };
        let id = source["source_data"].get(id_key).and_then(tag_value);
        (id, Some(kind.to_string()))
    }
}

fn parse_source(mut source: Map<String, Value>) -> Result<Value> {
    let kind = match source.remove("source_type") {
        Some(Value::String(s)) => s.to_uppercase(),
        other => {
            return Err(Error::invalid(format!(
                "the record source's 'source_type' must be a string, got '{}'",
                other.unwrap_or(Value::Null)
            )));
        }
    };
    if !SOURCE_TYPES.contains(&kind.as_str()) {
        return Err(Error::invalid(format!(
            "Invalid dataset record source type: {kind}. Valid source types: ['UNSPECIFIED', \
             'TRACE', 'HUMAN', 'DOCUMENT', 'CODE']"
        )));
    }
    let data = match source.remove("source_data") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(m)) => Value::Object(m),
        Some(other) => {
            return Err(Error::invalid(format!(
                "the record source's 'source_data' must be a JSON object, got '{other}'"
            )));
        }
    };
    Ok(json!({ "source_type": kind, "source_data": data }))
}

/// JSON with every object's keys sorted, as Python's `json.dumps(sort_keys=True)` orders them.
fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// A stored record, its JSON fields as text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredRecord {
    pub dataset_record_id: String,
    pub dataset_id: String,
    pub inputs: String,
    pub outputs: Option<String>,
    pub expectations: Option<String>,
    pub tags: Option<String>,
    pub source: Option<String>,
    pub source_id: Option<String>,
    pub source_type: Option<String>,
    pub created_time: i64,
    pub last_update_time: i64,
    pub created_by: Option<String>,
    pub last_updated_by: Option<String>,
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl StoredRecord {
    /// A new record from a request, as MLflow stores it: outputs `{}` when the request has
    /// none, tags `{}` when absent.
    pub fn new(dataset_id: &str, record: &NewRecord, now: i64) -> Self {
        let (source_id, source_type) = record.source_keys();
        let user = record.user();
        Self {
            dataset_record_id: new_record_id(),
            dataset_id: dataset_id.to_string(),
            inputs: Value::Object(record.inputs.clone()).to_string(),
            outputs: match &record.outputs {
                None => Some("{}".into()),
                Some(Value::Null) => None,
                Some(v) => Some(v.to_string()),
            },
            expectations: record
                .expectations
                .as_ref()
                .map(|e| Value::Object(e.clone()).to_string()),
            tags: Some(Value::Object(record.tags.clone().unwrap_or_default()).to_string()),
            source: record.source.as_ref().map(Value::to_string),
            source_id,
            source_type,
            created_time: now,
            last_update_time: now,
            created_by: user.clone(),
            last_updated_by: user,
        }
    }

    /// MLflow's `SqlEvaluationDatasetRecord.merge`: outputs replaced when the request has the
    /// key, expectations and tags merged key by key, the source kept.
    pub fn merge(&mut self, record: &NewRecord, now: i64) {
        if let Some(outputs) = &record.outputs {
            self.outputs = (!outputs.is_null()).then(|| outputs.to_string());
        }
        let merged = |current: &Option<String>, new: &Map<String, Value>| {
            let mut map = match current.as_deref().map(parsed) {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            for (k, v) in new {
                map.insert(k.clone(), v.clone());
            }
            Value::Object(map).to_string()
        };
        if let Some(expectations) = record.expectations.as_ref().filter(|e| !e.is_empty()) {
            self.expectations = Some(merged(&self.expectations, expectations));
        }
        if let Some(tags) = record.tags.as_ref().filter(|t| !t.is_empty()) {
            self.tags = Some(merged(&self.tags, tags));
        }
        self.last_update_time = now;
        if let Some(user) = record.user() {
            self.last_updated_by = Some(user);
        }
    }

    /// The record as MLflow's `DatasetRecord.to_dict` writes it.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("dataset_record_id".into(), json!(self.dataset_record_id));
        out.insert("dataset_id".into(), json!(self.dataset_id));
        out.insert("inputs".into(), parsed(&self.inputs));
        if let Some(e) = &self.expectations {
            out.insert("expectations".into(), parsed(e));
        }
        out.insert(
            "tags".into(),
            self.tags.as_deref().map_or_else(|| json!({}), parsed),
        );
        if let Some(s) = &self.source {
            out.insert("source".into(), parsed(s));
        }
        if let Some(id) = &self.source_id {
            out.insert("source_id".into(), json!(id));
        }
        if let Some(kind) = &self.source_type {
            out.insert("source_type".into(), json!(kind));
        }
        out.insert("created_time".into(), json!(self.created_time));
        out.insert("last_update_time".into(), json!(self.last_update_time));
        if let Some(by) = &self.created_by {
            out.insert("created_by".into(), json!(by));
        }
        if let Some(by) = &self.last_updated_by {
            out.insert("last_updated_by".into(), json!(by));
        }
        if let Some(o) = &self.outputs {
            out.insert("outputs".into(), parsed(o));
        }
        Value::Object(out)
    }
}

// ---- schema ----

/// MLflow's `_infer_field_type`.
fn field_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// MLflow's `_update_dataset_schema`: the stored schema (JSON text) with the fields of these
/// records added, first type seen wins; `None` when there is neither.
pub fn updated_schema(existing: Option<&str>, records: &[NewRecord]) -> Option<String> {
    if records.is_empty() && existing.is_none() {
        return None;
    }
    let mut schema = match existing.map(parsed) {
        Some(Value::Object(m)) => m,
        _ => match json!({"inputs": {}, "outputs": {}, "expectations": {}, "version": "1.0"}) {
            Value::Object(m) => m,
            _ => Map::new(),
        },
    };
    let add_fields = |section: &mut Value, fields: &Map<String, Value>| {
        if let Value::Object(known) = section {
            for (k, v) in fields {
                known
                    .entry(k.clone())
                    .or_insert_with(|| json!(field_type(v)));
            }
        }
    };
    for record in records {
        if !record.inputs.is_empty() {
            add_fields(schema.entry("inputs").or_insert(json!({})), &record.inputs);
        }
        match &record.outputs {
            None | Some(Value::Null) => {}
            Some(Value::Object(fields)) => {
                add_fields(schema.entry("outputs").or_insert(json!({})), fields)
            }
            Some(other) => {
                // A non-object output types the whole section, once.
                let section = schema.entry("outputs").or_insert(json!({}));
                if section.as_object().is_some_and(Map::is_empty) {
                    *section = json!(field_type(other));
                }
            }
        }
        if let Some(expectations) = record.expectations.as_ref().filter(|e| !e.is_empty()) {
            add_fields(
                schema.entry("expectations").or_insert(json!({})),
                expectations,
            );
        }
    }
    Some(python_json(&Value::Object(schema)))
}

/// The profile MLflow keeps: the record count (`None` for an empty dataset).
pub fn profile(num_records: u64) -> Option<String> {
    (num_records > 0).then(|| python_json(&json!({ "num_records": num_records })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(v: Value) -> NewRecord {
        NewRecord::from_json(v).unwrap()
    }

    #[test]
    fn inputs_hash_ignores_key_order() {
        let a = record(json!({"inputs": {"b": [1, 2], "a": null}}));
        let b = record(json!({"inputs": {"a": null, "b": [1, 2]}}));
        assert_eq!(a.input_hash(), b.input_hash());
        assert_ne!(
            a.input_hash(),
            record(json!({"inputs": {"a": 1}})).input_hash()
        );
    }

    #[test]
    fn digest_is_mlflows() {
        // hashlib.sha256(b"dsd4ca:1796274650366").hexdigest()[:8]
        assert_eq!(dataset_digest("dsd4ca", 1796274650366), "ea4b412b");
    }

    #[test]
    fn new_and_merged_records() {
        let first = record(json!({
            "inputs": {"q": "2+2"}, "expectations": {"answer": "4"},
            "source": {"source_type": "human", "source_data": {}},
            "tags": {"mlflow.user": "ann"}
        }));
        let mut stored = StoredRecord::new("d-1", &first, 10);
        let out = stored.to_json();
        assert_eq!(out["outputs"], json!({}));
        assert_eq!(out["source_type"], "HUMAN");
        assert_eq!(out["created_by"], "ann");
        let again = record(json!({
            "inputs": {"q": "2+2"}, "expectations": {"why": "math"}, "outputs": {"r": 4},
            "tags": {"mlflow.user": "bob"}
        }));
        stored.merge(&again, 20);
        let out = stored.to_json();
        assert_eq!(out["expectations"], json!({"answer": "4", "why": "math"}));
        assert_eq!(out["outputs"], json!({"r": 4}));
        assert_eq!(out["last_updated_by"], "bob");
        assert_eq!(out["created_by"], "ann");
        assert_eq!(out["last_update_time"], 20);
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(keys.first().unwrap().as_str(), "dataset_record_id");
        assert_eq!(keys.last().unwrap().as_str(), "outputs");
    }

    #[test]
    fn trace_sources_give_their_id() {
        let r = record(json!({
            "inputs": {}, "source": {"source_type": "TRACE", "source_data": {"trace_id": "tr-1"}}
        }));
        assert_eq!(r.source_keys(), (Some("tr-1".into()), Some("TRACE".into())));
        let bad = NewRecord::from_json(json!({"inputs": {}, "source": {"source_type": "x"}}));
        assert!(
            bad.unwrap_err()
                .message
                .contains("Invalid dataset record source type: X")
        );
        assert!(NewRecord::from_json(json!({"inputs": [1]})).is_err());
    }

    #[test]
    fn schema_grows_with_records() {
        let batch = [
            record(json!({"inputs": {"q": "a"}, "expectations": {"answer": "b"}})),
            record(json!({"inputs": {"q": "c"}, "outputs": "plain"})),
        ];
        let schema = updated_schema(None, &batch).unwrap();
        assert_eq!(
            parsed(&schema),
            json!({"inputs": {"q": "string"}, "outputs": "string",
                   "expectations": {"answer": "string"}, "version": "1.0"})
        );
        let more = [record(json!({"inputs": {"n": 1.5}, "outputs": {"r": 4}}))];
        let schema = updated_schema(Some(&schema), &more).unwrap();
        assert_eq!(
            parsed(&schema)["inputs"],
            json!({"q": "string", "n": "float"})
        );
        assert_eq!(parsed(&schema)["outputs"], "string");
        assert_eq!(updated_schema(None, &[]), None);
    }

    #[test]
    fn tags_parse_as_mlflow_stores_them() {
        assert_eq!(
            parse_tags(r#"{"a": 5, "b": true, "c": null, "d": "x"}"#).unwrap(),
            vec![
                ("a".to_string(), "5".to_string()),
                ("b".to_string(), "True".to_string()),
                ("d".to_string(), "x".to_string())
            ]
        );
        assert!(parse_tags("nope").is_err());
        assert!(parse_tags("[1]").is_err());
    }
}
