//! Migrations 0011 and 0012 on both backends (PostgreSQL when WASMFLOW_TEST_POSTGRES_URI names
//! a server): spans and assessments an older wasmflow stored, in the text it wrote then, come out
//! of the upgrade with the text a write stores now. Here, not in the store's tests, because the
//! span text is built by this crate's write path ([`wire::new_span`]).

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span};
use serde_json::{Value, json};
use wasmflow_store::testing::{at_version, drop_database, execute, fresh_database, query_texts};
use wasmflow_store::traces::NewSpan;

use super::wire;

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// Spans of one trace with attributes of each kind, an event and a parent, as received.
fn spans() -> Vec<Span> {
    let trace_id = vec![0x9b; 16];
    let root = Span {
        trace_id: trace_id.clone(),
        span_id: vec![1; 8],
        name: "root".into(),
        start_time_unix_nano: 1_796_397_851_268_538_538,
        end_time_unix_nano: 1_796_397_851_268_539_538,
        status: Some(Status {
            code: 1,
            ..Status::default()
        }),
        attributes: vec![
            attribute("tier", any_value::Value::StringValue("m3".into())),
            attribute("n", any_value::Value::IntValue(5)),
            attribute("city", any_value::Value::StringValue("Zürich".into())),
            attribute(
                "mlflow.spanInputs",
                any_value::Value::StringValue(r#"{"q": "hi"}"#.into()),
            ),
        ],
        ..Span::default()
    };
    let child = Span {
        trace_id,
        span_id: vec![2; 8],
        parent_span_id: vec![1; 8],
        name: "child".into(),
        start_time_unix_nano: 1_796_397_851_268_538_600,
        end_time_unix_nano: 1_796_397_851_268_539_000,
        status: Some(Status {
            code: 2,
            message: "boom".into(),
        }),
        attributes: vec![attribute("ok", any_value::Value::BoolValue(false))],
        events: vec![span::Event {
            name: "exception".into(),
            time_unix_nano: 1_796_397_851_268_538_700,
            attributes: vec![attribute(
                "exception.message",
                any_value::Value::StringValue("boom".into()),
            )],
            ..span::Event::default()
        }],
        ..Span::default()
    };
    vec![root, child]
}

/// The text wasmflow wrote in `content` before 2026-12-04: name, status message, each
/// attribute's plain value, events.
fn old_content(span: &Span) -> String {
    let plain = |kvs: &[KeyValue]| -> serde_json::Map<String, Value> {
        kvs.iter()
            .map(|kv| {
                let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => json!(s),
                    Some(any_value::Value::IntValue(n)) => json!(n),
                    Some(any_value::Value::BoolValue(b)) => json!(b),
                    _ => Value::Null,
                };
                (kv.key.clone(), v)
            })
            .collect()
    };
    let events: Vec<Value> = span
        .events
        .iter()
        .map(|e| json!({"name": e.name, "attributes": plain(&e.attributes)}))
        .collect();
    json!({
        "name": span.name,
        "status": span.status.as_ref().map(|s| s.message.clone()).unwrap_or_default(),
        "attributes": plain(&span.attributes),
        "events": events,
    })
    .to_string()
}

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rows as an older wasmflow (schema 10) left them: a trace, its spans in the older text, and a
/// feedback whose value text is compact JSON (`{"a":1,...}`), in SQL both backends take.
fn old_rows(uri: &str, spans: &[NewSpan], old: &[String]) -> String {
    let postgres = !uri.starts_with("sqlite:");
    let trace = &spans[0].trace_id;
    let mut sql = format!(
        "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage,
                                  creation_time, last_update_time)
             VALUES (7, 'old', '/a/7', 'active', 1, 1);
         INSERT INTO trace_info (trace_id, experiment_id, request_time, execution_duration, state)
             VALUES ('{trace}', 7, 1796397851268, 1, 'OK');\n"
    );
    for (s, content) in spans.iter().zip(old) {
        let body = if postgres {
            format!("'\\x{}'::bytea", hex(&s.body))
        } else {
            format!("X'{}'", hex(&s.body))
        };
        // PostgreSQL kept the older text's attributes as JSONB too.
        let (attributes_column, attributes) = if postgres {
            let attrs = serde_json::from_str::<Value>(content).unwrap()["attributes"].to_string();
            (", attributes", format!(", {}::jsonb", quoted(&attrs)))
        } else {
            ("", String::new())
        };
        sql.push_str(&format!(
            "INSERT INTO spans (trace_id, span_id, parent_span_id, name, span_type, status,
                                start_time_ns, end_time_ns, content, body{attributes_column})
                 VALUES ('{trace}', '{}', {}, {}, NULL, '{}', {}, {}, {}, {body}{attributes});\n",
            s.span_id,
            s.parent_span_id
                .as_deref()
                .map_or("NULL".to_string(), quoted),
            quoted(&s.name),
            s.status,
            s.start_time_ns,
            s.end_time_ns.unwrap_or_default(),
            quoted(content),
        ));
    }
    let feedback = json!({
        "assessment_id": "a-1", "trace_id": trace, "assessment_name": "quality",
        "feedback": {"value": {"a": 1, "b": "é", "c": [true, 2.5]}}, "valid": true,
    });
    let expectation = json!({
        "assessment_id": "a-2", "trace_id": trace, "assessment_name": "answer",
        "expectation": {"serialized_value": {
            "serialization_format": "JSON_FORMAT", "value": "{\"k\":[1,2]}"}},
        "valid": true,
    });
    sql.push_str(&format!(
        "INSERT INTO assessments (assessment_id, trace_id, name, kind, value, valid, created, body)
             VALUES ('a-1', '{trace}', 'quality', 'feedback', {}, 1, 1, {}),
                    ('a-2', '{trace}', 'answer', 'expectation', {}, 1, 1, {});",
        quoted(r#"{"a":1,"b":"é","c":[true,2.5]}"#),
        quoted(&feedback.to_string()),
        quoted(r#"{"k":[1,2]}"#),
        quoted(&expectation.to_string()),
    ));
    sql
}

#[test]
fn migration_11_rewrites_older_span_and_assessment_text_as_the_write_path_writes_it() {
    wasmflow_store::traces::set_span_text(wire::span_content);
    let dir = tempfile::tempdir().unwrap();
    let mut uris = vec![format!(
        "sqlite:///{}",
        dir.path().join("store.db").display()
    )];
    uris.extend(fresh_database());
    let received = spans();
    let new: Vec<NewSpan> = received
        .iter()
        .map(|s| wire::new_span(s, &BTreeMap::new()).unwrap())
        .collect();
    let old: Vec<String> = received.iter().map(old_content).collect();
    for uri in &uris {
        at_version(uri, 10);
        execute(uri, &old_rows(uri, &new, &old));
        assert_eq!(
            query_texts(uri, "SELECT content FROM spans ORDER BY span_id"),
            old.iter().cloned().map(Some).collect::<Vec<_>>(),
            "{uri}"
        );

        // Migration 11 rewrites the spans, a later one (assessment_columns) the assessments.
        let upgraded = wasmflow_store::upgrade(uri).unwrap();
        assert_eq!(upgraded.from, 10, "{uri}");

        // Each span's text is what a write of the same OTLP span stores now, byte for byte.
        let written: Vec<Option<String>> = new.iter().map(|s| Some(s.content.clone())).collect();
        assert_eq!(
            query_texts(uri, "SELECT content FROM spans ORDER BY span_id"),
            written,
            "{uri}"
        );
        assert!(
            written[0]
                .as_deref()
                .unwrap()
                .contains(r#""tier": "\"m3\"""#)
        );
        if !uri.starts_with("sqlite:") {
            // The JSONB beside it is the new text's attributes (each value its JSON text).
            let attributes: Vec<Value> =
                query_texts(uri, "SELECT attributes::text FROM spans ORDER BY span_id")
                    .into_iter()
                    .map(|a| serde_json::from_str(&a.unwrap()).unwrap())
                    .collect();
            let want: Vec<Value> = new
                .iter()
                .map(|s| serde_json::from_str::<Value>(&s.content).unwrap()["attributes"].clone())
                .collect();
            assert_eq!(attributes, want, "{uri}");
        }
        // Assessment values as MLflow's `json.dumps` writes them.
        assert_eq!(
            query_texts(uri, "SELECT value FROM assessments ORDER BY assessment_id"),
            [
                Some(r#"{"a": 1, "b": "\u00e9", "c": [true, 2.5]}"#.to_string()),
                Some(r#"{"k": [1, 2]}"#.to_string()),
            ],
            "{uri}"
        );
        // Nothing left to do, and the store opens on it.
        assert_eq!(
            wasmflow_store::upgrade(uri).unwrap().from,
            upgraded.to,
            "{uri}"
        );
        if !uri.starts_with("sqlite:") {
            drop_database(uri);
        }
    }
}
