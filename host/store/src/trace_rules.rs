//! What the SQLite and PostgreSQL trace stores share: how a trace's record is assembled from
//! column values, how a batch of spans changes its trace's record, how assessments are kept,
//! overridden and changed, and the search's order. Each backend only reads and writes the rows
//! (and locks them where writers run side by side).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;
use wasmflow_core::pyjson::{Style, dumps};
use wasmflow_core::search::Value as SearchValue;
use wasmflow_core::{Error, Result};

use crate::columns::Columns;
use crate::search_sql::{Binder, Bound, Dialect, Query, compare, experiment_match};
use crate::traces::{
    ARTIFACT_LOCATION_TAG, AssessmentUpdate, NewSpan, SOURCE_RUN_METADATA, SPANS_LOCATION_TAG,
    TRACE_NAME_TAG, TraceClause, TraceInfo, TraceKey, TraceOp, TraceOrder, TraceSearch, TraceValue,
    derived,
};

/// Set by `start_trace`: the trace's own fields are final, later spans no longer change them.
pub(crate) const FINALIZED_METADATA: &str = "mlflow.trace.infoFinalized";

pub(crate) fn experiment_id_number(experiment_id: &str) -> Result<i64> {
    experiment_id
        .parse()
        .map_err(|_| Error::invalid(format!("invalid experiment id '{experiment_id}'")))
}

/// A write naming `experiment` for a trace stored in another: refused, so that it neither moves
/// nor adds to a trace of an experiment the caller was not checked against.
pub(crate) fn other_experiment(trace_id: &str, stored: i64, experiment: i64) -> Error {
    Error::invalid(format!(
        "trace '{trace_id}' belongs to experiment '{stored}', not '{experiment}'"
    ))
}

/// The `trace_info` columns [`trace_info_from_row`] reads, in its order.
pub(crate) const TRACE_INFO_COLUMNS: &str = "trace_id, experiment_id, request_time, \
    execution_duration, state, client_request_id, request_preview, response_preview";

/// A trace's record from a row of [`TRACE_INFO_COLUMNS`], without tags, metadata and
/// assessments.
pub(crate) fn trace_info_from_row<C: Columns>(r: &C) -> std::result::Result<TraceInfo, C::Error> {
    Ok(TraceInfo {
        trace_id: r.text(0)?,
        experiment_id: r.int(1)?.to_string(),
        request_time: r.int(2)?,
        execution_duration: r.opt_int(3)?,
        state: r.text(4)?,
        client_request_id: r.opt_text(5)?,
        request_preview: r.opt_text(6)?,
        response_preview: r.opt_text(7)?,
        ..TraceInfo::default()
    })
}

/// What a store read for a set of traces, table by table.
#[derive(Default)]
pub(crate) struct InfoRows {
    pub infos: Vec<TraceInfo>,
    /// (trace id, key, value) of `trace_tags`.
    pub tags: Vec<(String, String, Option<String>)>,
    /// (trace id, key, value) of `trace_metadata`.
    pub metadata: Vec<(String, String, Option<String>)>,
    /// (trace id, JSON body) of `assessments`, in (created, id) order.
    pub assessments: Vec<(String, String)>,
}

impl InfoRows {
    /// The records of those of `ids` that exist, in the order of `ids`, each with its tags,
    /// metadata and assessments.
    pub(crate) fn assemble(self, ids: &[String]) -> Result<Vec<TraceInfo>> {
        let mut by_id: HashMap<String, TraceInfo> = self
            .infos
            .into_iter()
            .map(|i| (i.trace_id.clone(), i))
            .collect();
        for (id, k, v) in self.tags {
            if let Some(info) = by_id.get_mut(&id) {
                info.tags.insert(k, v.unwrap_or_default());
            }
        }
        for (id, k, v) in self.metadata {
            if let Some(info) = by_id.get_mut(&id) {
                info.trace_metadata.insert(k, v.unwrap_or_default());
            }
        }
        for (id, body) in self.assessments {
            if let Some(info) = by_id.get_mut(&id) {
                info.assessments.push(parse_assessment(&body)?);
            }
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }
}

// ---- spans and their trace's record ----

/// The fields of a trace's record that its spans set until the client finalizes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpanRecord {
    pub request_time: i64,
    pub execution_duration: Option<i64>,
    pub state: String,
    pub request_preview: Option<String>,
    pub response_preview: Option<String>,
}

/// The spans of one trace in one `log_spans` call.
pub(crate) struct SpanBatch<'a> {
    pub trace_id: &'a str,
    /// In the order received; a span sent twice keeps its last copy.
    pub spans: Vec<&'a NewSpan>,
    /// Each span's decoded attributes (read from its `content` once, for every rule below).
    attributes: Vec<serde_json::Map<String, Value>>,
}

/// `spans` by trace, in trace id order: writers that lock several traces lock them in the same
/// order, so two concurrent batches never wait on each other in a cycle.
pub(crate) fn span_batches(spans: &[NewSpan]) -> Vec<SpanBatch<'_>> {
    let mut by_trace: BTreeMap<&str, Vec<&NewSpan>> = BTreeMap::new();
    for span in spans {
        let group = by_trace.entry(span.trace_id.as_str()).or_default();
        // The same span twice in one call: the last copy wins, as it would in two calls.
        group.retain(|s| s.span_id != span.span_id);
        group.push(span);
    }
    by_trace
        .into_iter()
        .map(|(trace_id, spans)| SpanBatch {
            trace_id,
            attributes: spans.iter().map(|s| batch_attributes(s)).collect(),
            spans,
        })
        .collect()
}

/// The attributes of `span` that the rules of [`SpanBatch`] read. Only a root span's are
/// read whole (previews, trace tags); of the others only [`DERIVING_KEYS`], so a span whose
/// text names none of them is not parsed (most spans of a trace: the parse was a large part of
/// ingesting them).
fn batch_attributes(span: &NewSpan) -> serde_json::Map<String, Value> {
    let wanted = span.parent_span_id.is_none()
        || DERIVING_KEYS
            .iter()
            .any(|k| span.content.contains(&format!("\"{k}\"")));
    if wanted {
        derived::attributes(&span.content)
    } else {
        serde_json::Map::new()
    }
}

/// The attributes of a span that is not its trace's root from which MLflow derives a trace's
/// metadata ([`SpanBatch::derived_metadata`], [`SpanBatch::needs_span_tree`]).
const DERIVING_KEYS: [&str; 5] = [
    "session.id",
    "gen_ai.conversation.id",
    "user.id",
    derived::CHAT_USAGE,
    derived::LLM_COST,
];

#[cfg(test)]
#[test]
fn deriving_keys_are_the_ones_read() {
    // `derived::session_id` and `derived::user_id` read exactly these keys.
    let mut attrs = serde_json::Map::new();
    for (k, v) in [("session.id", "s"), ("user.id", "u")] {
        attrs.insert(k.into(), Value::String(v.into()));
    }
    assert_eq!(derived::session_id(&attrs).as_deref(), Some("s"));
    assert_eq!(derived::user_id(&attrs).as_deref(), Some("u"));
    attrs.clear();
    attrs.insert("gen_ai.conversation.id".into(), Value::String("c".into()));
    assert_eq!(derived::session_id(&attrs).as_deref(), Some("c"));
}

impl SpanBatch<'_> {
    fn root_index(&self) -> Option<usize> {
        self.spans.iter().position(|s| s.parent_span_id.is_none())
    }

    fn root(&self) -> Option<&NewSpan> {
        self.root_index().map(|i| self.spans[i])
    }

    fn start_ms(&self) -> i64 {
        self.spans
            .iter()
            .map(|s| s.start_time_ns)
            .min()
            .unwrap_or(0)
            / 1_000_000
    }

    fn state(&self) -> &'static str {
        match self.root() {
            Some(r) if r.status == "ERROR" => "ERROR",
            Some(_) => "OK",
            None => "IN_PROGRESS",
        }
    }

    /// The root span's attributes (none while the root has not come).
    fn root_attributes(&self) -> Option<&serde_json::Map<String, Value>> {
        self.root_index().map(|i| &self.attributes[i])
    }

    /// The request and response previews MLflow makes of the root span's inputs and outputs,
    /// from their text as the span carried it (MLflow keeps `{"q":1}` as it came, not re-spaced).
    fn previews(&self) -> (Option<String>, Option<String>) {
        let Some(root) = self.root() else {
            return (None, None);
        };
        (
            root.inputs.as_deref().map(|t| derived::preview(t, "user")),
            root.outputs
                .as_deref()
                .map(|t| derived::preview(t, "assistant")),
        )
    }

    /// The record of a trace these spans start: in progress until its root span comes.
    pub(crate) fn new_record(&self) -> SpanRecord {
        let start = self.start_ms();
        let end = self
            .root()
            .and_then(|r| r.end_time_ns)
            .map(|e| e / 1_000_000);
        let (request_preview, response_preview) = self.previews();
        SpanRecord {
            request_time: start,
            execution_duration: end.map(|e| e - start),
            state: self.state().into(),
            request_preview,
            response_preview,
        }
    }

    /// The stored record as these spans change it, `None` when they do not (the root span has
    /// not come). Once the client finalized the record (`start_trace`), the root span only
    /// fills in the previews the client left empty.
    pub(crate) fn merged(&self, stored: &SpanRecord, finalized: bool) -> Option<SpanRecord> {
        let root = self.root()?;
        let (request_preview, response_preview) = self.previews();
        let previews = (
            stored.request_preview.clone().or(request_preview),
            stored.response_preview.clone().or(response_preview),
        );
        let record = if finalized {
            SpanRecord {
                request_preview: previews.0,
                response_preview: previews.1,
                ..stored.clone()
            }
        } else {
            let start = self.start_ms();
            let request_time = stored.request_time.min(start);
            let end = root.end_time_ns.map_or(start, |e| e / 1_000_000);
            SpanRecord {
                request_time,
                execution_duration: Some(end - request_time),
                state: self.state().into(),
                request_preview: previews.0,
                response_preview: previews.1,
            }
        };
        (record != *stored).then_some(record)
    }

    /// The trace tags these spans carry (see [`derived`]): the OTLP resource's attributes and
    /// the root span's `mlflow.traceTag.*` (the latter win), each key once; never the tags
    /// the server keeps for itself.
    pub(crate) fn derived_tags(&self) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        if let Some(first) = self.spans.iter().find(|s| !s.resource_tags.is_empty()) {
            tags.extend(first.resource_tags.clone());
        }
        if let Some(attrs) = self.root_attributes() {
            tags.extend(derived::root_trace_tags(attrs));
        }
        tags.remove(ARTIFACT_LOCATION_TAG);
        tags.remove(SPANS_LOCATION_TAG);
        tags
    }

    /// Whether [`Self::derived_metadata`] needs every stored span of the trace: some span of
    /// the batch reports token usage or cost, which are summed over the whole tree (a parent
    /// that rolls up its children's usage may arrive in another batch than they do).
    pub(crate) fn needs_span_tree(&self) -> bool {
        self.attributes.iter().any(|a| {
            a.get(derived::CHAT_USAGE).is_some_and(Value::is_object)
                || a.get(derived::LLM_COST).is_some_and(Value::is_object)
        })
    }

    /// The trace metadata these spans derive, as MLflow's `log_spans`: the session and user
    /// where the trace has none, and token usage and cost summed over `tree` (every span
    /// stored for the trace, this batch's included) unless the client's finalized record gave
    /// them. `existing` holds which of [`DERIVED_METADATA_KEYS`] the trace has.
    pub(crate) fn derived_metadata(
        &self,
        existing: &HashSet<String>,
        finalized: bool,
        tree: &[derived::Node],
    ) -> Vec<(&'static str, String)> {
        let attrs = &self.attributes;
        let mut out = Vec::new();
        type Find = fn(&serde_json::Map<String, Value>) -> Option<String>;
        for (key, find) in [
            (derived::SESSION_METADATA, derived::session_id as Find),
            (derived::USER_METADATA, derived::user_id),
        ] {
            if !existing.contains(key)
                && let Some(value) = attrs.iter().find_map(find)
            {
                out.push((key, value));
            }
        }
        let has = |k: &str| attrs.iter().any(|a| a.get(k).is_some_and(Value::is_object));
        type Total = fn(&[derived::Node]) -> Option<String>;
        for (wanted, key, total) in [
            (
                has(derived::CHAT_USAGE),
                derived::TOKEN_USAGE_METADATA,
                derived::token_usage as Total,
            ),
            (
                has(derived::LLM_COST),
                derived::COST_METADATA,
                derived::cost,
            ),
        ] {
            if !wanted || (finalized && existing.contains(key)) {
                continue;
            }
            if let Some(value) = total(tree) {
                out.push((key, value));
            }
        }
        out
    }
}

/// The metadata keys [`SpanBatch::derived_metadata`] asks whether a trace has.
pub(crate) const DERIVED_METADATA_KEYS: [&str; 4] = [
    derived::SESSION_METADATA,
    derived::USER_METADATA,
    derived::TOKEN_USAGE_METADATA,
    derived::COST_METADATA,
];

/// A stored span (its id, parent and `content` JSON) as a node of its trace's tree.
pub(crate) fn span_node(span_id: &str, parent: Option<&str>, content: &str) -> derived::Node {
    derived::Node::new(span_id, parent, &derived::attributes(content))
}

/// `LinkPromptsToTrace`'s answer for a missing trace, worded as MLflow's.
pub(crate) fn link_prompts_trace_not_found(trace_id: &str) -> Error {
    Error::not_found(format!("Trace with ID '{trace_id}' not found."))
}

/// The tags a client may set on its trace's record (`StartTrace`, `EndTrace`): the artifact
/// location is the server's alone, the server reads the trace's files there.
pub(crate) fn client_tags(tags: &BTreeMap<String, String>) -> impl Iterator<Item = (&str, &str)> {
    tags.iter()
        .filter(|(k, _)| *k != ARTIFACT_LOCATION_TAG)
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// The artifact folder of a trace whose spans came before its record.
pub(crate) fn span_artifact_location(artifact_root: &str, trace_id: &str) -> String {
    format!(
        "{}/{}",
        artifact_root.trim_end_matches('/'),
        crate::traces::trace_artifact_folder(trace_id)
    )
}

// ---- assessments ----

pub(crate) fn assessment_not_found(assessment_id: &str) -> Error {
    Error::not_found(format!("Assessment with ID '{assessment_id}' not found"))
}

pub(crate) fn parse_assessment(body: &str) -> Result<Value> {
    serde_json::from_str(body)
        .map_err(|e| Error::internal(format!("stored assessment is not JSON: {e}")))
}

/// An assessment as its row keeps it: the columns filters use, and the whole message.
pub(crate) struct AssessmentRow {
    pub assessment_id: String,
    pub trace_id: String,
    pub name: String,
    /// `feedback` or `expectation`.
    pub kind: &'static str,
    /// The value's JSON text: a feedback's `value` (`null` when it has none, as MLflow's
    /// `json.dumps(None)`), or an expectation's `value` (or its serialized value's text).
    pub value: Option<String>,
    pub valid: bool,
    /// Whether the assessment is its session's ([`is_session_level`]).
    pub session_level: bool,
    pub body: String,
}

/// Whether `a` is a session-level assessment: its metadata names a session
/// (`mlflow.trace.session`, which `mlflow.genai.evaluate`'s session scorers set). MLflow 3.17's
/// SQL store asks this of the metadata's JSON text (`json.dumps`) with
/// `LIKE '%"mlflow.trace.session":%'`, case-sensitive on both of its backends (on SQLite it sets
/// `PRAGMA case_sensitive_like`): asked here the same way, of the same text. Such an assessment,
/// valid and matching a `feedback.<name>` / `expectation.<name>` filter, makes the filter match
/// every trace of the session of the trace that holds it ([`assessment_condition`]).
fn is_session_level(a: &Value) -> bool {
    a.get("metadata")
        .filter(|m| m.is_object())
        .is_some_and(|m| {
            dumps(m, Style::Default).contains(&format!("\"{}\":", derived::SESSION_METADATA))
        })
}

/// An assessment value's JSON text as MLflow's SQL store keeps it (`json.dumps`: `", "` and
/// `": "` separators, non-ASCII characters escaped), which `feedback.<name>` filters compare.
fn json_text(value: &Value) -> String {
    dumps(value, Style::Default)
}

impl AssessmentRow {
    pub(crate) fn of(a: &Value) -> Self {
        let text = |k: &str| a[k].as_str().unwrap_or_default().to_string();
        let (kind, value) = if let Some(f) = a.get("feedback") {
            // A feedback without a value (a scorer's error, `value=None`) is kept as MLflow
            // keeps it, the text `null`, which `feedback.<name>` filters compare like any other.
            (
                "feedback",
                Some(f.get("value").map_or_else(|| "null".into(), json_text)),
            )
        } else {
            let e = a.get("expectation");
            let value = e.and_then(|e| e.get("value")).map(json_text).or_else(|| {
                e.and_then(|e| e.pointer("/serialized_value/value"))
                    .and_then(Value::as_str)
                    // MLflow loads the serialized text and dumps it again.
                    .map(|s| {
                        serde_json::from_str(s).map_or_else(|_| s.to_string(), |v| json_text(&v))
                    })
            });
            ("expectation", value)
        };
        Self {
            assessment_id: text("assessment_id"),
            trace_id: text("trace_id"),
            name: text("assessment_name"),
            kind,
            value,
            valid: a.get("valid").and_then(Value::as_bool).unwrap_or(true),
            session_level: is_session_level(a),
            body: a.to_string(),
        }
    }

    pub(crate) fn other_trace(&self) -> Error {
        Error::invalid(format!(
            "assessment '{}' belongs to another trace than '{}'",
            self.assessment_id, self.trace_id
        ))
    }
}

/// The id of the assessment `a` overrides, if any: it is invalid while `a` stands.
pub(crate) fn overridden(a: &Value) -> Option<&str> {
    a.get("overrides").and_then(Value::as_str)
}

pub(crate) fn set_valid(a: &mut Value, valid: bool) {
    a["valid"] = Value::Bool(valid);
}

/// `UpdateAssessment` applied to the stored message: fields replaced (a feedback replaces an
/// expectation and the other way round), metadata merged.
pub(crate) fn apply_update(a: &mut Value, update: AssessmentUpdate) -> Result<()> {
    let obj = a
        .as_object_mut()
        .ok_or_else(|| Error::internal("stored assessment is not an object"))?;
    for (k, v) in update.fields {
        if k == "feedback" {
            obj.remove("expectation");
        } else if k == "expectation" {
            obj.remove("feedback");
        }
        obj.insert(k, v);
    }
    if let Some(meta) = update.metadata {
        let entry = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(m) = entry.as_object_mut() {
            for (k, v) in meta {
                m.insert(k, Value::String(v));
            }
        }
    }
    Ok(())
}

// ---- search ----

fn search_value(value: &TraceValue) -> SearchValue {
    match value {
        TraceValue::Number(n) => SearchValue::Number(*n as f64),
        TraceValue::Str(s) => SearchValue::Str(s.clone()),
        TraceValue::List(l) => SearchValue::List(l.clone()),
        TraceValue::None => SearchValue::None,
    }
}

/// A number's text as JSON writes it: what an assessment's value is when it is a number (not a
/// boolean, string or object), which both backends test before casting it (PostgreSQL's cast
/// refuses other text, SQLite's reads it as 0).
const JSON_NUMBER: &str = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$";

/// The SQL condition of one clause on `trace_info t`, every value and key bound. `sessions` and
/// `half` are an assessment clause's ([`assessment_condition`]); other clauses ignore them.
fn condition(
    clause: &TraceClause,
    sessions: Option<&[String]>,
    half: Option<Half>,
    b: &mut Binder,
) -> Result<String> {
    let op = clause.op;
    let value = search_value(&clause.value);
    let keyed = |table: &str, key: &str, b: &mut Binder| -> Result<String> {
        let key = b.text(key);
        let exists = format!(
            "EXISTS (SELECT 1 FROM {table} k WHERE k.trace_key = t.trace_key AND k.key = {key}"
        );
        Ok(match clause.op {
            TraceOp::IsNull => format!("NOT {exists})"),
            TraceOp::IsNotNull => format!("{exists})"),
            _ => format!("{exists} AND {})", compare("k.value", op, &value, b)?),
        })
    };
    let in_spans = |test: String| {
        format!("EXISTS (SELECT 1 FROM spans s WHERE s.trace_key = t.trace_key AND {test})")
    };
    match &clause.key {
        TraceKey::Numeric("end_time") => {
            compare("(t.request_time + t.execution_duration)", op, &value, b)
        }
        TraceKey::Numeric(column) | TraceKey::Column(column) => {
            compare(&format!("t.{column}"), op, &value, b)
        }
        TraceKey::Tag(key) => keyed("trace_tags", key, b),
        // `run_id = 'r'` (or the metadata it stands for, `mlflow.sourceRun`) finds the traces
        // made under the run and those linked to it (`link_traces_to_run`), as MLflow's
        // `_apply_trace_filter_clauses` does for `=` only; any other comparison is on the
        // metadata alone.
        TraceKey::Metadata(key) if key == SOURCE_RUN_METADATA && op == TraceOp::Eq => {
            run_condition(&value, b)
        }
        TraceKey::Metadata(key) => keyed("trace_metadata", key, b),
        TraceKey::Span(column) => Ok(in_spans(compare(&format!("s.{column}"), op, &value, b)?)),
        TraceKey::SpanAttribute(key) if key.is_empty() => {
            Ok(in_spans(compare("s.content", op, &value, b)?))
        }
        TraceKey::SpanAttribute(key) => span_attribute_condition(key, op, &value, b),
        TraceKey::Prompt => Ok(format!(
            "EXISTS (SELECT 1 FROM trace_prompts p WHERE p.trace_id = t.trace_id AND {})",
            compare("p.prompt", op, &value, b)?
        )),
        TraceKey::Assessment { kind, name } => {
            assessment_condition(clause, kind, name, sessions, half, b)
        }
    }
}

/// `feedback.<name>` / `expectation.<name>` as MLflow 3.17's SQL store answers it
/// (`_get_filter_clauses_for_search_traces`): a trace matches when it holds a valid assessment
/// of that kind and name whose value passes the clause's test, or when it belongs to the session
/// of a trace of the searched experiments holding such an assessment that is session-level
/// (`_get_session_scoped_trace_ids`; the session is the holding trace's `mlflow.trace.session`
/// metadata, not the one the assessment's metadata names). `IS NULL` is the negation of both.
/// `sessions` are those sessions, asked before the search ([`session_queries`]); without any
/// (the usual case) the clause is its single `EXISTS`. `half`, in one branch of a split search
/// ([`search_query`]), keeps one side of the `OR`.
fn assessment_condition(
    clause: &TraceClause,
    kind: &str,
    name: &str,
    sessions: Option<&[String]>,
    half: Option<Half>,
    b: &mut Binder,
) -> Result<String> {
    let test = assessment_test(clause)?;
    // Each part is written (and its values bound) only where it appears: SQLite's placeholders
    // are positional, and PostgreSQL cannot type a parameter its text does not name.
    let direct = |b: &mut Binder| -> Result<String> {
        Ok(format!(
            "EXISTS (SELECT 1 FROM assessments a WHERE a.trace_id = t.trace_id AND {})",
            assessment_matching(kind, name, &test, clause.op, b)?
        ))
    };
    let is_null = clause.op == TraceOp::IsNull;
    let Some(sessions) = sessions else {
        let direct = direct(b)?;
        return Ok(if is_null {
            format!("NOT {direct}")
        } else {
            direct
        });
    };
    Ok(match half.filter(|_| !is_null) {
        // `IS NULL` spelled `NOT a AND NOT b`, not `NOT (a OR b)`: the same answers, but
        // PostgreSQL planned the latter far worse (218 against 43 ms at 100,000 traces,
        // 2026-12-05). `NOT EXISTS` rather than `NOT IN` the session's traces: 33 against 43 ms
        // on PostgreSQL, 46 against 65 on SQLite.
        None if is_null => format!("NOT {} AND NOT {}", direct(b)?, session_exists(sessions, b)),
        None => format!("({} OR {})", direct(b)?, session_exists(sessions, b)),
        Some(Half::Direct) => direct(b)?,
        // In its own branch (PostgreSQL's), the session's traces are made an array once (an init
        // plan) and fetched by primary key: as `EXISTS` or `IN` it became a semi-join that hashed
        // the whole of `trace_info` (11 against 4-6 ms at 100,000 traces, 2026-12-05).
        Some(Half::Session) => format!(
            "t.trace_key = ANY(ARRAY(SELECT sm.trace_key FROM trace_metadata sm WHERE {}))",
            session_rows(sessions, b)
        ),
    })
}

/// The SQL (on the assessment `a`) of a valid assessment of `kind` and `name` that passes
/// `test`, for a clause with `op`.
fn assessment_matching(
    kind: &str,
    name: &str,
    test: &AssessmentTest,
    op: TraceOp,
    b: &mut Binder,
) -> Result<String> {
    let kind = b.text(kind);
    let name = b.text(name);
    Ok(format!(
        "a.valid = 1 AND a.kind = {kind} AND a.name = {name}{}",
        value_test(test, op, b)?
    ))
}

/// The trace `t` is one of `sessions`.
fn session_exists(sessions: &[String], b: &mut Binder) -> String {
    format!(
        "EXISTS (SELECT 1 FROM trace_metadata sm WHERE sm.trace_key = t.trace_key AND {})",
        session_rows(sessions, b)
    )
}

/// The condition on `trace_metadata sm` of the rows of `sessions`. The key is written out, not
/// bound: it is the predicate of the partial index `trace_metadata_session` (migration 0013),
/// which the planners match by its text.
fn session_rows(sessions: &[String], b: &mut Binder) -> String {
    format!(
        "sm.key = '{}' AND {}",
        derived::SESSION_METADATA,
        b.in_list("sm.value", false, Bound::TextList(sessions.to_vec()))
    )
}

/// The SQL (` AND ...` on the assessment `a`, or nothing) of `test` for a clause with `op`.
fn value_test(test: &AssessmentTest, op: TraceOp, b: &mut Binder) -> Result<String> {
    Ok(match test {
        AssessmentTest::Exists => String::new(),
        AssessmentTest::Number(n) => {
            let number = match b.dialect {
                Dialect::Sqlite => format!(
                    "(CASE WHEN a.value REGEXP '{JSON_NUMBER}' THEN CAST(a.value AS REAL) END)"
                ),
                Dialect::Postgres => {
                    format!("(CASE WHEN a.value ~ '{JSON_NUMBER}' THEN a.value::float8 END)")
                }
            };
            format!(
                " AND {}",
                compare(&number, op, &SearchValue::Number(*n), b)?
            )
        }
        AssessmentTest::Equal(raw) => {
            let json = dumps(&Value::String(raw.clone()), Style::Default);
            let either = format!("(a.value = {} OR a.value = {})", b.text(raw), b.text(json));
            match op {
                TraceOp::Ne => format!(" AND NOT {either}"),
                _ => format!(" AND {either}"),
            }
        }
        AssessmentTest::Pattern(v) => format!(" AND {}", compare("a.value", op, v, b)?),
    })
}

/// A trace made under the run `value` (its `mlflow.sourceRun` metadata) or linked to it.
fn run_condition(value: &SearchValue, b: &mut Binder) -> Result<String> {
    let key = b.text(SOURCE_RUN_METADATA);
    let by_metadata = compare("k.value", TraceOp::Eq, value, b)?;
    let by_link = compare("l.run_id", TraceOp::Eq, value, b)?;
    Ok(format!(
        "(EXISTS (SELECT 1 FROM trace_metadata k WHERE k.trace_key = t.trace_key \
         AND k.key = {key} AND {by_metadata}) OR EXISTS (SELECT 1 FROM trace_runs l \
         WHERE l.trace_id = t.trace_id AND {by_link}))"
    ))
}

/// `span.attributes.<key> <op> <value>` as MLflow 3.17's SQL store compiles it
/// (`_get_filter_clauses_for_search_traces`): not the attribute's value but the span's whole
/// JSON text is compared, with the pattern `%"<key>"<value>%`. So `LIKE '%m3%'` matches a span
/// whose text has `"<key>"` followed, anywhere later, by `m3` (the value is written there as
/// its JSON text, `"tier": "\"m3\""`), and MLflow compares `=` and `!=` with the pattern as
/// plain text: as the span's text is a JSON object (it starts with `{`) and the pattern starts
/// with `%`, `=` matches no span and `!=` every span, which is what is asked here without
/// reading the spans' text. Checked against a real `mlflow server` in
/// tests/e2e/test_traces_server.py.
fn span_attribute_condition(
    key: &str,
    op: TraceOp,
    value: &SearchValue,
    b: &mut Binder,
) -> Result<String> {
    let any_span = "EXISTS (SELECT 1 FROM spans s WHERE s.trace_key = t.trace_key";
    match (op, value) {
        (TraceOp::Eq, _) => Ok("1 = 0".into()),
        (TraceOp::Ne, _) => Ok(format!("{any_span})")),
        (TraceOp::Like | TraceOp::ILike, SearchValue::Str(v)) => {
            let pattern = SearchValue::Str(format!("%\"{key}\"{v}%"));
            Ok(format!(
                "{any_span} AND {})",
                compare("s.content", op, &pattern, b)?
            ))
        }
        (TraceOp::RLike, SearchValue::Str(v)) => {
            let pattern = SearchValue::Str(span_attribute_regex(key, v));
            Ok(format!(
                "{any_span} AND {})",
                compare("s.content", op, &pattern, b)?
            ))
        }
        _ => Err(Error::invalid(format!(
            "the comparator '{}' is not supported for 'span.attributes.{key}'",
            op.as_str()
        ))),
    }
}

/// The regular expression MLflow 3.17 matches a span's JSON text with for
/// `span.attributes.<key> RLIKE '<value>'`: the attribute's value is written there as its own
/// JSON text in a JSON string (`"tier": "\"m3\""`), so the expression is `"<key>": "\\"`
/// followed by `.*<value>`, or by `<value>` right after the opening quote when it starts with
/// `^`; a final `$` becomes `\\"`, the closing `\"`. The key and value go in as they are (a `.` in
/// the key is any character), as in MLflow.
fn span_attribute_regex(key: &str, value: &str) -> String {
    let (value, prefix) = match value.strip_prefix('^') {
        Some(rest) => (rest, r#""\\""#),
        None => (value, r#""\\".*"#),
    };
    let (value, suffix) = match value.strip_suffix('$') {
        Some(rest) => (rest, r#"\\""#),
        None => (value, ""),
    };
    format!("\"{key}\": {prefix}{value}{suffix}")
}

/// The experiments of `experiment_ids`: an id that is not a number names none.
fn experiment_numbers(experiment_ids: &[String]) -> Vec<i64> {
    experiment_ids
        .iter()
        .filter_map(|id| id.parse().ok())
        .collect()
}

/// Which side of a session-scoped clause's `OR` one branch of a split search keeps.
#[derive(Clone, Copy)]
enum Half {
    /// The traces holding a matching assessment.
    Direct,
    /// The traces of the sessions a matching session-level assessment covers.
    Session,
}

/// `WHERE` of a search on `trace_info t`: the experiments, then every clause; `halves` (by
/// clause index) are the sides a branch of a split search keeps.
fn traces_where(
    experiment_ids: &[String],
    filter: &[TraceClause],
    scoped: &SessionScoped,
    halves: &HashMap<usize, Half>,
    b: &mut Binder,
) -> Result<String> {
    let mut sql = experiment_match("t.experiment_id", &experiment_numbers(experiment_ids), b);
    for (i, clause) in filter.iter().enumerate() {
        sql.push_str(" AND ");
        sql.push_str(&condition(
            clause,
            scoped.sessions(i),
            halves.get(&i).copied(),
            b,
        )?);
    }
    Ok(sql)
}

/// The sessions each assessment clause of a filter covers through session-level assessments
/// (by the clause's index; a clause that covers none is absent), which
/// [`session_queries`] asked.
#[derive(Default)]
pub(crate) struct SessionScoped(HashMap<usize, Vec<String>>);

impl SessionScoped {
    /// Records the answer of [`session_queries`]'s query for `clause`.
    pub(crate) fn insert(&mut self, clause: usize, sessions: Vec<String>) {
        if !sessions.is_empty() {
            self.0.insert(clause, sessions);
        }
    }

    fn sessions(&self, clause: usize) -> Option<&[String]> {
        self.0.get(&clause).map(Vec::as_slice)
    }
}

/// For each assessment clause of `filter` (by its index), the query of the sessions it covers:
/// the `mlflow.trace.session` metadata of the traces of `experiment_ids` holding a valid
/// session-level assessment that the clause matches, each once. Asked before a search or count,
/// so that a clause covering none compiles to its single `EXISTS`, and one covering some gets
/// them as a list the planner can count. Each reads the partial index `assessments_session`,
/// which holds only the session-level assessments; the holding trace's experiment is read by
/// primary key for each (joined to `trace_info`, PostgreSQL hashed the whole table: 17 ms at
/// 100,000 traces).
pub(crate) fn session_queries(
    experiment_ids: &[String],
    filter: &[TraceClause],
    dialect: Dialect,
) -> Result<Vec<(usize, Query)>> {
    let experiments = experiment_numbers(experiment_ids);
    let mut queries = Vec::new();
    for (i, clause) in filter.iter().enumerate() {
        let TraceKey::Assessment { kind, name } = &clause.key else {
            continue;
        };
        let mut b = Binder::new(dialect);
        let matching =
            assessment_matching(kind, name, &assessment_test(clause)?, clause.op, &mut b)?;
        let holder = experiment_match(
            "(SELECT h.experiment_id FROM trace_info h WHERE h.trace_id = a.trace_id)",
            &experiments,
            &mut b,
        );
        // `session_level = 1` is written out, not bound: it is the predicate of the partial
        // index `assessments_session`, which the planners match by its text. Assessments keep
        // the text trace id (migration 0014): the holding trace's key is read by primary key
        // for each, as its experiment is.
        let sql = format!(
            "SELECT DISTINCT hm.value FROM assessments a JOIN trace_metadata hm \
             ON hm.trace_key = (SELECT h.trace_key FROM trace_info h \
             WHERE h.trace_id = a.trace_id) AND hm.key = '{}' \
             WHERE a.session_level = 1 AND {matching} AND hm.value IS NOT NULL AND {holder}",
            derived::SESSION_METADATA
        );
        queries.push((i, b.finish(sql)));
    }
    Ok(queries)
}

/// For each `feedback.<name> IS NULL` / `expectation.<name> IS NULL` clause of `filter`, the
/// query of whether every trace of `experiment_ids` holds a valid assessment of that kind and
/// name (one row, 1 or 0). If one does, the clause matches no trace (a session's share only
/// takes more away), so neither the search nor the count needs running. Asked because the
/// search itself cannot know it before reading every trace: in its order it probes each for an
/// assessment and finds one every time (37-52 ms at 100,000 traces on both backends, against
/// 8-15 ms for these counts). The holders are counted from the index `assessments_holders`
/// (migration 0015, which keeps each assessment's experiment and trace key for it), the traces
/// of the experiments only up to one more than that, so when few traces hold one (where `IS
/// NULL` pages fill at once) the question costs little.
pub(crate) fn held_by_all_queries(
    experiment_ids: &[String],
    filter: &[TraceClause],
    dialect: Dialect,
) -> Result<Vec<Query>> {
    let experiments = experiment_numbers(experiment_ids);
    let mut queries = Vec::new();
    for clause in filter.iter().filter(|c| c.op == TraceOp::IsNull) {
        let TraceKey::Assessment { kind, name } = &clause.key else {
            continue;
        };
        let mut b = Binder::new(dialect);
        let matching = assessment_matching(kind, name, &AssessmentTest::Exists, clause.op, &mut b)?;
        let holders = experiment_match("a.experiment_id", &experiments, &mut b);
        let traces = experiment_match("t.experiment_id", &experiments, &mut b);
        // A trace's key is its experiment's alone, so the pairs are the keys, read in the
        // index's order (one run of keys per experiment), which DISTINCT can follow.
        let sql = format!(
            "WITH h AS (SELECT COUNT(*) AS n FROM (SELECT DISTINCT a.experiment_id, a.trace_key \
             FROM assessments a WHERE {matching} AND {holders}) AS d) \
             SELECT CASE WHEN (SELECT n FROM h) = (SELECT COUNT(*) FROM (SELECT 1 FROM \
             trace_info t WHERE {traces} LIMIT (SELECT n FROM h) + 1) AS e) THEN 1 ELSE 0 END"
        );
        queries.push(b.finish(sql));
    }
    Ok(queries)
}

/// The number of traces of `experiment_ids` matching `filter`, compiled for `dialect`.
pub(crate) fn count_query(
    experiment_ids: &[String],
    filter: &[TraceClause],
    scoped: &SessionScoped,
    dialect: Dialect,
) -> Result<Query> {
    let mut b = Binder::new(dialect);
    let sql = format!(
        "SELECT COUNT(*) FROM trace_info t WHERE {}",
        traces_where(experiment_ids, filter, scoped, &HashMap::new(), &mut b)?
    );
    Ok(b.finish(sql))
}

/// How many session-scoped clauses a search splits at most (2^n branches; further ones keep
/// their `OR`), by dialect. SQLite does not split: it reads the `OR` row by row in the search's
/// order, an index probe or two a trace, which was its fastest (0.35 ms against 2.6 split and
/// 2.4 before, 100,000 traces, 1 in 100 session-level, 2026-12-05).
fn max_split(dialect: Dialect) -> usize {
    match dialect {
        Dialect::Postgres => 3,
        Dialect::Sqlite => 0,
    }
}

/// The search compiled for `dialect`: the ids of the page's traces in order, one more than
/// asked (to know whether a next page exists).
///
/// A clause that covers sessions ([`SessionScoped`]) matches a trace holding a matching
/// assessment OR a trace of those sessions. Written as that `OR`, neither side can become a
/// join, and PostgreSQL hashed both whole (all matching assessments, every session's trace)
/// before reading the first trace: 56-60 ms at 100,000 traces. So its search is split: one
/// branch for each choice of side of each such clause (but `IS NULL`, a conjunction already),
/// each an ordinary search with its own order and limit (the page's end), planned as the
/// search without sessions is; the page is then taken, in the same order, from the traces the
/// branches found. As the order is total (the trace id last), the first traces of the union
/// are among the first of some branch.
pub(crate) fn search_query(
    search: &TraceSearch,
    offset: u64,
    scoped: &SessionScoped,
    dialect: Dialect,
) -> Result<Query> {
    let mut b = Binder::new(dialect);
    let order = order_by_sql(&search.order_by);
    let split: Vec<usize> = (0..search.filter.len())
        .filter(|&i| search.filter[i].op != TraceOp::IsNull && scoped.sessions(i).is_some())
        .take(max_split(dialect))
        .collect();
    let where_ = |halves: &HashMap<usize, Half>, b: &mut Binder| {
        traces_where(&search.experiment_ids, &search.filter, scoped, halves, b)
    };
    let mut sql = if split.is_empty() {
        format!(
            "SELECT t.trace_id FROM trace_info t WHERE {}",
            where_(&HashMap::new(), &mut b)?
        )
    } else {
        let end = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .saturating_add(search.max_results)
            .saturating_add(1);
        let mut branches = Vec::new();
        for choice in 0..1usize << split.len() {
            let halves = split
                .iter()
                .enumerate()
                .map(|(bit, &i)| {
                    let half = if choice >> bit & 1 == 1 {
                        Half::Session
                    } else {
                        Half::Direct
                    };
                    (i, half)
                })
                .collect();
            let filter = where_(&halves, &mut b)?;
            let page = b.page(end, 0);
            branches.push(format!(
                "SELECT trace_id FROM (SELECT t.trace_id FROM trace_info t WHERE {filter} \
                 ORDER BY {order} {page}) AS b{choice}"
            ));
        }
        format!(
            "SELECT t.trace_id FROM trace_info t WHERE t.trace_id IN ({})",
            branches.join(" UNION ALL ")
        )
    };
    sql.push_str(&format!(" ORDER BY {order} "));
    sql.push_str(&b.page(search.max_results + 1, offset));
    Ok(b.finish(sql))
}

/// What a `feedback.<name>` / `expectation.<name>` clause asks of a valid assessment's value,
/// as MLflow 3.17's SQL store asks it of the value's JSON text (`json.dumps` of the value: a
/// string in quotes, numbers and booleans bare).
enum AssessmentTest {
    /// Only that one exists (or, for `IS NULL`, that none does).
    Exists,
    /// `<`, `<=`, `>`, `>=`: the value as a number, when it is one (MLflow's
    /// `is_numeric_value`: not a boolean, a string or an object).
    Number(f64),
    /// `=`, `!=`: the JSON text is the filter's text itself or its `json.dumps` (MLflow's
    /// `_get_sql_json_comparison_func`: `'yes'` finds the string `yes` and `'5.0'` the number
    /// 5.0); `!=` is the negation of that.
    Equal(String),
    /// `LIKE`, `ILIKE`, `RLIKE`: the pattern over the JSON text as it is, so a string value's
    /// quotes are part of it (`LIKE 'ye%'` finds no string `"yes"`, `LIKE '"ye%'` does).
    Pattern(SearchValue),
}

fn assessment_test(clause: &TraceClause) -> Result<AssessmentTest> {
    Ok(match clause.op {
        TraceOp::IsNull | TraceOp::IsNotNull => AssessmentTest::Exists,
        TraceOp::Lt | TraceOp::Le | TraceOp::Gt | TraceOp::Ge => {
            AssessmentTest::Number(match &clause.value {
                TraceValue::Str(s) => s.parse().map_err(|_| {
                    Error::invalid(format!("expected a number to compare with, found '{s}'"))
                })?,
                _ => 0.0,
            })
        }
        TraceOp::Eq | TraceOp::Ne => match &clause.value {
            TraceValue::Str(s) => AssessmentTest::Equal(s.clone()),
            TraceValue::Number(n) => AssessmentTest::Equal(n.to_string()),
            _ => AssessmentTest::Pattern(search_value(&clause.value)),
        },
        _ => AssessmentTest::Pattern(search_value(&clause.value)),
    })
}

/// The search's `ORDER BY` on `trace_info t`, the same SQL on both backends: the asked order,
/// then MLflow's default (newest first), then the id for a stable order across pages. NULLs
/// (an in-progress trace's duration, a missing name) come first ascending and last descending,
/// as SQLite orders them by default.
fn order_by_sql(order_by: &[TraceOrder]) -> String {
    let mut order = Vec::new();
    for o in order_by {
        let expr = match o.column {
            "end_time" => "(t.request_time + t.execution_duration)".to_string(),
            "name" => format!(
                "(SELECT value FROM trace_tags n WHERE n.trace_key = t.trace_key \
                 AND n.key = '{TRACE_NAME_TAG}')"
            ),
            "run_id" => format!(
                "(SELECT value FROM trace_metadata n WHERE n.trace_key = t.trace_key \
                 AND n.key = '{SOURCE_RUN_METADATA}')"
            ),
            column => format!("t.{column}"),
        };
        // A column that is never NULL is ordered without a NULLS clause, so PostgreSQL can
        // still read `request_time` in (backward) index order.
        let not_null = ["request_time", "state", "trace_id", "experiment_id"].contains(&o.column);
        order.push(match (o.ascending, not_null) {
            (true, true) => format!("{expr} ASC"),
            (false, true) => format!("{expr} DESC"),
            (true, false) => format!("{expr} ASC NULLS FIRST"),
            (false, false) => format!("{expr} DESC NULLS LAST"),
        });
    }
    if !order_by.iter().any(|o| o.column == "request_time") {
        order.push("t.request_time DESC".into());
    }
    order.push("t.trace_id ASC".into());
    order.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, start_ms: i64, status: &str) -> NewSpan {
        NewSpan {
            trace_id: "tr".into(),
            span_id: id.into(),
            parent_span_id: parent.map(str::to_string),
            status: status.into(),
            start_time_ns: start_ms * 1_000_000,
            end_time_ns: Some((start_ms + 10) * 1_000_000),
            inputs: Some(r#""in""#.into()),
            content: r#"{"attributes": {"mlflow.spanInputs": "\"in\""}}"#.into(),
            ..NewSpan::default()
        }
    }

    #[test]
    fn spans_start_then_end_their_trace() {
        let child = [span("2", Some("1"), 1005, "OK")];
        let batches = span_batches(&child);
        let first = batches[0].new_record();
        assert_eq!(
            (first.state.as_str(), first.request_time),
            ("IN_PROGRESS", 1005)
        );
        assert_eq!(first.execution_duration, None);
        // More children change nothing; the root ends the trace from the earliest start.
        assert_eq!(batches[0].merged(&first, false), None);
        let root = [span("1", None, 1000, "ERROR")];
        let ended = span_batches(&root)[0].merged(&first, false).unwrap();
        assert_eq!(
            (
                ended.state.as_str(),
                ended.request_time,
                ended.execution_duration
            ),
            ("ERROR", 1000, Some(10))
        );
        assert_eq!(ended.request_preview.as_deref(), Some(r#""in""#));
        // Once finalized by the client, the root only fills in the previews it left empty.
        let kept = span_batches(&root)[0].merged(&first, true).unwrap();
        assert_eq!(
            kept,
            SpanRecord {
                request_preview: Some(r#""in""#.into()),
                ..first.clone()
            }
        );
        assert_eq!(span_batches(&root)[0].merged(&kept, true), None);
    }

    #[test]
    fn session_keys_as_mlflow_matches_them() {
        let with_key = |k: &str| serde_json::json!({"metadata": {k: "S"}});
        // MLflow's `LIKE` over the JSON text, case-sensitive, finds the key's text after any
        // quote, an escaped one too.
        for (key, session_level) in [
            ("mlflow.trace.session", true),
            ("MLflow.Trace.Session", false),
            ("mlflow.trace.sessions", false),
            ("x\"mlflow.trace.session", true),
        ] {
            assert_eq!(is_session_level(&with_key(key)), session_level, "{key}");
        }
        assert!(!is_session_level(&serde_json::json!({"feedback": {}})));
    }

    #[test]
    fn every_bound_value_of_a_split_search_is_written_once_in_order() {
        // Two clauses covering sessions (4 branches), one `IS NULL` over a covered name and one
        // over a name covering none, on two experiments and a later page.
        let filter = crate::traces::parse_trace_filter(
            "feedback.a = 'x' AND trace.status = 'OK' AND expectation.b != 'y' \
             AND feedback.c IS NULL AND feedback.d IS NULL",
        )
        .unwrap();
        let mut scoped = SessionScoped::default();
        for clause in [0, 2, 3] {
            scoped.insert(clause, vec!["S1".into(), "S2".into()]);
        }
        scoped.insert(4, Vec::new());
        let search = TraceSearch {
            experiment_ids: vec!["1".into(), "2".into()],
            filter,
            order_by: Vec::new(),
            max_results: 10,
            page_token: None,
        };
        let pg = search_query(&search, 20, &scoped, Dialect::Postgres).unwrap();
        assert_eq!(pg.sql.matches("UNION ALL").count(), 3);
        for n in 1..=pg.params.len() {
            assert_eq!(pg.sql.matches(&format!("${n}::")).count(), 1, "${n}");
        }
        assert!(!pg.sql.contains(&format!("${}::", pg.params.len() + 1)));
        // The branches' limit is the page's end, the page is the outer query's.
        let ints: Vec<i64> = pg
            .params
            .iter()
            .filter_map(|p| match p {
                Bound::Int(i) => Some(*i),
                _ => None,
            })
            .collect();
        assert_eq!(ints, [31, 0, 31, 0, 31, 0, 31, 0, 11, 20]);
        // SQLite, and a count, keep each clause whole.
        let lite = search_query(&search, 20, &scoped, Dialect::Sqlite).unwrap();
        let count = count_query(
            &search.experiment_ids,
            &search.filter,
            &scoped,
            Dialect::Sqlite,
        );
        for query in [lite, count.unwrap()] {
            assert_eq!(query.sql.matches('?').count(), query.params.len());
            assert!(!query.sql.contains("UNION"));
        }
    }

    #[test]
    fn a_span_sent_twice_in_one_call_keeps_its_last_copy() {
        let spans = [span("1", None, 1000, "OK"), span("1", None, 1000, "ERROR")];
        let batches = span_batches(&spans);
        assert_eq!(batches[0].spans.len(), 1);
        assert_eq!(batches[0].spans[0].status, "ERROR");
    }
}
