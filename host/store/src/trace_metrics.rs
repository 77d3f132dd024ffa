//! Trace analytics as MLflow 3.17's server answers them: `QueryTraceMetrics`
//! (`POST /api/3.0/mlflow/traces/metrics`, aggregates of traces, spans or assessments grouped
//! by dimensions and time buckets) and `CalculateTraceFilterCorrelation` (NPMI of two trace
//! filters). Each backend only reads rows ([`TraceStore::trace_metric_rows`],
//! [`TraceStore::count_traces`]); the SQL of those reads, the grouping, the aggregations and
//! the statistics are here, once for both.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;
use wasmflow_core::pyjson::repr_f64;
use wasmflow_core::{Error, Result};

use crate::columns::Columns;
use crate::search_sql::{Binder, Bound, Dialect, Query, experiment_match};
use crate::traces::{SOURCE_RUN_METADATA, TRACE_NAME_TAG, TraceClause, TraceStore};

/// MLflow's `MAX_RESULTS_QUERY_TRACE_METRICS`: the default and largest number of data points.
pub const MAX_METRIC_RESULTS: usize = 1000;

const SESSION_METADATA: &str = "mlflow.trace.session";
const TOKEN_USAGE_METADATA: &str = "mlflow.trace.tokenUsage";
/// The span attributes MLflow's SQL store copies into its span cost and model columns
/// (`SpanAttributeKey.LLM_COST`, `MODEL`, `MODEL_PROVIDER`).
const LLM_COST: &str = crate::traces::derived::LLM_COST;
const LLM_MODEL: &str = "mlflow.llm.model";
const LLM_PROVIDER: &str = "mlflow.llm.provider";
/// MLflow's `MODEL_DIMENSION_MAX_LENGTH`: model names and providers are cut to this many
/// characters.
const MODEL_DIMENSION_MAX_CHARS: usize = 500;

/// What a metric aggregates (`MetricViewType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricView {
    Traces,
    Spans,
    Assessments,
}

impl MetricView {
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "TRACES" => Self::Traces,
            "SPANS" => Self::Spans,
            "ASSESSMENTS" => Self::Assessments,
            other => {
                return Err(Error::invalid(format!(
                    "view_type must be one of ['TRACES', 'SPANS', 'ASSESSMENTS'], got '{other}'"
                )));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Traces => "TRACES",
            Self::Spans => "SPANS",
            Self::Assessments => "ASSESSMENTS",
        }
    }
}

/// An aggregation (`MetricAggregation`); its label (`COUNT`, `P50.0`) keys the answer's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregation {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// A percentile between 0 and 100, linearly interpolated (numpy's default, as
    /// PostgreSQL's `percentile_cont` and MLflow's SQLite aggregate compute it).
    Percentile(f64),
}

impl Aggregation {
    pub fn parse(kind: &str, percentile: Option<f64>) -> Result<Self> {
        let agg = match kind {
            "COUNT" => Self::Count,
            "SUM" => Self::Sum,
            "AVG" => Self::Avg,
            "MIN" => Self::Min,
            "MAX" => Self::Max,
            "PERCENTILE" => {
                let p = percentile.ok_or_else(|| {
                    Error::invalid("Percentile value is required for PERCENTILE aggregation")
                })?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(Error::invalid(format!(
                        "Percentile value must be between 0 and 100, got {}",
                        repr_f64(p)
                    )));
                }
                return Ok(Self::Percentile(p));
            }
            other => {
                return Err(Error::invalid(format!(
                    "invalid aggregation_type '{other}': expected COUNT, SUM, AVG, PERCENTILE, \
                     MIN or MAX"
                )));
            }
        };
        if percentile.is_some() {
            return Err(Error::invalid(format!(
                "Percentile value is only allowed for PERCENTILE aggregation type, got {kind}"
            )));
        }
        Ok(agg)
    }

    fn kind(self) -> &'static str {
        match self {
            Self::Count => "COUNT",
            Self::Sum => "SUM",
            Self::Avg => "AVG",
            Self::Min => "MIN",
            Self::Max => "MAX",
            Self::Percentile(_) => "PERCENTILE",
        }
    }

    /// MLflow's `str(aggregation)`.
    pub fn label(self) -> String {
        match self {
            Self::Percentile(p) => format!("P{}", repr_f64(p)),
            other => other.kind().to_string(),
        }
    }
}

/// One `filters` item: `<view>.<entity>[.<key>] = '<value>'`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFilter {
    /// `trace`, `span` or `assessment`.
    pub view: &'static str,
    pub entity: &'static str,
    pub key: Option<String>,
    pub value: String,
}

/// The entities each filter view knows, and whether each takes a key.
const FILTER_ENTITIES: [(&str, &[(&str, bool)]); 3] = [
    (
        "trace",
        &[("status", false), ("tag", true), ("metadata", true)],
    ),
    (
        "span",
        &[("name", false), ("status", false), ("type", false)],
    ),
    ("assessment", &[("name", false), ("type", false)]),
];

fn python_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// MLflow's refusal of asked-for names a metric does not support (its aggregations or its
/// dimensions): each bad name once, both lists sorted, in Python's list syntax.
fn refuse_unsupported<'a>(
    asked: impl Iterator<Item = &'a str>,
    supported: &[&str],
    found: &str,
    supported_name: &str,
) -> Result<()> {
    let mut invalid: Vec<&str> = asked.filter(|a| !supported.contains(a)).collect();
    if invalid.is_empty() {
        return Ok(());
    }
    invalid.sort();
    invalid.dedup();
    let mut supported = supported.to_vec();
    supported.sort();
    Err(Error::invalid(format!(
        "Found invalid {found}: {}. Supported {supported_name}: {}",
        python_list(&invalid),
        python_list(&supported)
    )))
}

fn strip_backticks(s: &str) -> &str {
    s.strip_prefix('`')
        .and_then(|s| s.strip_suffix('`'))
        .unwrap_or(s)
}

fn strip_quotes(s: &str) -> Option<&str> {
    ['\'', '"']
        .iter()
        .find_map(|q| s.strip_prefix(*q).and_then(|s| s.strip_suffix(*q)))
}

/// Parses one metric filter as MLflow's `SearchTraceMetricsUtils.parse_search_filter` does.
pub fn parse_metric_filter(text: &str) -> Result<MetricFilter> {
    // The comparator: the first operator outside quotes and backticks.
    let bytes = text.as_bytes();
    let mut quote: Option<u8> = None;
    let mut found = None;
    for (i, &c) in bytes.iter().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, b'\'' | b'"' | b'`') => quote = Some(c),
            None if matches!(c, b'=' | b'!' | b'<' | b'>') => {
                let len = if bytes.get(i + 1) == Some(&b'=') && c != b'=' {
                    2
                } else {
                    1
                };
                found = Some((i, len));
                break;
            }
            None => {}
        }
    }
    let Some((at, len)) = found else {
        return Err(Error::invalid(format!(
            "Invalid filter: '{text}'. Expected one filter clause."
        )));
    };
    let ident = text[..at].trim();
    let comparator = &text[at..at + len];
    let raw_value = text[at + len..].trim();
    let identifier_error = || {
        Error::invalid(format!(
            "Invalid identifier '{ident}'. Columns should be specified as 'trace.<key>', \
             'span.<key>', 'assessment.<key>'."
        ))
    };
    let parts: Vec<&str> = ident.splitn(3, '.').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(identifier_error());
    }
    let view_name = strip_backticks(parts[0]);
    let Some((view, entities)) = FILTER_ENTITIES.iter().find(|(v, _)| *v == view_name) else {
        return Err(Error::invalid(format!(
            "Invalid view type '{view_name}'. Valid values are dict_keys(['trace', 'span', \
             'assessment'])"
        )));
    };
    let Some((entity, needs_key)) = entities.iter().find(|(e, _)| *e == parts[1]) else {
        let names: Vec<&str> = entities.iter().map(|(e, _)| *e).collect();
        return Err(Error::invalid(format!(
            "Invalid entity '{}' specified for view type '{view}'. Valid entities are {}",
            parts[1],
            python_list(&names)
        )));
    };
    let key = parts.get(2).map(|k| {
        let k = strip_quotes(k).unwrap_or(k);
        strip_backticks(k).to_string()
    });
    match (needs_key, &key) {
        (true, None) => {
            return Err(Error::invalid(format!(
                "Filtering by {entity} requires a key, e.g. '{view}.{entity}.<key> = <value>'"
            )));
        }
        (false, Some(_)) => {
            return Err(Error::invalid(format!(
                "Filtering by {entity} does not require a key, use '{view}.{entity}' instead"
            )));
        }
        _ => {}
    }
    if comparator != "=" {
        return Err(Error::invalid(format!(
            "Invalid comparator: '{comparator}', only '=' operator is supported"
        )));
    }
    let value = strip_quotes(raw_value).ok_or_else(|| {
        Error::invalid(format!(
            "Expected a quoted string value for {entity} value (e.g. 'my-value'). Got value \
             {raw_value}"
        ))
    })?;
    Ok(MetricFilter {
        view,
        entity,
        key,
        value: value.to_string(),
    })
}

/// A `QueryTraceMetrics` request, parsed.
#[derive(Debug, Clone)]
pub struct MetricQuery {
    pub experiment_ids: Vec<String>,
    pub view: MetricView,
    pub metric_name: String,
    pub aggregations: Vec<Aggregation>,
    pub dimensions: Vec<String>,
    pub filters: Vec<MetricFilter>,
    pub time_interval_seconds: Option<i64>,
    pub start_time_ms: Option<i64>,
    pub end_time_ms: Option<i64>,
    pub max_results: usize,
}

/// What a metric's row value is, and so how it is aggregated.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Measure {
    /// An id: only counted.
    Id,
    /// A text counted once per distinct value (sessions).
    Distinct,
    /// A number.
    Number,
    /// An assessment's JSON value, as a number where MLflow aggregates one.
    AssessmentValue,
    /// A span's `mlflow.llm.cost` attribute (a JSON object), whose field of this name is the
    /// number.
    SpanCost(&'static str),
}

/// A metric MLflow's `VIEW_TYPE_CONFIGS` lists: its aggregations and dimensions.
struct MetricSpec {
    name: &'static str,
    aggregations: &'static [&'static str],
    dimensions: &'static [&'static str],
    measure: Measure,
}

const NUMERIC: &[&str] = &["SUM", "AVG", "MIN", "MAX", "PERCENTILE"];
const SPREAD: &[&str] = &["AVG", "MIN", "MAX", "PERCENTILE"];

const TRACE_METRICS: &[MetricSpec] = &[
    MetricSpec {
        name: "trace_count",
        aggregations: &["COUNT"],
        dimensions: &["trace_name", "trace_status"],
        measure: Measure::Id,
    },
    MetricSpec {
        name: "session_count",
        aggregations: &["COUNT"],
        dimensions: &[],
        measure: Measure::Distinct,
    },
    MetricSpec {
        name: "latency",
        aggregations: SPREAD,
        dimensions: &["trace_name"],
        measure: Measure::Number,
    },
    MetricSpec {
        name: "input_tokens",
        aggregations: NUMERIC,
        dimensions: &["trace_name"],
        measure: Measure::Number,
    },
    MetricSpec {
        name: "output_tokens",
        aggregations: NUMERIC,
        dimensions: &["trace_name"],
        measure: Measure::Number,
    },
    MetricSpec {
        name: "total_tokens",
        aggregations: NUMERIC,
        dimensions: &["trace_name"],
        measure: Measure::Number,
    },
    MetricSpec {
        name: "cache_read_input_tokens",
        aggregations: NUMERIC,
        dimensions: &["trace_name"],
        measure: Measure::Number,
    },
    MetricSpec {
        name: "cache_creation_input_tokens",
        aggregations: NUMERIC,
        dimensions: &["trace_name"],
        measure: Measure::Number,
    },
];

const MODEL_DIMENSIONS: &[&str] = &["span_model_name", "span_model_provider"];

const SPAN_METRICS: &[MetricSpec] = &[
    MetricSpec {
        name: "span_count",
        aggregations: &["COUNT"],
        dimensions: &[
            "span_name",
            "span_type",
            "span_status",
            "span_model_name",
            "span_model_provider",
        ],
        measure: Measure::Id,
    },
    MetricSpec {
        name: "latency",
        aggregations: SPREAD,
        dimensions: &["span_name", "span_status"],
        measure: Measure::Number,
    },
    MetricSpec {
        name: "input_cost",
        aggregations: NUMERIC,
        dimensions: MODEL_DIMENSIONS,
        measure: Measure::SpanCost("input_cost"),
    },
    MetricSpec {
        name: "output_cost",
        aggregations: NUMERIC,
        dimensions: MODEL_DIMENSIONS,
        measure: Measure::SpanCost("output_cost"),
    },
    MetricSpec {
        name: "total_cost",
        aggregations: NUMERIC,
        dimensions: MODEL_DIMENSIONS,
        measure: Measure::SpanCost("total_cost"),
    },
];

const ASSESSMENT_METRICS: &[MetricSpec] = &[
    MetricSpec {
        name: "assessment_count",
        aggregations: &["COUNT"],
        dimensions: &["assessment_name", "assessment_value"],
        measure: Measure::Id,
    },
    MetricSpec {
        name: "assessment_value",
        aggregations: SPREAD,
        dimensions: &["assessment_name"],
        measure: Measure::AssessmentValue,
    },
];

fn metrics_of(view: MetricView) -> &'static [MetricSpec] {
    match view {
        MetricView::Traces => TRACE_METRICS,
        MetricView::Spans => SPAN_METRICS,
        MetricView::Assessments => ASSESSMENT_METRICS,
    }
}

impl MetricQuery {
    /// MLflow's `validate_query_trace_metrics_params`, and the time window rule.
    fn spec(&self) -> Result<&'static MetricSpec> {
        let specs = metrics_of(self.view);
        let Some(spec) = specs.iter().find(|s| s.name == self.metric_name) else {
            let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
            return Err(Error::invalid(format!(
                "metric_name must be one of {}, got '{}'",
                python_list(&names),
                self.metric_name
            )));
        };
        refuse_unsupported(
            self.aggregations.iter().map(|a| a.kind()),
            spec.aggregations,
            "aggregation_type(s)",
            "aggregation types",
        )?;
        refuse_unsupported(
            self.dimensions.iter().map(String::as_str),
            spec.dimensions,
            "dimension(s)",
            "dimensions",
        )?;
        if self.time_interval_seconds.is_some_and(|s| s != 0)
            && (self.start_time_ms.is_none() || self.end_time_ms.is_none())
        {
            return Err(Error::invalid(
                "start_time_ms and end_time_ms are required if time_interval_seconds is set",
            ));
        }
        if let Some(s) = self.time_interval_seconds.filter(|s| *s < 0) {
            return Err(Error::invalid(format!(
                "invalid time_interval_seconds {s}: it must be positive"
            )));
        }
        for f in &self.filters {
            let allowed = match f.view {
                "span" => self.view == MetricView::Spans,
                "assessment" => self.view == MetricView::Assessments,
                _ => true,
            };
            if !allowed {
                let (what, view) = if f.view == "span" {
                    ("span", "SPANS")
                } else {
                    ("assessment", "ASSESSMENTS")
                };
                return Err(Error::invalid(format!(
                    "Filtering by {what} is only supported for {view} view type, got {}",
                    self.view.name()
                )));
            }
        }
        Ok(spec)
    }
}

/// One row a backend reads for a metric: the time it is bucketed by, the value aggregated,
/// and the dimensions' values in the query's order.
#[derive(Debug, Clone)]
pub struct MetricRow {
    pub time_ms: i64,
    pub value: Option<String>,
    pub dimensions: Vec<Option<String>>,
}

/// A [`MetricRow`] from a row of [`metric_rows_query`] with `dimensions` dimension columns.
pub(crate) fn metric_row<C: Columns>(
    r: &C,
    dimensions: usize,
) -> std::result::Result<MetricRow, C::Error> {
    Ok(MetricRow {
        time_ms: r.int(0)?,
        value: r.opt_text(1)?,
        dimensions: (0..dimensions)
            .map(|i| r.opt_text(2 + i))
            .collect::<std::result::Result<_, _>>()?,
    })
}

/// One answer of `QueryTraceMetrics` (`MetricDataPoint`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDataPoint {
    pub metric_name: String,
    /// In the order MLflow selects them: `time_bucket` first, then the asked dimensions.
    pub dimensions: Vec<(String, String)>,
    pub values: Vec<(String, f64)>,
}

/// The SQL a backend runs for [`TraceStore::trace_metric_rows`]: columns (time in ms, value as
/// text, dimensions as text), rows already narrowed to the experiments, window and filters.
pub(crate) fn metric_rows_query(q: &MetricQuery, dialect: Dialect) -> Result<Query> {
    let spec = q.spec()?;
    let mut b = Binder::new(dialect);
    let experiments: Vec<i64> = q
        .experiment_ids
        .iter()
        .filter_map(|id| id.parse().ok())
        .collect();
    let metadata = |key: &str, b: &mut Binder| {
        format!(
            "(SELECT k.value FROM trace_metadata k WHERE k.trace_key = t.trace_key AND k.key = {})",
            b.text(key)
        )
    };
    // A span attribute's value as text (a string as it is, anything else as JSON): MLflow
    // copies the cost and model attributes into columns when it stores a span; wasmflow reads
    // them out of the stored span when asked, and [`query_trace_metrics`] decodes them.
    let span_attribute = |key: &str, b: &mut Binder| match dialect {
        Dialect::Sqlite => format!(
            "CAST(json_extract(s.content, {}) AS TEXT)",
            b.text(format!("$.attributes.\"{key}\""))
        ),
        Dialect::Postgres => format!("(s.attributes ->> {})", b.text(key)),
    };
    let trace_name = |b: &mut Binder| {
        format!(
            "(SELECT n.value FROM trace_tags n WHERE n.trace_key = t.trace_key AND n.key = {})",
            b.text(TRACE_NAME_TAG)
        )
    };
    // Placeholders are numbered in the order bound, so the SELECT list is bound first.
    let (time, value) = match (q.view, q.metric_name.as_str()) {
        (MetricView::Traces, "trace_count") => ("t.request_time", "t.trace_id".to_string()),
        (MetricView::Traces, "session_count") => {
            ("t.request_time", metadata(SESSION_METADATA, &mut b))
        }
        (MetricView::Traces, "latency") => (
            "t.request_time",
            "CAST(t.execution_duration AS TEXT)".to_string(),
        ),
        (MetricView::Traces, tokens) => {
            // The field's placeholder comes first in the SQL text, so it is bound first.
            let field = match dialect {
                Dialect::Sqlite => format!(
                    "CAST(json_extract(k.value, {}) AS TEXT)",
                    b.text(format!("$.{tokens}"))
                ),
                Dialect::Postgres => format!(
                    "(CASE WHEN k.value ~ '^\\s*\\{{' THEN k.value::jsonb ->> {} END)",
                    b.text(tokens)
                ),
            };
            let usage = b.text(TOKEN_USAGE_METADATA);
            let valid = match dialect {
                Dialect::Sqlite => " AND json_valid(k.value)",
                Dialect::Postgres => "",
            };
            (
                "t.request_time",
                format!(
                    "(SELECT {field} FROM trace_metadata k WHERE k.trace_key = t.trace_key \
                     AND k.key = {usage}{valid})"
                ),
            )
        }
        (MetricView::Spans, "span_count") => ("(s.start_time_ns / 1000000)", "s.span_id".into()),
        (MetricView::Spans, _) if matches!(spec.measure, Measure::SpanCost(_)) => (
            "(s.start_time_ns / 1000000)",
            span_attribute(LLM_COST, &mut b),
        ),
        (MetricView::Spans, _) => (
            "(s.start_time_ns / 1000000)",
            "CAST((s.end_time_ns - s.start_time_ns) / 1000000 AS TEXT)".into(),
        ),
        (MetricView::Assessments, "assessment_count") => {
            ("t.request_time", "a.assessment_id".into())
        }
        (MetricView::Assessments, _) => ("t.request_time", "a.value".into()),
    };
    let mut columns = vec![format!("{time} AS m_time"), format!("{value} AS m_value")];
    for (i, d) in q.dimensions.iter().enumerate() {
        let column = match d.as_str() {
            "trace_name" => trace_name(&mut b),
            "trace_status" => "t.state".into(),
            "span_name" => "s.name".into(),
            "span_type" => "s.span_type".into(),
            "span_status" => "s.status".into(),
            "span_model_name" => span_attribute(LLM_MODEL, &mut b),
            "span_model_provider" => span_attribute(LLM_PROVIDER, &mut b),
            "assessment_name" => "a.name".into(),
            _ => "a.value".into(),
        };
        columns.push(format!("{column} AS m_d{i}"));
    }
    let from = match q.view {
        MetricView::Traces => "trace_info t",
        MetricView::Spans => "trace_info t JOIN spans s ON s.trace_key = t.trace_key",
        MetricView::Assessments => "assessments a JOIN trace_info t ON t.trace_id = a.trace_id",
    };
    // The outer query drops rows without a value (MLflow filters them before grouping); the
    // value's SQL is written once, its placeholders bound once.
    let mut sql = format!(
        "SELECT * FROM (SELECT {} FROM {from} WHERE {}",
        columns.join(", "),
        experiment_match("t.experiment_id", &experiments, &mut b)
    );
    if q.view == MetricView::Assessments {
        // An overridden assessment is not counted twice.
        sql.push_str(" AND a.valid = 1");
    }
    // The window is on the trace's time, except for span costs, which MLflow bounds by the
    // span's start (every nanosecond of the end millisecond included); it buckets all span
    // rows by span start.
    if let Measure::SpanCost(_) = spec.measure {
        if let Some(start) = q.start_time_ms {
            sql.push_str(&format!(
                " AND s.start_time_ns >= {}",
                b.bind(Bound::Int(start.saturating_mul(1_000_000)))
            ));
        }
        if let Some(end) = q.end_time_ms {
            sql.push_str(&format!(
                " AND s.start_time_ns < {}",
                b.bind(Bound::Int(end.saturating_add(1).saturating_mul(1_000_000)))
            ));
        }
    } else if let Some(start) = q.start_time_ms {
        sql.push_str(&format!(
            " AND t.request_time >= {}",
            b.bind(Bound::Int(start))
        ));
    }
    if let (Some(end), false) = (q.end_time_ms, matches!(spec.measure, Measure::SpanCost(_))) {
        sql.push_str(&format!(
            " AND t.request_time <= {}",
            b.bind(Bound::Int(end))
        ));
    }
    for f in &q.filters {
        sql.push_str(" AND ");
        sql.push_str(&filter_sql(f, &mut b));
    }
    sql.push_str(") m WHERE m.m_value IS NOT NULL");
    Ok(b.finish(sql))
}

fn filter_sql(f: &MetricFilter, b: &mut Binder) -> String {
    let keyed = |table: &str, key: &str, value: &str, b: &mut Binder| {
        format!(
            "EXISTS (SELECT 1 FROM {table} k WHERE k.trace_key = t.trace_key AND k.key = {} \
             AND k.value = {})",
            b.text(key),
            b.text(value)
        )
    };
    let key = f.key.as_deref().unwrap_or_default();
    match (f.view, f.entity) {
        ("trace", "status") => format!("t.state = {}", b.text(f.value.clone())),
        ("trace", "tag") => keyed("trace_tags", key, &f.value, b),
        ("trace", _) if key == SOURCE_RUN_METADATA => {
            // A run's traces: by the metadata the client writes, or linked afterwards.
            let by_metadata = keyed("trace_metadata", key, &f.value, b);
            format!(
                "({by_metadata} OR EXISTS (SELECT 1 FROM trace_runs l WHERE \
                 l.trace_id = t.trace_id AND l.run_id = {}))",
                b.text(f.value.clone())
            )
        }
        ("trace", _) => keyed("trace_metadata", key, &f.value, b),
        ("span", entity) => {
            let column = match entity {
                "name" => "s.name",
                "status" => "s.status",
                _ => "s.span_type",
            };
            format!("{column} = {}", b.text(f.value.clone()))
        }
        (_, "name") => format!("a.name = {}", b.text(f.value.clone())),
        _ => format!("a.kind = {}", b.text(f.value.clone())),
    }
}

/// MLflow's `assessment_aggregate`: the number an assessment's value counts as (booleans and
/// "yes"/"no" as 1 and 0), or none.
fn assessment_number(json: &str) -> Option<f64> {
    match serde_json::from_str::<Value>(json).ok()? {
        Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "yes" => Some(1.0),
            "no" => Some(0.0),
            _ => None,
        },
        _ => None,
    }
}

/// An attribute's text that may be a JSON-encoded string (`"\"gpt-4o\""`, as the MLflow
/// client sends attributes) as that string; other text as it is.
fn unwrap_json_string(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::String(inner)) => inner,
        _ => text.to_string(),
    }
}

/// A span's model name or provider as MLflow keeps it (`bounded_model_dimension`).
fn model_dimension(attribute: &str) -> String {
    unwrap_json_string(attribute)
        .chars()
        .take(MODEL_DIMENSION_MAX_CHARS)
        .collect()
}

/// One field of a span's `mlflow.llm.cost` (`{"input_cost": .., "output_cost": ..,
/// "total_cost": ..}` in USD) as MLflow's `finite_float_or_none` reads it: a finite number, or
/// a string Python's `float` reads as one; anything else (booleans included) is no cost.
fn span_cost(attribute: &str, field: &str) -> Option<f64> {
    let cost = match serde_json::from_str::<Value>(attribute).ok()? {
        Value::String(inner) => serde_json::from_str::<Value>(&inner).ok()?,
        other => other,
    };
    let n = match cost.get(field)? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// `percentile` (0–100) of sorted values, interpolated linearly between neighbours.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = p / 100.0 * (sorted.len() - 1) as f64;
    let j = pos.floor() as usize;
    let g = pos - j as f64;
    let next = sorted.get(j + 1).copied().unwrap_or(sorted[j]);
    Some((1.0 - g) * sorted[j] + g * next)
}

/// The values of one group, as read.
#[derive(Default)]
struct Group {
    count: u64,
    numbers: Vec<f64>,
    distinct: HashSet<String>,
}

/// The bucket's start as Python's `datetime.isoformat()` writes a UTC time.
fn bucket_label(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let micros = ms.rem_euclid(1000) * 1000;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = wasmflow_core::time::civil_from_days(days);
    let time = format!(
        "{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    if micros == 0 {
        format!("{y:04}-{m:02}-{d:02}T{time}+00:00")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{time}.{micros:06}+00:00")
    }
}

/// `QueryTraceMetrics`: the store's rows grouped by time bucket and dimensions (in that
/// order, ascending, as MLflow's `GROUP BY ... ORDER BY` returns them), each group
/// aggregated; groups with a missing dimension or no value are left out, as MLflow leaves
/// them out.
pub fn query_trace_metrics(
    store: &dyn TraceStore,
    q: &MetricQuery,
) -> Result<Vec<MetricDataPoint>> {
    let spec = q.spec()?;
    let rows = store.trace_metric_rows(q)?;
    let bucket_ms = q.time_interval_seconds.filter(|s| *s > 0).map(|s| s * 1000);
    let mut groups: BTreeMap<(Option<i64>, Vec<String>), Group> = BTreeMap::new();
    for row in rows {
        let Some(mut dims) = row.dimensions.into_iter().collect::<Option<Vec<String>>>() else {
            continue;
        };
        for (dim, name) in dims.iter_mut().zip(&q.dimensions) {
            if MODEL_DIMENSIONS.contains(&name.as_str()) {
                *dim = model_dimension(dim);
            }
        }
        let Some(value) = row.value else { continue };
        let number = match spec.measure {
            Measure::Number => value.trim().parse::<f64>().ok(),
            Measure::AssessmentValue => assessment_number(&value),
            Measure::SpanCost(field) => span_cost(&value, field),
            Measure::Id | Measure::Distinct => None,
        };
        if !matches!(spec.measure, Measure::Id | Measure::Distinct) && number.is_none() {
            continue;
        }
        let bucket = bucket_ms.map(|b| row.time_ms.div_euclid(b) * b);
        let group = groups.entry((bucket, dims)).or_default();
        group.count += 1;
        if let Some(n) = number {
            group.numbers.push(n);
        }
        if spec.measure == Measure::Distinct {
            group.distinct.insert(value);
        }
    }
    // An aggregate without GROUP BY answers one row even over no rows: COUNT 0.
    if groups.is_empty() && bucket_ms.is_none() && q.dimensions.is_empty() {
        groups.insert((None, Vec::new()), Group::default());
    }
    let mut points = Vec::new();
    for ((bucket, dims), mut group) in groups {
        if points.len() >= q.max_results {
            break;
        }
        group.numbers.sort_by(f64::total_cmp);
        let n = group.numbers.len();
        let mut values = Vec::new();
        for agg in &q.aggregations {
            let v = match agg {
                Aggregation::Count if spec.measure == Measure::Distinct => {
                    Some(group.distinct.len() as f64)
                }
                Aggregation::Count => Some(group.count as f64),
                Aggregation::Sum => (n > 0).then(|| group.numbers.iter().sum()),
                Aggregation::Avg => (n > 0).then(|| group.numbers.iter().sum::<f64>() / n as f64),
                Aggregation::Min => group.numbers.first().copied(),
                Aggregation::Max => group.numbers.last().copied(),
                Aggregation::Percentile(p) => percentile(&group.numbers, *p),
            };
            if let Some(v) = v {
                values.push((agg.label(), v));
            }
        }
        if values.is_empty() {
            continue;
        }
        let mut dimensions = Vec::new();
        if let Some(b) = bucket {
            dimensions.push(("time_bucket".to_string(), bucket_label(b)));
        }
        dimensions.extend(q.dimensions.iter().cloned().zip(dims));
        points.push(MetricDataPoint {
            metric_name: q.metric_name.clone(),
            dimensions,
            values,
        });
    }
    Ok(points)
}

/// `CalculateTraceFilterCorrelation`'s answer.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterCorrelation {
    /// NaN when undefined (a filter matches nothing).
    pub npmi: f64,
    pub npmi_smoothed: f64,
    pub filter1_count: u64,
    pub filter2_count: u64,
    pub joint_count: u64,
    pub total_count: u64,
}

/// How two trace filters co-occur among the traces of `experiment_ids` (those matching `base`
/// when given): four counts and their normalized pointwise mutual information.
pub fn filter_correlation(
    store: &dyn TraceStore,
    experiment_ids: &[String],
    filter1: &[TraceClause],
    filter2: &[TraceClause],
    base: &[TraceClause],
) -> Result<FilterCorrelation> {
    let with = |parts: &[&[TraceClause]]| -> Vec<TraceClause> { parts.concat() };
    let total = store.count_traces(experiment_ids, base)?;
    let f1 = store.count_traces(experiment_ids, &with(&[base, filter1]))?;
    let f2 = store.count_traces(experiment_ids, &with(&[base, filter2]))?;
    let joint = store.count_traces(experiment_ids, &with(&[base, filter1, filter2]))?;
    let (npmi, npmi_smoothed) = npmi_from_counts(joint, f1, f2, total);
    Ok(FilterCorrelation {
        npmi,
        npmi_smoothed,
        filter1_count: f1,
        filter2_count: f2,
        joint_count: joint,
        total_count: total,
    })
}

/// The Jeffreys prior MLflow smooths with.
const JEFFREYS_PRIOR: f64 = 0.5;

/// MLflow's `calculate_npmi_from_counts`: (unsmoothed, smoothed) NPMI, NaN when undefined;
/// -1 unsmoothed when both filters match but never together.
pub fn npmi_from_counts(joint: u64, f1: u64, f2: u64, total: u64) -> (f64, f64) {
    if total == 0 || f1 == 0 || f2 == 0 {
        return (f64::NAN, f64::NAN);
    }
    let (joint, f1, f2, total) = (joint as i128, f1 as i128, f2 as i128, total as i128);
    let cells = [joint, f1 - joint, f2 - joint, total - f1 - f2 + joint];
    if cells.iter().any(|c| *c < 0) {
        return (f64::NAN, f64::NAN);
    }
    let cells = cells.map(|c| c as f64);
    let raw = if joint == 0 {
        -1.0
    } else {
        npmi_core(cells, 0.0)
    };
    (raw, npmi_core(cells, JEFFREYS_PRIOR))
}

fn npmi_core([n11, n10, n01, n00]: [f64; 4], smoothing: f64) -> f64 {
    let (a, b, c, d) = (
        n11 + smoothing,
        n10 + smoothing,
        n01 + smoothing,
        n00 + smoothing,
    );
    let n = a + b + c + d;
    let (n1, n2) = (a + b, a + c);
    if n1 <= 0.0 || n2 <= 0.0 || a <= 0.0 {
        return f64::NAN;
    }
    if n10 == 0.0 && n01 == 0.0 && n00 == 0.0 {
        return 1.0;
    }
    let pmi = (a.ln() + n.ln()) - (n1.ln() + n2.ln());
    let npmi = pmi / -(a.ln() - n.ln());
    npmi.clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npmi_matches_mlflows_policy() {
        // Values computed with MLflow's `calculate_npmi_from_counts`.
        let (raw, smoothed) = npmi_from_counts(10, 20, 15, 100);
        assert!((raw - 0.522_878_745_280_337_8).abs() < 1e-12, "{raw}");
        assert!(
            (smoothed - 0.509_868_999_183_141_2).abs() < 1e-12,
            "{smoothed}"
        );
        let (raw, smoothed) = npmi_from_counts(0, 5, 5, 10);
        assert_eq!(raw, -1.0);
        assert!(
            (smoothed + 0.563_791_416_028_936_9).abs() < 1e-12,
            "{smoothed}"
        );
        assert!(npmi_from_counts(0, 0, 5, 10).0.is_nan());
        assert_eq!(npmi_from_counts(4, 4, 4, 4).0, 1.0);
    }

    #[test]
    fn filters_parse_as_mlflow_reads_them() {
        let f = parse_metric_filter("trace.tag.`my.key` = 'v'").unwrap();
        assert_eq!(f.view, "trace");
        assert_eq!(f.key.as_deref(), Some("my.key"));
        assert_eq!(f.value, "v");
        let e = parse_metric_filter("trace.status != 'OK'").unwrap_err();
        assert!(e.to_string().contains("only '=' operator"), "{e}");
        let e = parse_metric_filter("trace.tag = 'x'").unwrap_err();
        assert!(e.to_string().contains("requires a key"), "{e}");
        let e = parse_metric_filter("run.status = 'x'").unwrap_err();
        assert!(e.to_string().contains("Invalid view type 'run'"), "{e}");
    }

    #[test]
    fn labels_and_percentiles() {
        assert_eq!(Aggregation::Percentile(50.0).label(), "P50.0");
        assert_eq!(Aggregation::Percentile(99.9).label(), "P99.9");
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), Some(2.5));
        assert_eq!(bucket_label(3_600_000), "1970-01-01T01:00:00+00:00");
    }
}
