//! The wire forms of traces: protobuf's JSON mapping of `TraceInfoV3` (timestamps as RFC 3339,
//! durations as `"1.5s"`), of OTLP spans inside MLflow's `Trace` message (ids as base64), and the
//! conversion of received OTLP spans into stored ones.

use std::collections::BTreeMap;

use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{Map, Value, json};
use wasmflow_core::{Error, Result};
use wasmflow_store::traces::{NewSpan, TraceInfo};

/// Milliseconds since the epoch as protobuf's JSON `Timestamp` (`2024-01-02T03:04:05.678Z`).
pub fn format_timestamp(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = wasmflow_core::time::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A protobuf JSON `Timestamp` (RFC 3339, `Z` or an offset) or a number of milliseconds.
pub fn parse_timestamp(value: &Value, field: &str) -> Result<i64> {
    let bad = || Error::invalid(format!("invalid timestamp for '{field}': {value}"));
    let text = match value {
        Value::Number(n) => return n.as_i64().ok_or_else(bad),
        Value::String(s) => s.as_str(),
        _ => return Err(bad()),
    };
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64> {
        text.get(r).and_then(|s| s.parse().ok()).ok_or_else(bad)
    };
    let (y, mo, d, h, mi, s) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let f = &frac[..digits];
        millis = format!("{f:0<3}")[..3].parse::<i64>().map_err(|_| bad())?;
        rest = &frac[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let hh: i64 = o[1..3].parse().map_err(|_| bad())?;
            let mm: i64 = o[4..6].parse().map_err(|_| bad())?;
            sign * (hh * 3600 + mm * 60)
        }
        _ => return Err(bad()),
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset_secs;
    Ok(secs * 1000 + millis)
}

/// Milliseconds as protobuf's JSON `Duration` (`"0.005s"`).
pub fn format_duration(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, (ms % 1000).abs())
    }
}

/// A protobuf JSON `Duration` (`"1.5s"`) as milliseconds.
pub fn parse_duration(value: &Value, field: &str) -> Result<i64> {
    let bad = || Error::invalid(format!("invalid duration for '{field}': {value}"));
    match value {
        Value::Number(n) => n.as_i64().ok_or_else(bad),
        Value::String(s) => {
            let secs: f64 = s
                .strip_suffix('s')
                .ok_or_else(bad)?
                .parse()
                .map_err(|_| bad())?;
            Ok((secs * 1000.0).round() as i64)
        }
        _ => Err(bad()),
    }
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(m)) = value {
        for (k, v) in m {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            out.insert(k.clone(), v);
        }
    }
    out
}

/// A `TraceInfoV3` JSON message as the client sends it.
pub fn trace_info_from_json(v: &Value) -> Result<TraceInfo> {
    let trace_id = v
        .get("trace_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| crate::request::missing_param("trace_id").0)?;
    let experiment_id = v
        .pointer("/trace_location/mlflow_experiment/experiment_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::invalid(format!(
                "the trace location of trace '{trace_id}' must be an MLflow experiment"
            ))
        })?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(TraceInfo {
        trace_id: trace_id.to_string(),
        experiment_id: experiment_id.to_string(),
        request_time: match v.get("request_time") {
            Some(t) => parse_timestamp(t, "request_time")?,
            None => 0,
        },
        execution_duration: match v.get("execution_duration") {
            Some(d) if !d.is_null() => Some(parse_duration(d, "execution_duration")?),
            _ => None,
        },
        state: text("state").unwrap_or_else(|| "STATE_UNSPECIFIED".into()),
        client_request_id: text("client_request_id"),
        request_preview: text("request_preview"),
        response_preview: text("response_preview"),
        trace_metadata: string_map(v.get("trace_metadata")),
        tags: string_map(v.get("tags")),
        assessments: v
            .get("assessments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    })
}

/// `TraceInfoV3` as protobuf's JSON mapping writes it.
pub fn trace_info_json(info: &TraceInfo) -> Value {
    serde_json::to_value(TraceInfoJson(info)).unwrap_or(Value::Null)
}

/// A `TraceInfoV3` written straight into an answer (a search page writes 100 of them), without
/// first copying it into a [`Value`]: protobuf's JSON mapping, fields in MLflow's order.
pub struct TraceInfoJson<'a>(pub &'a TraceInfo);

impl serde::Serialize for TraceInfoJson<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(serde::Serialize)]
        struct Experiment<'a> {
            experiment_id: &'a str,
        }
        #[derive(serde::Serialize)]
        struct Location<'a> {
            r#type: &'static str,
            mlflow_experiment: Experiment<'a>,
        }
        let info = self.0;
        let mut m = serializer.serialize_map(None)?;
        m.serialize_entry("trace_id", &info.trace_id)?;
        m.serialize_entry(
            "trace_location",
            &Location {
                r#type: "MLFLOW_EXPERIMENT",
                mlflow_experiment: Experiment {
                    experiment_id: &info.experiment_id,
                },
            },
        )?;
        m.serialize_entry("request_time", &format_timestamp(info.request_time))?;
        if let Some(d) = info.execution_duration {
            m.serialize_entry("execution_duration", &format_duration(d))?;
        }
        m.serialize_entry("state", &info.state)?;
        for (k, v) in [
            ("client_request_id", &info.client_request_id),
            ("request_preview", &info.request_preview),
            ("response_preview", &info.response_preview),
        ] {
            if let Some(v) = v {
                m.serialize_entry(k, v)?;
            }
        }
        // MLflow writes the answer from a proto, which leaves empty maps and lists out.
        if !info.trace_metadata.is_empty() {
            m.serialize_entry("trace_metadata", &info.trace_metadata)?;
        }
        if !info.tags.is_empty() {
            m.serialize_entry("tags", &info.tags)?;
        }
        if !info.assessments.is_empty() {
            m.serialize_entry("assessments", &info.assessments)?;
        }
        m.end()
    }
}

/// The v2 `TraceInfo` (`request_id`, `timestamp_ms`, lists of key/value pairs).
pub fn trace_info_v2_json(info: &TraceInfo) -> Value {
    let pairs = |m: &BTreeMap<String, String>| -> Vec<Value> {
        m.iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect()
    };
    let status = match info.state.as_str() {
        "STATE_UNSPECIFIED" => "TRACE_STATUS_UNSPECIFIED",
        other => other,
    };
    json!({
        "request_id": info.trace_id,
        "experiment_id": info.experiment_id,
        "timestamp_ms": info.request_time,
        // MLflow's `TraceInfoV2.to_proto` writes an unfinished trace's duration as 0.
        "execution_time_ms": info.execution_duration.unwrap_or(0),
        "status": status,
        "request_metadata": pairs(&info.trace_metadata),
        "tags": pairs(&info.tags),
    })
}

// ---------------------------------------------------------------------------------------------
// Spans.

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// An OTLP `AnyValue` in protobuf's JSON mapping.
fn any_value_json(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => json!({"string_value": s}),
        Some(any_value::Value::BoolValue(b)) => json!({"bool_value": b}),
        Some(any_value::Value::IntValue(i)) => json!({"int_value": i.to_string()}),
        Some(any_value::Value::DoubleValue(d)) if d.is_finite() => json!({"double_value": d}),
        Some(any_value::Value::DoubleValue(d)) => {
            json!({"double_value": if d.is_nan() { "NaN" } else if *d > 0.0 { "Infinity" } else { "-Infinity" }})
        }
        Some(any_value::Value::ArrayValue(a)) => {
            json!({"array_value": {"values": a.values.iter().map(any_value_json).collect::<Vec<_>>()}})
        }
        Some(any_value::Value::KvlistValue(kv)) => {
            json!({"kvlist_value": {"values": key_values_json(&kv.values)}})
        }
        Some(any_value::Value::BytesValue(b)) => json!({"bytes_value": b64(b)}),
        _ => json!({}),
    }
}

fn key_values_json(kvs: &[KeyValue]) -> Vec<Value> {
    kvs.iter()
        .map(|kv| {
            json!({
                "key": kv.key,
                "value": kv.value.as_ref().map(any_value_json).unwrap_or_else(|| json!({})),
            })
        })
        .collect()
}

/// A stored span's OTLP bytes, decoded.
fn stored_span(body: &[u8]) -> Result<Span> {
    Span::decode(body).map_err(|e| Error::internal(format!("a stored span is not OTLP: {e}")))
}

/// A stored span (OTLP protobuf) as the JSON of the `opentelemetry.proto.trace.v1.Span` inside
/// MLflow's `Trace` message.
pub fn span_json(body: &[u8]) -> Result<Value> {
    let mut s = stored_span(body)?;
    super::translate::type_when_loaded(&mut s);
    let mut m = Map::new();
    m.insert("trace_id".into(), json!(b64(&s.trace_id)));
    m.insert("span_id".into(), json!(b64(&s.span_id)));
    if !s.trace_state.is_empty() {
        m.insert("trace_state".into(), json!(s.trace_state));
    }
    if !s.parent_span_id.is_empty() {
        m.insert("parent_span_id".into(), json!(b64(&s.parent_span_id)));
    }
    m.insert("name".into(), json!(s.name));
    m.insert("kind".into(), json!(s.kind));
    m.insert(
        "start_time_unix_nano".into(),
        json!(s.start_time_unix_nano.to_string()),
    );
    m.insert(
        "end_time_unix_nano".into(),
        json!(s.end_time_unix_nano.to_string()),
    );
    // An attribute holding a JSON string, object or array as text is answered as that value,
    // as MLflow answers it from the span it stored (see [`sanitized`]).
    let attributes: Vec<Value> = s
        .attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref() {
                Some(v) => match unwrapped(v) {
                    Some(inner) => any_value_json(&any_value(&inner)),
                    None => any_value_json(v),
                },
                None => json!({}),
            };
            json!({"key": kv.key, "value": value})
        })
        .collect();
    m.insert("attributes".into(), json!(attributes));
    let events: Vec<Value> = s
        .events
        .iter()
        .map(|e| {
            json!({
                "time_unix_nano": e.time_unix_nano.to_string(),
                "name": e.name,
                "attributes": key_values_json(&e.attributes),
            })
        })
        .collect();
    m.insert("events".into(), json!(events));
    let links: Vec<Value> = s
        .links
        .iter()
        .map(|l| {
            json!({
                "trace_id": b64(&l.trace_id),
                "span_id": b64(&l.span_id),
                "attributes": key_values_json(&l.attributes),
            })
        })
        .collect();
    if !links.is_empty() {
        m.insert("links".into(), json!(links));
    }
    if let Some(st) = &s.status {
        m.insert(
            "status".into(),
            json!({"message": st.message, "code": st.code}),
        );
    }
    Ok(Value::Object(m))
}

/// An attribute's value as plain JSON (what MLflow's span attributes hold once decoded).
pub(super) fn plain(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::ArrayValue(a)) => Value::Array(a.values.iter().map(plain).collect()),
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map(plain).unwrap_or(Value::Null),
                    )
                })
                .collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => json!(b64(b)),
        _ => Value::Null,
    }
}

/// A string attribute holding a JSON string, object or array as its text: that value. MLflow's
/// store keeps such attributes as that value (`sanitize_attributes`: producers that cannot send
/// maps send them JSON-encoded); other values are kept as they are.
fn unwrapped(v: &AnyValue) -> Option<Value> {
    let Some(any_value::Value::StringValue(s)) = &v.value else {
        return None;
    };
    if !may_hold_json_text(s) {
        return None;
    }
    match serde_json::from_str::<Value>(s) {
        Ok(inner @ (Value::String(_) | Value::Object(_) | Value::Array(_))) => Some(inner),
        _ => None,
    }
}

/// Whether `s` starts (after JSON's blanks) like a JSON string, object or array: only such text
/// can hold one, so the others (most values) are not parsed at all.
fn may_hold_json_text(s: &str) -> bool {
    s.trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with(['"', '{', '['])
}

/// Whether `s` is the JSON text of a string, object or array (see [`unwrapped`]), checked
/// without building the value.
fn holds_json_text(s: &str) -> bool {
    may_hold_json_text(s) && serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()
}

/// An attribute's value as MLflow's store keeps it: [`plain`], or the value its JSON text
/// holds (see [`unwrapped`]).
pub(super) fn sanitized(v: &AnyValue) -> Value {
    unwrapped(v).unwrap_or_else(|| plain(v))
}

/// A JSON value as the OTLP value MLflow's `_set_otel_proto_anyvalue` makes of it.
pub(super) fn any_value(v: &Value) -> AnyValue {
    use any_value::Value as V;
    let value = match v {
        Value::Null => None,
        Value::Bool(b) => Some(V::BoolValue(*b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => V::IntValue(i),
            None => V::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(s) => Some(V::StringValue(s.clone())),
        Value::Array(items) => Some(V::ArrayValue(ArrayValue {
            values: items.iter().map(any_value).collect(),
        })),
        Value::Object(o) => Some(V::KvlistValue(KeyValueList {
            values: o
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(any_value(v)),
                    ..Default::default()
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

/// The MLflow trace id of an OTLP trace id (`tr-` and its hex).
pub fn mlflow_trace_id(otel_trace_id: &[u8]) -> String {
    format!("tr-{}", hex(otel_trace_id))
}

/// The trace tags MLflow keeps from an OTLP resource's attributes: strings as they are, other
/// values as `json.dumps` writes them; the SDK's own (`telemetry.sdk.*`) and MLflow's reserved
/// `mlflow.*` keys are left out, so a producer cannot set the server's tags through them.
pub fn resource_tags(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter(|kv| !kv.key.starts_with("telemetry.sdk.") && !kv.key.starts_with("mlflow."))
        .filter(|kv| !kv.key.is_empty() && kv.key.len() <= 250)
        .map(|kv| {
            let value = kv.value.as_ref().map(plain).unwrap_or(Value::Null);
            let text = match value {
                Value::String(s) => s,
                other => {
                    wasmflow_core::pyjson::dumps(&other, wasmflow_core::pyjson::Style::Default)
                }
            };
            (kv.key.clone(), text)
        })
        .collect()
}

/// A stored span as MLflow's `Span.to_dict()` writes it in a trace's `traces.json` (what
/// `get-trace-artifact` answers): ids in base64, times as numbers, the status code by name,
/// and each attribute's value as its JSON text; typed as MLflow types it when it loads it
/// ([`super::translate::type_when_loaded`]).
pub fn loaded_span_dict(body: &[u8]) -> Result<Value> {
    let mut s = stored_span(body)?;
    super::translate::type_when_loaded(&mut s);
    Ok(span_dict_of(&s))
}

/// A stored span's `content` text from its OTLP bytes, as [`new_span`] writes it (migration
/// 0011 rewrites the text older wasmflows wrote with it).
pub fn span_content(body: &[u8]) -> Result<String> {
    let s = stored_span(body)?;
    Ok(content_text(&s))
}

/// The span's JSON text exactly as MLflow's SQL store keeps it (`json.dumps` of
/// `Span.to_dict()`, [`span_dict_of`]): `span.content` and `span.attributes.<key>` filters are
/// LIKE patterns over this text, so the same text matches the same patterns as in MLflow.
fn content_text(s: &Span) -> String {
    let mut out = String::with_capacity(512);
    write_content(s, &mut out);
    out
}

/// [`loaded_span_dict`] of a decoded span. As MLflow's `Span.from_otel_proto`, the span's
/// `mlflow.traceRequestId` attribute is the trace's MLflow id (the server's, whatever a client
/// sent), in its place if the client sent one, else last.
fn span_dict_of(s: &Span) -> Value {
    let mut attributes: Map<String, Value> = s
        .attributes
        .iter()
        .map(|kv| {
            let mut text = String::new();
            attribute_text(kv.value.as_ref(), &mut text);
            (kv.key.clone(), Value::String(text))
        })
        .collect();
    attributes.insert(
        REQUEST_ID_ATTRIBUTE.into(),
        json!(request_id_text(&s.trace_id)),
    );
    json!({
        "trace_id": b64(&s.trace_id),
        "span_id": b64(&s.span_id),
        "parent_span_id": (!s.parent_span_id.is_empty()).then(|| b64(&s.parent_span_id)),
        "name": s.name,
        "start_time_unix_nano": s.start_time_unix_nano,
        "end_time_unix_nano": (s.end_time_unix_nano != 0).then_some(s.end_time_unix_nano),
        "events": s.events.iter().map(event_dict).collect::<Vec<_>>(),
        "status": {
            "code": status_code_name(s),
            "message": s.status.as_ref().map(|st| st.message.clone()).unwrap_or_default(),
        },
        "attributes": attributes,
        "links": s.links.iter().map(link_dict).collect::<Vec<_>>(),
    })
}

/// The span's text as [`content_text`] of [`span_dict_of`] writes it, byte for byte, written
/// straight from the OTLP span: building that tree of values first (a map and a string or two
/// for every attribute) and then writing it out was the largest part of the request side's CPU
/// under OTLP ingest. `span_text_is_the_dicts_text` holds the two to the same text.
fn write_content(s: &Span, out: &mut String) {
    use std::fmt::Write as _;
    use wasmflow_core::pyjson::{Style, write_string};
    let quoted_b64 = |bytes: &[u8], out: &mut String| {
        out.push('"');
        base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
        out.push('"');
    };
    out.push_str("{\"trace_id\": ");
    quoted_b64(&s.trace_id, out);
    out.push_str(", \"span_id\": ");
    quoted_b64(&s.span_id, out);
    out.push_str(", \"parent_span_id\": ");
    if s.parent_span_id.is_empty() {
        out.push_str("null");
    } else {
        quoted_b64(&s.parent_span_id, out);
    }
    out.push_str(", \"name\": ");
    write_string(&s.name, Style::Unicode, out);
    let _ = write!(
        out,
        ", \"start_time_unix_nano\": {}, \"end_time_unix_nano\": ",
        s.start_time_unix_nano
    );
    if s.end_time_unix_nano == 0 {
        out.push_str("null");
    } else {
        let _ = write!(out, "{}", s.end_time_unix_nano);
    }
    out.push_str(", \"events\": [");
    write_dicts(s.events.iter().map(event_dict), out);
    out.push_str("], \"status\": {\"code\": \"");
    out.push_str(status_code_name(s));
    out.push_str("\", \"message\": ");
    write_string(
        s.status.as_ref().map_or("", |st| st.message.as_str()),
        Style::Unicode,
        out,
    );
    out.push_str("}, \"attributes\": {");
    // A key sent twice is written once, where it came first, with its last value (a dict's
    // order, and serde_json's ordered `Map`'s); the request id takes the client's place for it.
    // Past a few keys they are found through a map, so that a span of very many attributes costs
    // no more than a linear pass (the `Map` it replaces hashed every key).
    let mut entries: Vec<(&str, Option<&AnyValue>)> = Vec::with_capacity(s.attributes.len() + 1);
    let mut index: Option<std::collections::HashMap<&str, usize>> =
        (s.attributes.len() > 16).then(std::collections::HashMap::new);
    for kv in &s.attributes {
        let found = match &mut index {
            Some(index) => index.get(kv.key.as_str()).copied(),
            None => entries.iter().position(|(k, _)| *k == kv.key),
        };
        match found {
            Some(i) => entries[i].1 = kv.value.as_ref(),
            None => {
                if let Some(index) = &mut index {
                    index.insert(&kv.key, entries.len());
                }
                entries.push((&kv.key, kv.value.as_ref()));
            }
        }
    }
    let mut text = String::new();
    let mut request_id_written = false;
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_string(key, Style::Unicode, out);
        out.push_str(": ");
        text.clear();
        if key == REQUEST_ID_ATTRIBUTE {
            request_id_written = true;
            text.push_str(&request_id_text(&s.trace_id));
        } else {
            attribute_text(value, &mut text);
        }
        write_string(&text, Style::Unicode, out);
    }
    if !request_id_written {
        if !s.attributes.is_empty() {
            out.push_str(", ");
        }
        write_string(REQUEST_ID_ATTRIBUTE, Style::Unicode, out);
        out.push_str(": ");
        write_string(&request_id_text(&s.trace_id), Style::Unicode, out);
    }
    out.push_str("}, \"links\": [");
    write_dicts(s.links.iter().map(link_dict), out);
    out.push_str("]}");
}

/// The items of a list of dicts (a span's events or links), as `json.dumps` writes them.
fn write_dicts(dicts: impl Iterator<Item = Value>, out: &mut String) {
    for (i, d) in dicts.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        wasmflow_core::pyjson::write_value(&d, wasmflow_core::pyjson::Style::Unicode, out);
    }
}

/// A span attribute's value as MLflow's store keeps it in the span's dict: its JSON text
/// (`json.dumps`), appended to `out`. A string holding a JSON string, object or array is kept as
/// that text, as it came (MLflow's `sanitize_attributes` only undoes the dump its OTLP decoding
/// added): producers that cannot send maps send them JSON-encoded, compact JSON stays compact
/// and `\uXXXX` escapes stay (those of the inputs MLflow's translation builds with `json.dumps`
/// too), which `span.content` and `span.attributes.<key>` patterns see.
fn attribute_text(value: Option<&AnyValue>, out: &mut String) {
    use wasmflow_core::pyjson::{Style, write_string, write_value};
    let Some(v) = value else {
        return write_value(&Value::Null, Style::Unicode, out);
    };
    match &v.value {
        Some(any_value::Value::StringValue(s)) if holds_json_text(s) => out.push_str(s),
        Some(any_value::Value::StringValue(s)) => write_string(s, Style::Unicode, out),
        _ => write_value(&plain(v), Style::Unicode, out),
    }
}

/// The `mlflow.traceRequestId` attribute's text: the trace's MLflow id as a JSON string.
fn request_id_text(otel_trace_id: &[u8]) -> String {
    format!("\"{}\"", mlflow_trace_id(otel_trace_id))
}

/// The status code's name in MLflow's span dict.
fn status_code_name(s: &Span) -> &'static str {
    match s.status.as_ref().map(|st| st.code) {
        Some(1) => "STATUS_CODE_OK",
        Some(2) => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    }
}

/// Event and link attributes as plain values, in a dict's order.
fn plain_attributes(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(plain).unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn event_dict(e: &opentelemetry_proto::tonic::trace::v1::span::Event) -> Value {
    json!({
        "name": e.name,
        "time_unix_nano": e.time_unix_nano,
        "attributes": plain_attributes(&e.attributes),
    })
}

fn link_dict(l: &opentelemetry_proto::tonic::trace::v1::span::Link) -> Value {
    json!({
        "trace_id": mlflow_trace_id(&l.trace_id),
        "span_id": hex(&l.span_id),
        "attributes": plain_attributes(&l.attributes),
    })
}

/// MLflow's `SpanAttributeKey.REQUEST_ID`.
const REQUEST_ID_ATTRIBUTE: &str = "mlflow.traceRequestId";

/// An attribute's value (the last one of a key sent twice, as a dict keeps it).
fn attribute(span: &Span, key: &str) -> Option<Value> {
    let kv = span.attributes.iter().rev().find(|kv| kv.key == key)?;
    Some(kv.value.as_ref().map(plain).unwrap_or(Value::Null))
}

/// A received OTLP span as a stored one; a span without proper ids is refused.
pub fn new_span(span: &Span, resource_tags: &BTreeMap<String, String>) -> Result<NewSpan> {
    if span.trace_id.len() != 16 {
        return Err(Error::invalid(format!(
            "invalid OpenTelemetry span '{}': its trace id must be 16 bytes, not {}",
            span.name,
            span.trace_id.len()
        )));
    }
    if span.span_id.len() != 8 {
        return Err(Error::invalid(format!(
            "invalid OpenTelemetry span '{}': its span id must be 8 bytes, not {}",
            span.name,
            span.span_id.len()
        )));
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Err(Error::invalid(format!(
            "invalid OpenTelemetry span '{}': its parent span id must be 8 bytes",
            span.name
        )));
    }
    // The MLflow client sends its attributes decoded; a producer that sends them JSON-encoded
    // (`"\"LLM\""`) means the same.
    let text_of = |key: &str| -> Option<String> {
        match attribute(span, key)? {
            Value::String(s) => Some(match serde_json::from_str::<Value>(&s) {
                Ok(Value::String(inner)) => inner,
                _ => s,
            }),
            other => Some(other.to_string()),
        }
    };
    let status = match span.status.as_ref().map(|s| s.code) {
        Some(1) => "OK",
        Some(2) => "ERROR",
        _ => "UNSET",
    };
    // The type column keeps the type the span came with, as MLflow's `spans.type` does.
    let span_type = text_of("mlflow.spanType");
    // What MLflow's translation of other OpenTelemetry conventions adds is stored with the span.
    let translated = super::translate::translate(span);
    let span = translated.as_ref().unwrap_or(span);
    // Only a root's inputs and outputs are read (its trace's previews).
    let root = span.parent_span_id.is_empty();
    let json_of = |key: &str| -> Option<String> {
        if !root {
            return None;
        }
        match attribute(span, key)? {
            Value::String(s) if serde_json::from_str::<Value>(&s).is_ok() => Some(s),
            other => Some(wasmflow_core::pyjson::dumps(
                &other,
                wasmflow_core::pyjson::Style::Unicode,
            )),
        }
    };
    Ok(NewSpan {
        trace_id: mlflow_trace_id(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_span_id: (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)),
        name: span.name.clone(),
        span_type,
        status: status.into(),
        start_time_ns: span.start_time_unix_nano as i64,
        end_time_ns: (span.end_time_unix_nano != 0).then_some(span.end_time_unix_nano as i64),
        inputs: json_of("mlflow.spanInputs"),
        outputs: json_of("mlflow.spanOutputs"),
        content: content_text(span),
        body: span.encode_to_vec(),
        resource_tags: resource_tags.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::Status;

    fn otlp_span(trace: &str, span: &str, start: u64, attribute: any_value::Value) -> Span {
        let bytes = |h: &str| {
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                .collect()
        };
        Span {
            trace_id: bytes(trace),
            span_id: bytes(span),
            name: "root".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1000,
            status: Some(Status {
                code: 1,
                ..Status::default()
            }),
            attributes: vec![KeyValue {
                key: "tier".into(),
                value: Some(AnyValue {
                    value: Some(attribute),
                }),
                ..KeyValue::default()
            }],
            ..Span::default()
        }
    }

    /// The text `spans.content` holds is MLflow 3.17.2's, byte for byte: these are the rows its
    /// SQL store wrote for the same OTLP spans (a string and an integer attribute).
    #[test]
    fn span_content_is_mlflows_text() {
        let string = otlp_span(
            "9bf99b757686048b88aa947d21db14e8",
            "a2dcc7bf849c32b9",
            1796397851268538538,
            any_value::Value::StringValue("m3".into()),
        );
        assert_eq!(
            new_span(&string, &BTreeMap::new()).unwrap().content,
            r#"{"trace_id": "m/mbdXaGBIuIqpR9IdsU6A==", "span_id": "otzHv4ScMrk=", "parent_span_id": null, "name": "root", "start_time_unix_nano": 1796397851268538538, "end_time_unix_nano": 1796397851268539538, "events": [], "status": {"code": "STATUS_CODE_OK", "message": ""}, "attributes": {"tier": "\"m3\"", "mlflow.traceRequestId": "\"tr-9bf99b757686048b88aa947d21db14e8\""}, "links": []}"#
        );
        let int = otlp_span(
            "4cf35e9eeda8bee8a4e7ce9fb187539c",
            "2019cc2dbf8057cf",
            1796397851400079145,
            any_value::Value::IntValue(5),
        );
        assert_eq!(
            new_span(&int, &BTreeMap::new()).unwrap().content,
            r#"{"trace_id": "TPNenu2ovuik586fsYdTnA==", "span_id": "IBnMLb+AV88=", "parent_span_id": null, "name": "root", "start_time_unix_nano": 1796397851400079145, "end_time_unix_nano": 1796397851400080145, "events": [], "status": {"code": "STATUS_CODE_OK", "message": ""}, "attributes": {"tier": "5", "mlflow.traceRequestId": "\"tr-4cf35e9eeda8bee8a4e7ce9fb187539c\""}, "links": []}"#
        );
        // JSON text as it came (compact, escapes kept), as MLflow 3.17.2 stored it (seen).
        let json_text = otlp_span(
            "4cf35e9eeda8bee8a4e7ce9fb187539c",
            "2019cc2dbf8057cf",
            1796397851400079145,
            any_value::Value::StringValue(r#"{"a":1,"b":["caf\u00e9", "é"]}"#.into()),
        );
        let content = new_span(&json_text, &BTreeMap::new()).unwrap().content;
        assert!(
            content.contains(r#""tier": "{\"a\":1,\"b\":[\"caf\\u00e9\", \"é\"]}""#),
            "{content}"
        );
    }

    /// The text written straight from the span is the text of the span's dict (MLflow's
    /// `Span.to_dict()`, which `get-trace-artifact` answers), over values of every kind: strings
    /// needing escapes or holding JSON, numbers Python writes its own way, nested arrays and
    /// maps, keys sent twice, a client's own `mlflow.traceRequestId`, events and links.
    #[test]
    fn span_text_is_the_dicts_text() {
        use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
        use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
        let any = |v: any_value::Value| AnyValue { value: Some(v) };
        let kv = |k: &str, v: Option<AnyValue>| KeyValue {
            key: k.into(),
            value: v,
            ..KeyValue::default()
        };
        let text = |t: &str| Some(any(any_value::Value::StringValue(t.into())));
        let values: Vec<Option<AnyValue>> = vec![
            text("plain"),
            text(""),
            text("quote \" backslash \\ newline \n tab \t cr \r bell \u{7} del \u{7f}"),
            text("Zürich ∑ \u{1F600} c1 \u{85} nbsp \u{a0}"),
            text(r#"{"q": "hello", "n": [1, 2.5, -3e-7, 1e300, true, null], "é": {"x": {}}}"#),
            text(r#"  {"a":1,"a":2,"b":"\u00e9\ud83d\ude00"}"#),
            text(r#"["x", {"k": "v"}]"#),
            text(r#""already a JSON string""#),
            text(r#"{"unclosed": 1"#),
            text("[1, 2] trailing"),
            text("123"),
            text("true"),
            text("\n\t[]"),
            text("\"\\u0000\""),
            Some(any(any_value::Value::IntValue(-9_223_372_036_854_775_808))),
            Some(any(any_value::Value::IntValue(42))),
            Some(any(any_value::Value::BoolValue(true))),
            Some(any(any_value::Value::DoubleValue(1.5))),
            Some(any(any_value::Value::DoubleValue(1e-7))),
            Some(any(any_value::Value::DoubleValue(2e16))),
            Some(any(any_value::Value::DoubleValue(-0.0))),
            Some(any(any_value::Value::DoubleValue(f64::NAN))),
            Some(any(any_value::Value::DoubleValue(f64::NEG_INFINITY))),
            Some(any(any_value::Value::BytesValue(vec![0, 255, 7]))),
            Some(any(any_value::Value::ArrayValue(ArrayValue {
                values: vec![
                    any(any_value::Value::StringValue("a\"".into())),
                    any(any_value::Value::IntValue(1)),
                    AnyValue { value: None },
                ],
            }))),
            Some(any(any_value::Value::KvlistValue(KeyValueList {
                values: vec![
                    kv("k", text("v")),
                    kv("k", Some(any(any_value::Value::DoubleValue(0.1)))),
                    kv("none", None),
                ],
            }))),
            Some(AnyValue { value: None }),
            None,
        ];
        let mut spans = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let mut s = otlp_span(
                "9bf99b757686048b88aa947d21db14e8",
                "a2dcc7bf849c32b9",
                1796397851268538538,
                any_value::Value::IntValue(1),
            );
            s.attributes = vec![kv(&format!("attr-{i} \u{e9}\"\\"), v.clone())];
            spans.push(s);
        }
        // Everything at once, keys sent twice, the client's request id in the middle, no status,
        // no end, a parent, events and links.
        let mut all = otlp_span(
            "4cf35e9eeda8bee8a4e7ce9fb187539c",
            "2019cc2dbf8057cf",
            1,
            any_value::Value::StringValue("first".into()),
        );
        all.name = "name \"with\" \u{1F600}\n".into();
        all.parent_span_id = vec![1; 8];
        all.end_time_unix_nano = 0;
        all.status = None;
        for (i, v) in values.iter().enumerate() {
            all.attributes.push(kv(&format!("k{}", i % 7), v.clone()));
        }
        all.attributes
            .insert(3, kv(REQUEST_ID_ATTRIBUTE, text("tr-client")));
        all.attributes.push(kv("tier", text("last")));
        all.events = vec![
            Event {
                name: "exception".into(),
                time_unix_nano: 7,
                attributes: vec![kv("m", text("boom\n")), kv("n", values[21].clone())],
                ..Event::default()
            },
            Event::default(),
        ];
        all.links = vec![Link {
            trace_id: vec![2; 16],
            span_id: vec![3; 8],
            attributes: vec![kv("l", values[25].clone())],
            ..Link::default()
        }];
        spans.push(all);
        // Keys sent twice among a few (found by a scan, not the map).
        let mut few = spans[0].clone();
        few.attributes = vec![
            kv("a", text("1")),
            kv("b", text("2")),
            kv("a", text("3")),
            kv(REQUEST_ID_ATTRIBUTE, None),
            kv("b", values[4].clone()),
        ];
        spans.push(few);
        let mut error = spans[0].clone();
        error.status = Some(Status {
            code: 2,
            message: "it \"failed\" é".into(),
        });
        error.attributes.clear();
        spans.push(error);
        for s in &spans {
            assert_eq!(
                content_text(s),
                wasmflow_core::pyjson::dumps(
                    &span_dict_of(s),
                    wasmflow_core::pyjson::Style::Unicode
                ),
                "{s:?}"
            );
        }
    }

    #[test]
    fn timestamps_round_trip() {
        for ms in [0, 123, 1_700_000_000_123, 951_782_400_000] {
            let text = format_timestamp(ms);
            assert_eq!(parse_timestamp(&json!(text), "t").unwrap(), ms, "{text}");
        }
        assert_eq!(format_timestamp(123), "1970-01-01T00:00:00.123Z");
        assert_eq!(
            parse_timestamp(&json!("1970-01-01T01:00:00.5+01:00"), "t").unwrap(),
            500
        );
        assert!(parse_timestamp(&json!("yesterday"), "t").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(5), "0.005s");
        assert_eq!(format_duration(2000), "2s");
        assert_eq!(parse_duration(&json!("0.005s"), "d").unwrap(), 5);
        assert_eq!(parse_duration(&json!("12s"), "d").unwrap(), 12_000);
        assert!(parse_duration(&json!("12"), "d").is_err());
    }
}
