//! MLflow 3's traces (`TraceInfoV3`), their spans and assessments, the filter grammar of
//! `search_traces` (MLflow's `SearchTraceUtils`), and the [`TraceStore`] trait.
//!
//! Spans are kept as the OTLP protobuf bytes of each span (what the client and any OpenTelemetry
//! SDK send), next to the few columns searches need; the server turns them back into the
//! `Trace.spans` of MLflow's answers. Assessments are kept as their JSON message.

use std::collections::BTreeMap;

use wasmflow_core::paging::Page;
use wasmflow_core::{Error, Result};

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
    /// The span's `mlflow.spanInputs` / `mlflow.spanOutputs` as JSON text (previews of roots).
    pub inputs: Option<String>,
    pub outputs: Option<String>,
    /// The span as a JSON object (`name`, `status`, `attributes`, `events`), for
    /// `span.attributes.<key>` and `span.content` filters.
    pub content: String,
    /// The OTLP `Span` message, protobuf-encoded.
    pub body: Vec<u8>,
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
    Metadata(String),
    /// `run_id`: the `mlflow.sourceRun` metadata or a link to the run.
    RunId,
    /// `span.name`, `span.type`, `span.status`.
    Span(&'static str),
    /// `span.attributes.<key>` (the attribute's JSON text), or `span.content` (all of it).
    SpanAttribute(String),
    /// `feedback.<name>` / `expectation.<name>`: an assessment's value (JSON text).
    Assessment {
        kind: &'static str,
        name: String,
    },
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
    /// Deletes traces with their spans and assessments; returns how many.
    fn delete_traces(&self, deletion: &TraceDeletion) -> Result<usize>;
    /// Deletes every trace that started before `cutoff_ms` (retention), at most `limit` at once.
    fn delete_traces_before(&self, cutoff_ms: i64, limit: usize) -> Result<usize>;
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

fn attribute_key(key: &str, text: &str) -> Result<TraceKey> {
    Ok(match key {
        "timestamp" | "timestamp_ms" => TraceKey::Numeric("request_time"),
        "execution_time" | "execution_time_ms" => TraceKey::Numeric("execution_duration"),
        "end_time" | "end_time_ms" => TraceKey::Numeric("end_time"),
        "status" | "state" => TraceKey::Column("state"),
        "request_id" | "trace_id" => TraceKey::Column("trace_id"),
        "client_request_id" => TraceKey::Column("client_request_id"),
        "name" => TraceKey::Tag(TRACE_NAME_TAG.into()),
        "run_id" => TraceKey::RunId,
        "text" => TraceKey::SpanAttribute(String::new()),
        "prompt" => TraceKey::Tag("mlflow.linkedPrompts".into()),
        other => {
            return Err(invalid(format!(
                "Invalid attribute key '{other}' specified in '{text}'. Valid keys are: \
                 ['client_request_id', 'end_time', 'end_time_ms', 'execution_time', \
                 'execution_time_ms', 'name', 'prompt', 'request_id', 'run_id', 'status', \
                 'text', 'timestamp', 'timestamp_ms']"
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
        None => attribute_key(key, text),
        Some("attribute" | "attributes" | "trace") => attribute_key(key, text),
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
            "Invalid entity type '{other}'. Valid values are ['attribute', 'expectation', \
             'feedback', 'metadata', 'request_metadata', 'span', 'tag', 'tags', 'trace']"
        ))),
    }
}

fn allowed_ops(key: &TraceKey) -> &'static [TraceOp] {
    use TraceOp::*;
    match key {
        TraceKey::Numeric(_) => &[Eq, Ne, Lt, Le, Gt, Ge],
        TraceKey::Column(_) | TraceKey::RunId => &[Eq, Ne, In, NotIn, Like, ILike],
        TraceKey::Tag(_) | TraceKey::Metadata(_) => &[Eq, Ne, Like, ILike, IsNull, IsNotNull],
        TraceKey::Span(_) => &[Eq, Ne, In, NotIn, Like, ILike],
        TraceKey::SpanAttribute(k) if k.is_empty() => &[Like, ILike],
        TraceKey::SpanAttribute(_) => &[Eq, Ne, Like, ILike],
        TraceKey::Assessment { .. } => &[Eq, Ne, Lt, Le, Gt, Ge, Like, ILike, IsNull, IsNotNull],
    }
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
                    "IN" => TraceOp::In,
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
        if !allowed_ops(&key).contains(&op) {
            return Err(bad(&format!(
                "the comparator is not supported for '{ident}'"
            )));
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
                    (Some(Token::Number(_)), _) => {
                        return Err(bad(&format!(
                            "the value of '{ident}' must be a quoted string"
                        )));
                    }
                    _ => return Err(bad("expected a value")),
                };
                pos += 1;
                v
            }
        };
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
    let (Some(ident), direction, None) = (words.next(), words.next(), words.next()) else {
        return Err(invalid(format!("Invalid order_by clause '{text}'.")));
    };
    let ascending = match direction.map(str::to_ascii_uppercase).as_deref() {
        None | Some("ASC") => true,
        Some("DESC") => false,
        Some(other) => {
            return Err(invalid(format!(
                "Invalid ordering key in order_by clause '{text}': '{other}'"
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
