//! MLflow 3's traces (`TraceInfoV3`), their spans and assessments, the filter grammar of
//! `search_traces` (MLflow's `SearchTraceUtils`), and the [`TraceStore`] trait.
//!
//! Spans are kept as the OTLP protobuf bytes of each span (what the client and any OpenTelemetry
//! SDK send), next to the few columns searches need; the server turns them back into the
//! `Trace.spans` of MLflow's answers. Assessments are kept as their JSON message.

use std::collections::BTreeMap;

use wasmflow_core::paging::Page;
use wasmflow_core::search::{not_quoted, py_set};
use wasmflow_core::{Error, Result};

pub use crate::span_text::{SpanText, set_span_text};

/// The tag naming where a trace's spans are (`TraceTagKey.SPANS_LOCATION`).
pub const SPANS_LOCATION_TAG: &str = "mlflow.trace.spansLocation";
/// Its value when the spans are in this store.
pub const SPANS_IN_STORE: &str = "TRACKING_STORE";
/// The tag with the trace's artifact folder (`MLFLOW_ARTIFACT_LOCATION`).
pub const ARTIFACT_LOCATION_TAG: &str = "mlflow.artifactLocation";
/// The tag holding the trace's name (`TraceTagKey.TRACE_NAME`).
pub const TRACE_NAME_TAG: &str = "mlflow.traceName";
/// The metadata key of the run a trace was made under (`TraceMetadataKey.SOURCE_RUN`).
pub const SOURCE_RUN_METADATA: &str = "mlflow.sourceRun";
/// Tags only the server writes: MLflow's handlers refuse them (`_HANDLER_BLOCKED_TRACE_TAGS`),
/// and the artifact location is refused too, because the server reads a trace's files from it.
pub const SERVER_TAGS: [&str; 4] = [
    SPANS_LOCATION_TAG,
    "mlflow.trace.archiveLocation",
    "mlflow.trace.archivalFailure",
    ARTIFACT_LOCATION_TAG,
];

/// The folder of a trace's files (`traces.json`, attachments) under its experiment's artifact
/// root, as MLflow lays it out (`<root>/traces/<trace id>/artifacts`).
pub fn trace_artifact_folder(trace_id: &str) -> String {
    format!("traces/{trace_id}/artifacts")
}

/// Whether `trace_id` can name a folder of its own: the server puts the trace's files under
/// `traces/<trace id>`, so an id must stay one path component.
pub fn validate_trace_id(trace_id: &str) -> Result<()> {
    let bad = trace_id.is_empty()
        || trace_id == "."
        || trace_id == ".."
        || trace_id.len() > 200
        || trace_id
            .chars()
            .any(|c| c == '/' || c == '\\' || c == '%' || c.is_control());
    if bad {
        return Err(Error::invalid(format!(
            "invalid trace id '{}': a trace id must be one path component, without '/', '\\', \
             '%' or control characters",
            trace_id.escape_debug()
        )));
    }
    Ok(())
}

/// A trace's record (`TraceInfoV3`), without its spans.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceInfo {
    pub trace_id: String,
    pub experiment_id: String,
    /// Milliseconds since the epoch.
    pub request_time: i64,
    /// Milliseconds; absent while in progress.
    pub execution_duration: Option<i64>,
    /// `OK`, `ERROR`, `IN_PROGRESS` or `STATE_UNSPECIFIED`.
    pub state: String,
    pub client_request_id: Option<String>,
    pub request_preview: Option<String>,
    pub response_preview: Option<String>,
    pub trace_metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// Each assessment's JSON message (`assessments.proto`'s `Assessment`).
    pub assessments: Vec<serde_json::Value>,
}

/// One span as received, with the columns searches use.
#[derive(Debug, Clone, Default)]
pub struct NewSpan {
    pub trace_id: String,
    /// Hex, as MLflow spells span ids.
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    /// The `mlflow.spanType` attribute, if any.
    pub span_type: Option<String>,
    /// `OK`, `ERROR` or `UNSET`.
    pub status: String,
    pub start_time_ns: i64,
    pub end_time_ns: Option<i64>,
    /// A root span's `mlflow.spanInputs` / `mlflow.spanOutputs` as JSON text, for its trace's
    /// previews (none for other spans: nothing reads theirs).
    pub inputs: Option<String>,
    pub outputs: Option<String>,
    /// The span's JSON text as MLflow's SQL store keeps it (`json.dumps` of MLflow's
    /// `Span.to_dict()`: each attribute's value is its JSON text), which `span.content` and
    /// `span.attributes.<key>` filters match LIKE patterns against, as MLflow does.
    pub content: String,
    /// The OTLP `Span` message, protobuf-encoded.
    pub body: Vec<u8>,
    /// The attributes of the OTLP resource the span came with, as MLflow keeps them as trace
    /// tags (strings as they are, other values as JSON; SDK and `mlflow.` keys left out).
    pub resource_tags: BTreeMap<String, String>,
}

/// A trace that a delete removed: where its files were.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedTrace {
    pub trace_id: String,
    pub experiment_id: String,
}

/// How a v2 trace ends (`EndTrace`): its end time, status and added metadata and tags.
#[derive(Debug, Clone, Default)]
pub struct TraceEnd {
    pub timestamp_ms: i64,
    /// A `TraceState` name (`OK`, `ERROR`, `IN_PROGRESS`, `STATE_UNSPECIFIED`).
    pub state: String,
    pub trace_metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

/// A stored span: its trace and its OTLP bytes.
#[derive(Debug, Clone)]
pub struct StoredSpan {
    pub trace_id: String,
    pub body: Vec<u8>,
}

/// What `delete_traces` removes: by ids, or the oldest before a time (at most `max_traces`).
#[derive(Debug, Clone, Default)]
pub struct TraceDeletion {
    pub experiment_id: String,
    pub trace_ids: Vec<String>,
    pub max_timestamp_millis: Option<i64>,
    pub max_traces: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct TraceSearch {
    pub experiment_ids: Vec<String>,
    pub filter: Vec<TraceClause>,
    pub order_by: Vec<TraceOrder>,
    pub max_results: usize,
    pub page_token: Option<String>,
}

/// What a filter clause compares.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceKey {
    /// `timestamp_ms`, `execution_time_ms`, `end_time_ms` (numbers).
    Numeric(&'static str),
    /// `status`, `request_id`, `client_request_id`.
    Column(&'static str),
    Tag(String),
    /// Also `run_id`, which stands for the `mlflow.sourceRun` metadata as in MLflow (with `=`,
    /// that key also finds traces linked to the run).
    Metadata(String),
    /// `span.name`, `span.type`, `span.status`.
    Span(&'static str),
    /// `span.attributes.<key>`, or `span.content` / `text` (empty key): LIKE patterns over the
    /// span's JSON text, as MLflow's SQL store matches them.
    SpanAttribute(String),
    /// `feedback.<name>` / `expectation.<name>`: an assessment's value (JSON text).
    Assessment {
        kind: &'static str,
        name: String,
    },
    /// `prompt = 'name/version'`: a prompt version linked with `LinkPromptsToTrace`.
    Prompt,
}

/// The filter grammar's comparators, shared with runs' search.
pub use wasmflow_core::search::Op as TraceOp;

#[derive(Debug, Clone, PartialEq)]
pub enum TraceValue {
    Number(i64),
    Str(String),
    List(Vec<String>),
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceClause {
    pub key: TraceKey,
    pub op: TraceOp,
    pub value: TraceValue,
}

/// An `order_by` item: a column of `trace_info` (or the trace name tag).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceOrder {
    /// `request_time`, `execution_duration`, `end_time`, `state`, `trace_id`, `experiment_id`,
    /// `name`.
    pub column: &'static str,
    pub ascending: bool,
}

/// How an assessment changes (`UpdateAssessment`'s field mask, already applied to values).
#[derive(Debug, Clone, Default)]
pub struct AssessmentUpdate {
    /// Top-level fields of the assessment message to replace.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Metadata entries to merge in.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Traces in a store. Writes go through the store's group-commit writer: a trace is many
/// small appends.
pub trait TraceStore: Send + Sync {
    /// Records a finished trace (`StartTraceV3`), merging into spans already logged for it.
    fn start_trace(&self, info: TraceInfo, artifact_location: String) -> Result<TraceInfo>;
    /// Records a new in-progress trace of the v2 API (`StartTrace`): as `start_trace`, but its
    /// fields are not final (its spans and `EndTrace` still change them).
    fn start_trace_v2(&self, info: TraceInfo, artifact_location: String) -> Result<TraceInfo>;
    /// Appends spans (replacing a span logged again), creating the traces they start.
    /// `artifact_location` gives each new trace's artifact folder from its id.
    fn log_spans(
        &self,
        experiment_id: &str,
        spans: Vec<NewSpan>,
        artifact_root: String,
    ) -> Result<()>;
    fn get_trace_info(&self, trace_id: &str) -> Result<TraceInfo>;
    /// The infos of those of `trace_ids` that exist, in the order asked.
    fn get_trace_infos(&self, trace_ids: &[String]) -> Result<Vec<TraceInfo>>;
    /// The spans of `trace_ids`, each trace's in start order.
    fn get_spans(&self, trace_ids: &[String]) -> Result<Vec<StoredSpan>>;
    fn search_traces(&self, search: &TraceSearch) -> Result<Page<TraceInfo>>;
    /// Deletes traces with their spans and assessments; returns those deleted.
    fn delete_traces(&self, deletion: &TraceDeletion) -> Result<Vec<DeletedTrace>>;
    /// Deletes every trace that started before `cutoff_ms` (retention), at most `limit` at
    /// once; returns those deleted, so that their files can go too.
    fn delete_traces_before(&self, cutoff_ms: i64, limit: usize) -> Result<Vec<DeletedTrace>>;
    /// Ends a trace started with the v2 API (`EndTrace`): its duration runs to `end`'s time,
    /// its state is `end`'s, and metadata and tags are merged in.
    fn end_trace(&self, trace_id: &str, end: TraceEnd) -> Result<TraceInfo>;
    /// Links prompt versions (`name/version`) to a trace (`LinkPromptsToTrace`), for
    /// `prompt = 'name/version'` filters; a link made before is kept once.
    fn link_prompts_to_trace(&self, trace_id: &str, prompt_versions: &[String]) -> Result<()>;
    fn set_trace_tag(&self, trace_id: &str, key: &str, value: &str) -> Result<()>;
    fn delete_trace_tag(&self, trace_id: &str, key: &str) -> Result<()>;
    fn link_traces_to_run(&self, trace_ids: &[String], run_id: &str) -> Result<()>;
    /// Stores a new assessment (its id, times and trace already set); one it overrides
    /// becomes invalid.
    fn create_assessment(&self, assessment: serde_json::Value) -> Result<serde_json::Value>;
    fn get_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<serde_json::Value>;
    fn update_assessment(
        &self,
        trace_id: &str,
        assessment_id: &str,
        update: AssessmentUpdate,
    ) -> Result<serde_json::Value>;
    /// Deletes an assessment; the one it overrode becomes valid again.
    fn delete_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<()>;
    /// How many traces of `experiment_ids` match every clause of `filter`.
    fn count_traces(&self, experiment_ids: &[String], filter: &[TraceClause]) -> Result<u64>;
    /// The rows a trace metric aggregates (see [`crate::trace_metrics`]).
    fn trace_metric_rows(
        &self,
        query: &crate::trace_metrics::MetricQuery,
    ) -> Result<Vec<crate::trace_metrics::MetricRow>>;
}

pub fn trace_not_found(trace_id: &str) -> Error {
    Error::not_found(format!("Trace with ID {trace_id} is not found."))
}

// ---------------------------------------------------------------------------------------------
// The filter grammar.

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Number(String),
    Op(String),
    Open,
    Close,
    Comma,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::invalid(msg.into())
}

fn tokenize(text: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(invalid(format!(
                            "Invalid filter string '{text}': unterminated string"
                        )));
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Str(s));
        } else if c == '(' {
            tokens.push(Token::Open);
            i += 1;
        } else if c == ')' {
            tokens.push(Token::Close);
            i += 1;
        } else if c == ',' {
            tokens.push(Token::Comma);
            i += 1;
        } else if "=!<>".contains(c) {
            let mut op = c.to_string();
            if chars.get(i + 1) == Some(&'=') {
                op.push('=');
                i += 1;
            }
            i += 1;
            if op == "!" {
                return Err(invalid(format!("Invalid filter string '{text}': '!'")));
            }
            tokens.push(Token::Op(op));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            tokens.push(Token::Number(chars[start..i].iter().collect()));
        } else {
            // An identifier: words, dots and backquoted parts (`tags.\`my key\``).
            let mut s = String::new();
            while i < chars.len() {
                let ch = chars[i];
                if ch == '`' {
                    i += 1;
                    while i < chars.len() && chars[i] != '`' {
                        s.push(chars[i]);
                        i += 1;
                    }
                    if i == chars.len() {
                        return Err(invalid(format!(
                            "Invalid filter string '{text}': unterminated backquote"
                        )));
                    }
                    i += 1;
                } else if ch.is_alphanumeric()
                    || ch == '_'
                    || ch == '.'
                    || ch == '-'
                    || ch == ':'
                    || ch == '/'
                {
                    s.push(ch);
                    i += 1;
                } else {
                    break;
                }
            }
            if s.is_empty() {
                return Err(invalid(format!(
                    "Invalid filter string '{text}': unexpected character '{c}'"
                )));
            }
            tokens.push(Token::Ident(s));
        }
    }
    Ok(tokens)
}

/// Splits `prefix.key` at its first dot (a backquoted key keeps its dots).
fn split_identifier(ident: &str) -> (Option<&str>, &str) {
    match ident.split_once('.') {
        Some((prefix, key)) => (Some(prefix), key),
        None => (None, ident),
    }
}

fn attribute_key(key: &str) -> Result<TraceKey> {
    Ok(match key {
        "timestamp" | "timestamp_ms" => TraceKey::Numeric("request_time"),
        "execution_time" | "execution_time_ms" => TraceKey::Numeric("execution_duration"),
        "end_time" | "end_time_ms" => TraceKey::Numeric("end_time"),
        "status" | "state" => TraceKey::Column("state"),
        "request_id" | "trace_id" => TraceKey::Column("trace_id"),
        "client_request_id" => TraceKey::Column("client_request_id"),
        "name" => TraceKey::Tag(TRACE_NAME_TAG.into()),
        "run_id" => TraceKey::Metadata(SOURCE_RUN_METADATA.into()),
        "text" => TraceKey::SpanAttribute(String::new()),
        "prompt" | "prompts" => TraceKey::Prompt,
        other => {
            return Err(invalid(format!(
                "Invalid attribute key '{other}' specified. Valid keys are '{}'",
                py_set(&[
                    "client_request_id",
                    "end_time",
                    "end_time_ms",
                    "execution_time",
                    "execution_time_ms",
                    "name",
                    "prompt",
                    "request_id",
                    "run_id",
                    "status",
                    "text",
                    "timestamp",
                    "timestamp_ms",
                ])
            )));
        }
    })
}

fn filter_key(ident: &str, text: &str) -> Result<TraceKey> {
    let (prefix, key) = split_identifier(ident);
    let key_ok = |k: &str| -> Result<String> {
        if k.is_empty() {
            Err(invalid(format!(
                "Invalid filter string '{text}': empty key in '{ident}'"
            )))
        } else {
            Ok(k.to_string())
        }
    };
    match prefix {
        None => attribute_key(key),
        Some("attribute" | "attributes" | "trace") => attribute_key(key),
        Some("tag" | "tags") => Ok(TraceKey::Tag(key_ok(key)?)),
        Some("request_metadata" | "metadata") => Ok(TraceKey::Metadata(key_ok(key)?)),
        Some("span") => match key {
            "name" => Ok(TraceKey::Span("name")),
            "type" => Ok(TraceKey::Span("span_type")),
            "status" => Ok(TraceKey::Span("status")),
            "content" => Ok(TraceKey::SpanAttribute(String::new())),
            other => match other.strip_prefix("attributes.") {
                Some(attr) => Ok(TraceKey::SpanAttribute(key_ok(attr)?)),
                None => Err(invalid(format!(
                    "Invalid span attribute '{other}' in '{text}'. Supported: name, type, \
                     status, content, attributes.<key>"
                ))),
            },
        },
        Some("feedback") => Ok(TraceKey::Assessment {
            kind: "feedback",
            name: key_ok(key)?,
        }),
        Some("expectation") => Ok(TraceKey::Assessment {
            kind: "expectation",
            name: key_ok(key)?,
        }),
        Some(other) => Err(invalid(format!(
            "Invalid entity type '{other}'. Valid values are {}",
            py_set(&[
                "attribute",
                "attributes",
                "expectation",
                "feedback",
                "issue",
                "metadata",
                "request_metadata",
                "span",
                "tag",
                "tags",
                "trace",
            ])
        ))),
    }
}

fn allowed_ops(key: &TraceKey) -> &'static [TraceOp] {
    use TraceOp::*;
    match key {
        TraceKey::Numeric(_) => &[Eq, Ne, Lt, Le, Gt, Ge],
        // `RLIKE` where MLflow 3.17's `SearchTraceUtils` takes it: not on numbers, span content
        // (`text`, `span.content`) or prompts.
        TraceKey::Column(_) => &[Eq, Ne, In, NotIn, Like, ILike, RLike],
        TraceKey::Tag(_) | TraceKey::Metadata(_) => {
            &[Eq, Ne, Like, ILike, RLike, IsNull, IsNotNull]
        }
        TraceKey::Span(_) => &[Eq, Ne, In, NotIn, Like, ILike, RLike],
        TraceKey::SpanAttribute(k) if k.is_empty() => &[Like, ILike],
        TraceKey::SpanAttribute(_) => &[Eq, Ne, Like, ILike, RLike],
        TraceKey::Assessment { .. } => &[
            Eq, Ne, Lt, Le, Gt, Ge, Like, ILike, RLike, IsNull, IsNotNull,
        ],
        TraceKey::Prompt => &[Eq],
    }
}

// MLflow's `SearchTraceUtils` comparator sets (printed as Python prints them).
const TAG_COMPARATORS: &[&str] = &[
    "!=",
    "=",
    "LIKE",
    "ILIKE",
    "RLIKE",
    "IS NULL",
    "IS NOT NULL",
];
const STRING_COMPARATORS: &[&str] = &["!=", "=", "IN", "NOT IN", "LIKE", "ILIKE", "RLIKE"];
/// `SearchTraceUtils.NUMERIC_ATTRIBUTES`.
const NUMERIC_KEYS: &[&str] = &[
    "timestamp",
    "timestamp_ms",
    "execution_time",
    "execution_time_ms",
    "end_time",
    "end_time_ms",
];

/// A comparator `key` does not take, in the words of the MLflow code that refuses it (some
/// lack the closing quote there too); `None` where this parser has its own.
fn comparator_error(key: &TraceKey, ident: &str, op: &str) -> Option<Error> {
    let tags = py_set(TAG_COMPARATORS);
    let strings = py_set(STRING_COMPARATORS);
    Some(invalid(match key {
        TraceKey::Tag(_) => format!("Invalid comparator '{op}' not one of '{tags}"),
        TraceKey::Metadata(_) => format!("Invalid comparator '{op}' not one of '{tags}'"),
        TraceKey::Column(_) => format!("Invalid comparator '{op}' not one of '{strings}'"),
        TraceKey::Numeric(_) => format!("Invalid comparator '{op}' not one of '{strings}"),
        TraceKey::Span(_) => format!("{ident} comparator '{op}' not one of '{strings}'"),
        TraceKey::SpanAttribute(k) if !k.is_empty() => {
            format!("{ident} comparator '{op}' not one of '{strings}'")
        }
        _ => return None,
    }))
}

/// A number where `key` takes a quoted string, in MLflow's words (`_get_value`). MLflow reads
/// the value before it maps an attribute (`name`, `run_id`) to the tag or metadata it stands
/// for, so those are words about attributes.
fn not_a_string(key: &TraceKey, ident: &str, number: &str) -> Option<Error> {
    let attribute = matches!(
        split_identifier(ident).0,
        None | Some("attribute" | "attributes" | "trace")
    );
    let entity = match key {
        _ if attribute && !matches!(key, TraceKey::Column(_)) => {
            return not_a_string(&TraceKey::Column(""), ident, number);
        }
        TraceKey::Tag(_) => "tag",
        TraceKey::Metadata(_) => "request_metadata",
        TraceKey::Span(_) | TraceKey::SpanAttribute(_) => "span",
        TraceKey::Column(_) => {
            return Some(invalid(format!(
                "Only the '{}' attributes support comparison with numeric values.",
                py_set(NUMERIC_KEYS)
            )));
        }
        _ => return None,
    };
    Some(invalid(format!(
        "Expected a quoted string value for {entity} (e.g. 'my-value'). Got value {number}"
    )))
}

/// The comparator just read (the tokens before `pos`), for error messages.
fn op_text(tokens: &[Token], pos: usize) -> String {
    let mut words = Vec::new();
    for t in tokens[..pos].iter().rev() {
        match t {
            Token::Op(o) => {
                words.push(o.clone());
                break;
            }
            Token::Ident(w)
                if ["NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "RLIKE"]
                    .contains(&w.to_ascii_uppercase().as_str()) =>
            {
                words.push(w.to_ascii_uppercase())
            }
            _ => break,
        }
    }
    words.reverse();
    words.join(" ")
}

/// Parses MLflow's trace filter: `AND`-ed clauses of `<entity>.<key> <op> <value>`.
pub fn parse_trace_filter(text: &str) -> Result<Vec<TraceClause>> {
    let tokens = tokenize(text)?;
    let mut clauses = Vec::new();
    let mut pos = 0;
    let bad = |why: &str| invalid(format!("Invalid filter string '{text}': {why}"));
    while pos < tokens.len() {
        let Some(Token::Ident(ident)) = tokens.get(pos) else {
            return Err(bad("expected a key"));
        };
        let key = filter_key(ident, text)?;
        pos += 1;
        let op = match tokens.get(pos) {
            Some(Token::Op(o)) => {
                pos += 1;
                // `==` and `<>` are comparators to MLflow's parser too, refused for the key.
                let unknown = match (o.as_str(), tokens.get(pos)) {
                    ("==", _) => Some("=="),
                    ("<", Some(Token::Op(next))) if next == ">" => Some("<>"),
                    _ => None,
                };
                if let Some(op) = unknown
                    && let Some(e) = comparator_error(&key, ident, op)
                {
                    return Err(e);
                }
                match o.as_str() {
                    "=" | "==" => TraceOp::Eq,
                    "!=" => TraceOp::Ne,
                    "<" => TraceOp::Lt,
                    "<=" => TraceOp::Le,
                    ">" => TraceOp::Gt,
                    ">=" => TraceOp::Ge,
                    other => return Err(bad(&format!("invalid comparator '{other}'"))),
                }
            }
            Some(Token::Ident(word)) => {
                pos += 1;
                let next_is = |p: usize, w: &str| matches!(tokens.get(p), Some(Token::Ident(x)) if x.eq_ignore_ascii_case(w));
                match word.to_ascii_uppercase().as_str() {
                    "LIKE" => TraceOp::Like,
                    "ILIKE" => TraceOp::ILike,
                    "RLIKE" => TraceOp::RLike,
                    "IN" => TraceOp::In,
                    "NOT" if next_is(pos, "LIKE") || next_is(pos, "ILIKE") => {
                        let like = if next_is(pos, "LIKE") {
                            "LIKE"
                        } else {
                            "ILIKE"
                        };
                        return Err(comparator_error(&key, ident, &format!("NOT {like}"))
                            .unwrap_or_else(|| bad(&format!("invalid comparator 'NOT {like}'"))));
                    }
                    "NOT" if next_is(pos, "IN") => {
                        pos += 1;
                        TraceOp::NotIn
                    }
                    "IS" if next_is(pos, "NULL") => {
                        pos += 1;
                        TraceOp::IsNull
                    }
                    "IS" if next_is(pos, "NOT") && next_is(pos + 1, "NULL") => {
                        pos += 2;
                        TraceOp::IsNotNull
                    }
                    other => return Err(bad(&format!("invalid comparator '{other}'"))),
                }
            }
            _ => return Err(bad("expected a comparator")),
        };
        if key == TraceKey::Prompt && op != TraceOp::Eq {
            return Err(invalid(format!(
                "Invalid comparator '{}' for prompts filter. Only '=' is supported with format: \
                 prompt = \"name/version\"",
                op_text(&tokens, pos)
            )));
        }
        // MLflow reads a list value before the comparator: only some keys take one.
        if matches!(op, TraceOp::In | TraceOp::NotIn) && matches!(key, TraceKey::Numeric(_)) {
            return Err(invalid(format!(
                "Only attributes in {} supports comparison with a list of quoted string values.",
                py_set(&[
                    "name",
                    "status",
                    "request_id",
                    "client_request_id",
                    "run_id"
                ])
            )));
        }
        if !allowed_ops(&key).contains(&op) {
            return Err(
                comparator_error(&key, ident, &op_text(&tokens, pos)).unwrap_or_else(|| {
                    bad(&format!("the comparator is not supported for '{ident}'"))
                }),
            );
        }
        let value = match op {
            TraceOp::IsNull | TraceOp::IsNotNull => TraceValue::None,
            TraceOp::In | TraceOp::NotIn => {
                if tokens.get(pos) != Some(&Token::Open) {
                    return Err(bad("expected '(' after IN"));
                }
                pos += 1;
                let mut values = Vec::new();
                loop {
                    match tokens.get(pos) {
                        Some(Token::Str(s)) => values.push(s.clone()),
                        _ => return Err(bad("expected a quoted value in the IN list")),
                    }
                    pos += 1;
                    match tokens.get(pos) {
                        Some(Token::Comma) => pos += 1,
                        Some(Token::Close) => {
                            pos += 1;
                            break;
                        }
                        _ => return Err(bad("expected ',' or ')' in the IN list")),
                    }
                }
                TraceValue::List(values)
            }
            _ => {
                let v = match (tokens.get(pos), &key) {
                    (Some(Token::Number(n)), TraceKey::Numeric(_)) => {
                        TraceValue::Number(n.parse::<f64>().map_err(|_| bad("bad number"))? as i64)
                    }
                    (Some(Token::Str(s)), TraceKey::Numeric(_)) => TraceValue::Number(
                        s.parse::<i64>()
                            .map_err(|_| bad(&format!("expected a number, found '{s}'")))?,
                    ),
                    (Some(Token::Number(n)), TraceKey::Assessment { .. }) => {
                        TraceValue::Str(n.clone())
                    }
                    (Some(Token::Ident(b)), TraceKey::Assessment { .. })
                        if b.eq_ignore_ascii_case("true") || b.eq_ignore_ascii_case("false") =>
                    {
                        TraceValue::Str(b.to_ascii_lowercase())
                    }
                    (Some(Token::Str(s)), _) => TraceValue::Str(s.clone()),
                    (Some(Token::Number(n)), _) => {
                        return Err(not_a_string(&key, ident, n).unwrap_or_else(|| {
                            bad(&format!("the value of '{ident}' must be a quoted string"))
                        }));
                    }
                    (
                        Some(Token::Ident(word)),
                        TraceKey::Tag(_)
                        | TraceKey::Metadata(_)
                        | TraceKey::Column(_)
                        | TraceKey::Span(_),
                    ) => return Err(not_quoted(word)),
                    _ => return Err(bad("expected a value")),
                };
                pos += 1;
                v
            }
        };
        if key == TraceKey::Prompt
            && let TraceValue::Str(v) = &value
            && v.matches('/').count() != 1
        {
            return Err(invalid(format!(
                "Invalid prompts filter value '{v}'. Expected format: prompt = \"name/version\""
            )));
        }
        clauses.push(TraceClause { key, op, value });
        match tokens.get(pos) {
            None => break,
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("AND") => {
                pos += 1;
                if pos == tokens.len() {
                    return Err(bad("a clause must follow 'AND'"));
                }
            }
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("OR") => {
                return Err(bad("'OR' is not supported, only AND-ed clauses are"));
            }
            Some(_) => return Err(bad("expected AND between clauses")),
        }
    }
    Ok(clauses)
}

/// Parses one `order_by` item of `search_traces`.
pub fn parse_trace_order_by(text: &str) -> Result<TraceOrder> {
    let mut words = text.split_whitespace();
    // MLflow's words (`SearchUtils._parse_order_by_string`).
    let (Some(ident), direction, None) = (words.next(), words.next(), words.next()) else {
        return Err(invalid(format!(
            "Invalid order_by clause '{text}'. Could not be parsed."
        )));
    };
    let ascending = match direction.map(str::to_ascii_uppercase).as_deref() {
        None | Some("ASC") => true,
        Some("DESC") => false,
        Some(_) => {
            return Err(invalid(format!(
                "Invalid ordering key in order_by clause '{text}'."
            )));
        }
    };
    let (prefix, key) = split_identifier(ident);
    if !matches!(prefix, None | Some("attribute" | "attributes" | "trace")) {
        return Err(invalid(format!(
            "Invalid order_by entity '{}' in '{text}': traces order by attributes only",
            prefix.unwrap_or_default()
        )));
    }
    let column = match key {
        "timestamp" | "timestamp_ms" => "request_time",
        "execution_time" | "execution_time_ms" => "execution_duration",
        "end_time" | "end_time_ms" => "end_time",
        "status" | "state" => "state",
        "request_id" | "trace_id" => "trace_id",
        "experiment_id" => "experiment_id",
        "name" => "name",
        "run_id" => "run_id",
        other => {
            return Err(invalid(format!(
                "Invalid order_by key '{other}' in '{text}'. Valid keys are: ['end_time', \
                 'execution_time', 'experiment_id', 'name', 'request_id', 'run_id', 'status', \
                 'timestamp']"
            )));
        }
    };
    Ok(TraceOrder { column, ascending })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() {
        let c = parse_trace_filter(
            "timestamp_ms > 10 AND tags.`a.b` = 'x' AND span.type IN ('LLM', 'TOOL') \
             AND metadata.mlflow.sourceRun IS NOT NULL AND trace.status != \"ERROR\"",
        )
        .unwrap();
        assert_eq!(c.len(), 5);
        assert_eq!(c[0].key, TraceKey::Numeric("request_time"));
        assert_eq!(c[0].value, TraceValue::Number(10));
        assert_eq!(c[1].key, TraceKey::Tag("a.b".into()));
        assert_eq!(
            c[2].value,
            TraceValue::List(vec!["LLM".into(), "TOOL".into()])
        );
        assert_eq!(c[3].key, TraceKey::Metadata("mlflow.sourceRun".into()));
        assert_eq!(c[3].op, TraceOp::IsNotNull);
        assert_eq!(c[4].key, TraceKey::Column("state"));
        assert!(parse_trace_filter("nope.x = 'a'").is_err());
        assert!(parse_trace_filter("timestamp_ms > 'x'").is_err());
        assert!(parse_trace_filter("status = 'OK' OR status = 'ERROR'").is_err());
        assert!(parse_trace_filter("status = 'OK' AND").is_err());
        assert!(parse_trace_filter("").unwrap().is_empty());
    }

    #[test]
    fn order_by_parses() {
        assert_eq!(
            parse_trace_order_by("timestamp_ms DESC").unwrap(),
            TraceOrder {
                column: "request_time",
                ascending: false
            }
        );
        assert!(parse_trace_order_by("tags.x").is_err());
        assert!(parse_trace_order_by("timestamp sideways").is_err());
    }
}

/// What MLflow's SQL store derives from the spans it is sent over OTLP (`log_spans`), for traces
/// whose producer never sends the trace's record (an OpenTelemetry SDK, MLflow's own client
/// exporting to an OTLP endpoint): trace tags carried as the root span's `mlflow.traceTag.<key>`
/// attributes, the OTLP resource's attributes, token usage and cost summed over the span tree,
/// the session and user, and the request/response previews. Attribute values here are decoded
/// (the JSON of OTLP `AnyValue`s), as MLflow's client sends them.
pub mod derived {
    use serde_json::{Map, Value};
    use wasmflow_core::pyjson::{Style, dumps};

    pub const TRACE_TAG_PREFIX: &str = "mlflow.traceTag.";
    pub const TOKEN_USAGE_METADATA: &str = "mlflow.trace.tokenUsage";
    pub const COST_METADATA: &str = "mlflow.trace.cost";
    pub const SESSION_METADATA: &str = "mlflow.trace.session";
    pub const USER_METADATA: &str = "mlflow.trace.user";
    pub const CHAT_USAGE: &str = "mlflow.chat.tokenUsage";
    pub const LLM_COST: &str = "mlflow.llm.cost";
    /// MLflow's `TRACE_REQUEST_RESPONSE_PREVIEW_MAX_LENGTH_OSS`.
    const PREVIEW_MAX_CHARS: usize = 1000;

    /// A span's attributes from its stored `content` JSON (MLflow's `Span.to_dict()`, where
    /// each attribute's value is its JSON text), decoded as MLflow's `Span.attributes` reads
    /// them; a value that is no JSON text is kept as the string it is.
    pub fn attributes(content: &str) -> Map<String, Value> {
        let mut attrs = match serde_json::from_str::<Value>(content) {
            Ok(Value::Object(mut o)) => match o.remove("attributes") {
                Some(Value::Object(a)) => a,
                _ => Map::new(),
            },
            _ => Map::new(),
        };
        for v in attrs.values_mut() {
            if let Value::String(s) = v
                && let Ok(inner) = serde_json::from_str::<Value>(s)
            {
                *v = inner;
            }
        }
        attrs
    }

    /// The text MLflow keeps for an attribute value as a tag or metadata value: a string as it
    /// is, anything else as its JSON (`_try_parse_json_string` of the dumped value).
    pub fn text(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            other => dumps(other, Style::Unicode),
        }
    }

    /// The trace tags a root span carries as `mlflow.traceTag.<key>` attributes.
    pub fn root_trace_tags(attrs: &Map<String, Value>) -> Vec<(String, String)> {
        attrs
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix(TRACE_TAG_PREFIX)?;
                (!key.is_empty() && key.len() <= 250).then(|| (key.to_string(), text(v)))
            })
            .collect()
    }

    /// The session of a span (`session.id`, or OpenTelemetry's `gen_ai.conversation.id`).
    pub fn session_id(attrs: &Map<String, Value>) -> Option<String> {
        ["session.id", "gen_ai.conversation.id"]
            .iter()
            .filter_map(|k| attrs.get(*k))
            .find(|v| !v.is_null() && v.as_str() != Some(""))
            .map(text)
    }

    /// The user of a span (`user.id`).
    pub fn user_id(attrs: &Map<String, Value>) -> Option<String> {
        attrs
            .get("user.id")
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
            .map(text)
    }

    /// One span of a trace's tree with its usage and cost attributes, for [`token_usage`] and
    /// [`cost`].
    pub struct Node {
        pub span_id: String,
        pub parent_id: Option<String>,
        pub usage: Option<Map<String, Value>>,
        pub cost: Option<Map<String, Value>>,
    }

    impl Node {
        pub fn new(span_id: &str, parent_id: Option<&str>, attrs: &Map<String, Value>) -> Node {
            let object = |k: &str| attrs.get(k).and_then(Value::as_object).cloned();
            Node {
                span_id: span_id.to_string(),
                parent_id: parent_id.map(str::to_string),
                usage: object(CHAT_USAGE),
                cost: object(LLM_COST),
            }
        }
    }

    /// Sums `pick`'s values over the tree, skipping a span whose ancestor has them (a parent
    /// that rolls up its children's usage is counted once), as MLflow's
    /// `_aggregate_from_nodes`: `keys` always, `optional` where some span has them.
    fn aggregate(
        nodes: &[Node],
        pick: impl Fn(&Node) -> Option<&Map<String, Value>>,
        keys: &[&str],
        optional: &[&str],
    ) -> Option<Vec<(String, f64)>> {
        use std::collections::{HashMap, HashSet};
        let ids: HashSet<&str> = nodes.iter().map(|n| n.span_id.as_str()).collect();
        let mut children: HashMap<&str, Vec<&Node>> = HashMap::new();
        let mut stack = Vec::new();
        for n in nodes {
            match n.parent_id.as_deref().filter(|p| ids.contains(p)) {
                Some(p) => children.entry(p).or_default().push(n),
                None => stack.push((n, false)),
            }
        }
        let mut totals: Vec<(String, f64)> = keys.iter().map(|k| (k.to_string(), 0.0)).collect();
        let mut found = false;
        let number = |v: &Value| v.as_f64().unwrap_or(0.0);
        while let Some((node, ancestor_has)) = stack.pop() {
            let data = pick(node);
            if let Some(data) = data
                && !ancestor_has
            {
                for (k, total) in totals.iter_mut() {
                    *total += data.get(k.as_str()).map(number).unwrap_or(0.0);
                }
                for k in optional {
                    if let Some(v) = data.get(*k) {
                        match totals.iter_mut().find(|(name, _)| name == k) {
                            Some((_, total)) => *total += number(v),
                            None => totals.push((k.to_string(), number(v))),
                        }
                    }
                }
                found = true;
            }
            let has = ancestor_has || data.is_some();
            for child in children.get(node.span_id.as_str()).into_iter().flatten() {
                stack.push((child, has));
            }
        }
        found.then_some(totals)
    }

    /// The trace's `mlflow.trace.tokenUsage` metadata: `{"input_tokens": .., "output_tokens":
    /// .., "total_tokens": ..}` (and cache counts where given), as `json.dumps` writes it.
    pub fn token_usage(nodes: &[Node]) -> Option<String> {
        // The order of MLflow's `TOKEN_COLUMN_BY_KEY`, in which it writes them back.
        const ORDER: [&str; 6] = [
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "cache_creation_input_tokens_above_1hr",
        ];
        let totals = aggregate(nodes, |n| n.usage.as_ref(), &ORDER[..3], &ORDER[3..])?;
        let mut out = Map::new();
        for key in ORDER {
            if let Some((_, v)) = totals.iter().find(|(k, _)| k == key) {
                out.insert(key.to_string(), Value::from(*v as i64));
            }
        }
        Some(dumps(&Value::Object(out), Style::Default))
    }

    /// The trace's `mlflow.trace.cost` metadata (`input_cost`, `output_cost`, `total_cost`).
    pub fn cost(nodes: &[Node]) -> Option<String> {
        let totals = aggregate(
            nodes,
            |n| n.cost.as_ref(),
            &["input_cost", "output_cost", "total_cost"],
            &[],
        )?;
        let out: Map<String, Value> = totals
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
                )
            })
            .collect();
        Some(dumps(&Value::Object(out), Style::Default))
    }

    fn is_message(v: &Value) -> bool {
        v.get("role").is_some() && v.get("content").is_some()
    }

    /// The chat messages of a request or response (`_try_extract_messages`): OpenAI chat
    /// `messages`, a completion's first choice, Responses API `input`/`output`, or a
    /// ResponsesAgent's `request`.
    fn messages(v: &Value) -> Option<Vec<&Value>> {
        let o = v.as_object()?;
        let list = |k: &str| -> Option<Vec<&Value>> {
            let items = o.get(k)?.as_array().filter(|a| !a.is_empty())?;
            Some(items.iter().filter(|i| is_message(i)).collect())
        };
        if let Some(m) = list("messages") {
            return Some(m);
        }
        if let Some(msg) = o
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .and_then(|c| c.get("message"))
            .filter(|m| is_message(m))
        {
            return Some(vec![msg]);
        }
        if let Some(m) = list("input").or_else(|| list("output")) {
            return Some(m);
        }
        o.get("request").and_then(messages)
    }

    fn message_text(m: &Value) -> String {
        match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                for part in parts {
                    if let Value::String(s) = part {
                        return s.clone();
                    }
                    if matches!(
                        part.get("type").and_then(Value::as_str),
                        Some("text" | "output_text")
                    ) {
                        return part
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                    }
                }
                String::new()
            }
            _ => String::new(),
        }
    }

    /// A request or response preview (`_get_truncated_preview`) of a span's inputs or outputs
    /// text: the last message of `role` when the text is JSON holding chat messages, else the
    /// text as it is; at most 1,000 characters.
    pub fn preview(text: &str, role: &str) -> String {
        let value = serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
        let from_messages = messages(&value).filter(|m| !m.is_empty()).map(|m| {
            let last = m
                .iter()
                .rev()
                .find(|x| x.get("role").and_then(Value::as_str) == Some(role))
                .unwrap_or_else(|| m.last().expect("not empty"));
            message_text(last)
        });
        let content = match from_messages {
            Some(found) if !found.is_empty() => found,
            _ => text.to_string(),
        };
        if content.chars().count() <= PREVIEW_MAX_CHARS {
            return content;
        }
        let mut cut: String = content.chars().take(PREVIEW_MAX_CHARS - 3).collect();
        cut.push_str("...");
        cut
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        fn node(id: &str, parent: Option<&str>, usage: Value) -> Node {
            let mut attrs = Map::new();
            attrs.insert(CHAT_USAGE.into(), usage);
            Node::new(id, parent, &attrs)
        }

        #[test]
        fn usage_of_a_rolled_up_parent_is_counted_once() {
            let nodes = [
                node("a", None, Value::Null),
                node(
                    "b",
                    Some("a"),
                    json!({"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}),
                ),
                node(
                    "c",
                    Some("b"),
                    json!({"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}),
                ),
                node(
                    "d",
                    Some("a"),
                    json!({"input_tokens": 1, "total_tokens": 1, "cache_read_input_tokens": 5}),
                ),
            ];
            assert_eq!(
                token_usage(&nodes).unwrap(),
                r#"{"input_tokens": 4, "output_tokens": 4, "total_tokens": 8, "cache_read_input_tokens": 5}"#
            );
            assert_eq!(token_usage(&nodes[..1]), None);
        }

        #[test]
        fn previews_pick_the_message_of_the_role() {
            let req = json!({"messages": [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}]});
            assert_eq!(preview(&req.to_string(), "user"), "hi");
            let resp = json!({"choices": [{"message": {"role": "assistant", "content": [{"type": "text", "text": "yo"}]}}]});
            assert_eq!(preview(&resp.to_string(), "assistant"), "yo");
            // Anything else as the span carried it, as MLflow 3.17.2 keeps it (seen: compact
            // JSON stays compact).
            assert_eq!(
                preview("{\"q\":\"h\u{e9}\"}", "user"),
                "{\"q\":\"h\u{e9}\"}"
            );
            assert_eq!(preview(r#""text""#, "user"), r#""text""#);
            let long = format!("\"{}\"", "x".repeat(1200));
            let p = preview(&long, "user");
            assert_eq!(p.chars().count(), 1000);
            assert!(p.ends_with("..."));
        }
    }
}
