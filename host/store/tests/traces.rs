//! Traces of the SQLite store, through its public trait.

use serde_json::json;
use wasmflow_core::ErrorCode;
use wasmflow_store::traces::{
    NewSpan, TraceDeletion, TraceInfo, TraceSearch, parse_trace_filter, parse_trace_order_by,
};
use wasmflow_store::{NewRun, SqliteStore, TraceStore, TrackingStore};

mod common;
use common::store;

fn span(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    name: &str,
    status: &str,
    start_ms: i64,
) -> NewSpan {
    NewSpan {
        trace_id: trace.into(),
        span_id: id.into(),
        parent_span_id: parent.map(str::to_string),
        name: name.into(),
        span_type: Some(if parent.is_none() { "CHAIN" } else { "LLM" }.into()),
        status: status.into(),
        start_time_ns: start_ms * 1_000_000,
        end_time_ns: Some((start_ms + 10) * 1_000_000),
        inputs: Some(r#"{"q": 1}"#.into()),
        outputs: Some("2".into()),
        content: json!({"name": name, "attributes": {
            "model": "tiny", "mlflow.spanInputs": {"q": 1}, "mlflow.spanOutputs": 2,
        }})
        .to_string(),
        body: vec![1, 2, 3],
        resource_tags: Default::default(),
    }
}

fn search(store: &SqliteStore, filter: &str) -> Vec<String> {
    store
        .search_traces(&TraceSearch {
            experiment_ids: vec!["0".into()],
            filter: parse_trace_filter(filter).unwrap(),
            order_by: vec![parse_trace_order_by("timestamp_ms ASC").unwrap()],
            max_results: 100,
            page_token: None,
        })
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.trace_id)
        .collect()
}

#[test]
fn spans_make_traces_that_start_trace_finalizes() {
    let (_dir, store) = store();
    // A child first: the trace exists, in progress.
    store
        .log_spans(
            "0",
            vec![span("tr-a", "02", Some("01"), "child", "OK", 1005)],
            "mlflow-artifacts:/0".into(),
        )
        .unwrap();
    let info = store.get_trace_info("tr-a").unwrap();
    assert_eq!(info.state, "IN_PROGRESS");
    assert_eq!(info.tags["mlflow.trace.spansLocation"], "TRACKING_STORE");
    assert_eq!(
        info.tags["mlflow.artifactLocation"],
        "mlflow-artifacts:/0/traces/tr-a/artifacts"
    );
    // The root ends it.
    store
        .log_spans(
            "0",
            vec![span("tr-a", "01", None, "root", "ERROR", 1000)],
            "mlflow-artifacts:/0".into(),
        )
        .unwrap();
    let info = store.get_trace_info("tr-a").unwrap();
    assert_eq!(
        (
            info.state.as_str(),
            info.request_time,
            info.execution_duration
        ),
        ("ERROR", 1000, Some(10))
    );
    assert_eq!(info.request_preview.as_deref(), Some(r#"{"q": 1}"#));
    // The client's record wins.
    let mut record = TraceInfo {
        trace_id: "tr-a".into(),
        experiment_id: "0".into(),
        request_time: 999,
        execution_duration: Some(12),
        state: "OK".into(),
        request_preview: Some("req".into()),
        ..TraceInfo::default()
    };
    record.tags.insert("mlflow.traceName".into(), "root".into());
    record
        .trace_metadata
        .insert("mlflow.sourceRun".into(), "r1".into());
    let saved = store.start_trace(record, "ignored".into()).unwrap();
    assert_eq!((saved.state.as_str(), saved.request_time), ("OK", 999));
    assert_eq!(saved.request_preview.as_deref(), Some("req"));
    assert_eq!(
        saved.tags["mlflow.artifactLocation"],
        "mlflow-artifacts:/0/traces/tr-a/artifacts"
    );
    assert_eq!(saved.trace_metadata["mlflow.trace.infoFinalized"], "true");
    // Later spans no longer change the record.
    store
        .log_spans(
            "0",
            vec![span("tr-a", "01", None, "root", "ERROR", 1000)],
            "x".into(),
        )
        .unwrap();
    assert_eq!(store.get_trace_info("tr-a").unwrap().state, "OK");
    assert_eq!(store.get_spans(&["tr-a".into()]).unwrap().len(), 2);
}

#[test]
fn search_filters_delete_and_assessments() {
    let (_dir, store) = store();
    for (i, (id, status)) in [("tr-1", "OK"), ("tr-2", "ERROR"), ("tr-3", "OK")]
        .iter()
        .enumerate()
    {
        let start = 1000 * (i as i64 + 1);
        store
            .log_spans(
                "0",
                vec![
                    span(id, "01", None, "root", status, start),
                    span(id, "02", Some("01"), &format!("step-{i}"), "OK", start + 1),
                ],
                "a".into(),
            )
            .unwrap();
    }
    store.set_trace_tag("tr-1", "kind", "alpha").unwrap();
    let run = store
        .create_run(NewRun {
            experiment_id: "0".into(),
            ..Default::default()
        })
        .unwrap()
        .info
        .run_id;
    store.link_traces_to_run(&["tr-3".into()], &run).unwrap();

    assert_eq!(search(&store, ""), ["tr-1", "tr-2", "tr-3"]);
    assert_eq!(search(&store, "status = 'ERROR'"), ["tr-2"]);
    assert_eq!(search(&store, "trace.status IN ('OK')"), ["tr-1", "tr-3"]);
    assert_eq!(search(&store, "timestamp_ms >= 2000"), ["tr-2", "tr-3"]);
    assert_eq!(
        search(&store, "execution_time_ms = 10"),
        ["tr-1", "tr-2", "tr-3"]
    );
    assert_eq!(search(&store, "tags.kind = 'alpha'"), ["tr-1"]);
    assert_eq!(
        search(&store, "tags.kind LIKE 'ALPHA'"),
        Vec::<String>::new()
    );
    assert_eq!(search(&store, "tags.kind ILIKE 'ALPHA'"), ["tr-1"]);
    assert_eq!(search(&store, "tags.kind IS NULL"), ["tr-2", "tr-3"]);
    assert_eq!(search(&store, &format!("run_id = '{run}'")), ["tr-3"]);
    assert_eq!(search(&store, "span.name = 'step-1'"), ["tr-2"]);
    assert_eq!(
        search(&store, "span.type = 'LLM' AND status = 'OK'"),
        ["tr-1", "tr-3"]
    );
    assert_eq!(
        search(&store, "span.attributes.model = 'tiny'"),
        ["tr-1", "tr-2", "tr-3"]
    );
    assert_eq!(
        search(&store, "span.content LIKE '%tiny%'"),
        ["tr-1", "tr-2", "tr-3"]
    );

    // Assessments, with an override.
    let fb = json!({"assessment_id": "a-1", "trace_id": "tr-1", "assessment_name": "good",
                    "feedback": {"value": 0.9}, "valid": true});
    store.create_assessment(fb).unwrap();
    let over = json!({"assessment_id": "a-2", "trace_id": "tr-1", "assessment_name": "good",
                      "feedback": {"value": 0.1}, "overrides": "a-1", "valid": true});
    store.create_assessment(over).unwrap();
    assert_eq!(store.get_assessment("tr-1", "a-1").unwrap()["valid"], false);
    assert_eq!(search(&store, "feedback.good < 0.5"), ["tr-1"]);
    assert_eq!(search(&store, "feedback.good > 0.5"), Vec::<String>::new());
    store.delete_assessment("tr-1", "a-2").unwrap();
    assert_eq!(store.get_assessment("tr-1", "a-1").unwrap()["valid"], true);
    assert_eq!(store.get_trace_info("tr-1").unwrap().assessments.len(), 1);

    // Deleting: by ids, then the oldest by age with a count, then by retention.
    let by_ids = TraceDeletion {
        experiment_id: "0".into(),
        trace_ids: vec!["tr-2".into(), "tr-nope".into()],
        ..Default::default()
    };
    assert_eq!(store.delete_traces(&by_ids).unwrap().len(), 1);
    let by_age = TraceDeletion {
        experiment_id: "0".into(),
        max_timestamp_millis: Some(i64::MAX),
        max_traces: Some(1),
        ..Default::default()
    };
    assert_eq!(store.delete_traces(&by_age).unwrap().len(), 1);
    assert_eq!(search(&store, ""), ["tr-3"]);
    assert_eq!(store.delete_traces_before(3000, 10).unwrap().len(), 0);
    let deleted = store.delete_traces_before(3001, 10).unwrap();
    assert_eq!(deleted[0].trace_id, "tr-3");
    assert_eq!(deleted[0].experiment_id, "0");
    let err = store.get_trace_info("tr-3").unwrap_err();
    assert_eq!(err.code, ErrorCode::ResourceDoesNotExist);
    assert!(store.get_spans(&["tr-3".into()]).unwrap().is_empty());
}
