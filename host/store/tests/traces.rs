//! Traces and evaluation datasets of each backend, through their public traits.

use std::sync::Arc;

use serde_json::json;
use wasmflow_core::ErrorCode;
use wasmflow_core::search::{parse_evaluation_dataset_filter, parse_evaluation_dataset_order_by};
use wasmflow_store::eval_datasets::{EvalDatasetSearch, NewRecord};
use wasmflow_store::traces::{
    AssessmentUpdate, NewSpan, TraceDeletion, TraceEnd, TraceInfo, TraceSearch, parse_trace_filter,
    parse_trace_order_by,
};
use wasmflow_store::{EvalDatasetStore, TraceStore, TrackingStore};

mod common;

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
        // As MLflow's `json.dumps(span.to_dict())`: each attribute's value is its JSON text.
        content: wasmflow_core::pyjson::dumps(
            &json!({"name": name, "attributes": {
                "model": "\"tiny\"", "temperature": "0.5",
                "mlflow.spanInputs": "{\"q\": 1}", "mlflow.spanOutputs": "2",
            }}),
            wasmflow_core::pyjson::Style::Unicode,
        ),
        body: vec![1, 2, 3],
        resource_tags: Default::default(),
    }
}

fn search_ordered(store: &impl TraceStore, filter: &str, order_by: &str) -> Vec<String> {
    store
        .search_traces(&TraceSearch {
            experiment_ids: vec!["0".into()],
            filter: parse_trace_filter(filter).unwrap(),
            order_by: vec![parse_trace_order_by(order_by).unwrap()],
            max_results: 100,
            page_token: None,
        })
        .unwrap_or_else(|e| panic!("{filter}: {}", e.message))
        .items
        .into_iter()
        .map(|t| t.trace_id)
        .collect()
}

fn search(store: &impl TraceStore, filter: &str) -> Vec<String> {
    search_ordered(store, filter, "timestamp_ms ASC")
}

/// The ids of every page of `search`, in order, following the page tokens.
fn all_pages(store: &impl TraceStore, mut search: TraceSearch) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let page = store.search_traces(&search).unwrap();
        ids.extend(page.items.into_iter().map(|t| t.trace_id));
        search.page_token = page.next_page_token;
        if search.page_token.is_none() {
            return ids;
        }
    }
}

#[test]
fn v2_traces_prompt_links_and_what_spans_derive() {
    each_backend!(|store| {
        // A v2 trace starts open: its spans and `EndTrace` still change it.
        let mut record = TraceInfo {
            trace_id: "tr-v2".into(),
            experiment_id: "0".into(),
            request_time: 1000,
            state: "IN_PROGRESS".into(),
            ..TraceInfo::default()
        };
        record
            .tags
            .insert("mlflow.artifactLocation".into(), "s3://elsewhere".into());
        let started = store
            .start_trace_v2(record, "mlflow-artifacts:/0/traces/tr-v2/artifacts".into())
            .unwrap();
        assert_eq!(
            started.tags["mlflow.artifactLocation"],
            "mlflow-artifacts:/0/traces/tr-v2/artifacts"
        );
        assert!(
            !started
                .trace_metadata
                .contains_key("mlflow.trace.infoFinalized")
        );
        let mut root = span("tr-v2", "01", None, "root", "OK", 1000);
        root.content = json!({"name": "root", "attributes": {
            "mlflow.spanInputs": {"messages": [{"role": "user", "content": "hi"}]},
            "mlflow.traceTag.team": "search",
            "session.id": "s-1",
            "mlflow.chat.tokenUsage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        }})
        .to_string();
        root.inputs = Some(r#"{"messages": [{"role": "user", "content": "hi"}]}"#.into());
        root.resource_tags
            .insert("service.name".into(), "bot".into());
        root.resource_tags.insert("team".into(), "resource".into());
        store.log_spans("0", vec![root], "x".into()).unwrap();
        let info = store.get_trace_info("tr-v2").unwrap();
        assert_eq!(info.request_preview.as_deref(), Some("hi"));
        assert_eq!(info.tags["team"], "search");
        assert_eq!(info.tags["service.name"], "bot");
        assert_eq!(info.trace_metadata["mlflow.trace.session"], "s-1");
        assert_eq!(
            info.trace_metadata["mlflow.trace.tokenUsage"],
            r#"{"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}"#
        );
        let mut end = TraceEnd {
            timestamp_ms: 1250,
            state: "ERROR".into(),
            ..TraceEnd::default()
        };
        end.trace_metadata.insert("k".into(), "v".into());
        end.tags
            .insert("mlflow.artifactLocation".into(), "s3://elsewhere".into());
        let ended = store.end_trace("tr-v2", end.clone()).unwrap();
        assert_eq!(
            (ended.state.as_str(), ended.execution_duration),
            ("ERROR", Some(250))
        );
        assert_eq!(ended.trace_metadata["k"], "v");
        assert_eq!(
            ended.tags["mlflow.artifactLocation"],
            "mlflow-artifacts:/0/traces/tr-v2/artifacts"
        );
        let missing = store.end_trace("tr-nope", end).unwrap_err();
        assert_eq!(missing.code, ErrorCode::ResourceDoesNotExist);

        // Prompt links, kept once, found by `prompt = 'name/version'`.
        let prompts = vec!["qa/1".to_string(), "qa/2".to_string(), "qa/1".to_string()];
        store.link_prompts_to_trace("tr-v2", &prompts).unwrap();
        store.link_prompts_to_trace("tr-v2", &prompts[..1]).unwrap();
        assert_eq!(search(&store, "prompt = 'qa/2'"), ["tr-v2"]);
        assert!(search(&store, "prompt = 'qa/3'").is_empty());
        let missing = store
            .link_prompts_to_trace("tr-nope", &prompts)
            .unwrap_err();
        assert_eq!(missing.code, ErrorCode::ResourceDoesNotExist);
        // Deleting the trace removes its links and says which trace went.
        let deleted = store
            .delete_traces(&TraceDeletion {
                experiment_id: "0".into(),
                trace_ids: vec!["tr-v2".into()],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(deleted[0].trace_id, "tr-v2");
        assert!(search(&store, "prompt = 'qa/2'").is_empty());
    });
}

#[test]
fn spans_make_traces_that_start_trace_finalizes() {
    each_backend!(|store| {
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
        // A record first, then its spans: the record stays, the spans are kept.
        let first = TraceInfo {
            trace_id: "tr-b".into(),
            experiment_id: "0".into(),
            request_time: 50,
            state: "OK".into(),
            ..TraceInfo::default()
        };
        let saved = store
            .start_trace(first, "mlflow-artifacts:/0/x".into())
            .unwrap();
        assert_eq!(
            saved.tags["mlflow.artifactLocation"],
            "mlflow-artifacts:/0/x"
        );
        store
            .log_spans(
                "0",
                vec![span("tr-b", "01", None, "root", "ERROR", 40)],
                "y".into(),
            )
            .unwrap();
        let info = store.get_trace_info("tr-b").unwrap();
        assert_eq!((info.state.as_str(), info.request_time), ("OK", 50));
        // Spans of a trace of another experiment are refused.
        let err = store
            .log_spans(
                "12345",
                vec![span("tr-b", "09", None, "x", "OK", 1)],
                "z".into(),
            )
            .unwrap_err();
        assert!(
            err.message.contains("belongs to experiment"),
            "{}",
            err.message
        );
        // Infos come in the order asked, unknown ids left out; spans likewise, each trace's in
        // start order.
        let infos = store
            .get_trace_infos(&["tr-b".into(), "nope".into(), "tr-a".into()])
            .unwrap();
        let ids: Vec<&str> = infos.iter().map(|i| i.trace_id.as_str()).collect();
        assert_eq!(ids, ["tr-b", "tr-a"]);
        let spans = store.get_spans(&["tr-b".into(), "tr-a".into()]).unwrap();
        let traces: Vec<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
        assert_eq!(traces, ["tr-b", "tr-a", "tr-a"]);
    });
}

#[test]
fn search_filters_delete_and_assessments() {
    each_backend!(|store| {
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
        store.set_trace_tag("tr-2", "kind", "beta_1").unwrap();
        store.link_traces_to_run(&["tr-3".into()], "run-7").unwrap();
        let err = store
            .link_traces_to_run(&["tr-1".into(), "tr-nope".into()], "run-7")
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ResourceDoesNotExist);
        assert!(err.message.contains("tr-nope"), "{}", err.message);

        assert_eq!(search(&store, ""), ["tr-1", "tr-2", "tr-3"]);
        assert_eq!(search(&store, "status = 'ERROR'"), ["tr-2"]);
        assert_eq!(search(&store, "trace.status IN ('OK')"), ["tr-1", "tr-3"]);
        assert_eq!(search(&store, "trace.status NOT IN ('OK')"), ["tr-2"]);
        assert_eq!(search(&store, "timestamp_ms >= 2000"), ["tr-2", "tr-3"]);
        assert_eq!(search(&store, "timestamp_ms < 2000"), ["tr-1"]);
        assert_eq!(
            search(&store, "execution_time_ms = 10"),
            ["tr-1", "tr-2", "tr-3"]
        );
        assert_eq!(search(&store, "end_time_ms > 2010"), ["tr-3"]);
        assert_eq!(search(&store, "tags.kind = 'alpha'"), ["tr-1"]);
        assert_eq!(search(&store, "tags.kind != 'alpha'"), ["tr-2"]);
        assert_eq!(
            search(&store, "tags.kind LIKE 'ALPHA'"),
            Vec::<String>::new()
        );
        assert_eq!(search(&store, "tags.kind ILIKE 'ALPHA'"), ["tr-1"]);
        assert_eq!(search(&store, "tags.kind LIKE '%\\'"), Vec::<String>::new());
        // RLIKE: a case-sensitive regular expression found anywhere in the text; one that
        // does not compile matches nothing on SQLite (MLflow's `re.search` function there).
        assert_eq!(search(&store, "tags.kind RLIKE '^b.*[0-9]$'"), ["tr-2"]);
        assert_eq!(search(&store, "tags.kind RLIKE 'ph'"), ["tr-1"]);
        assert_eq!(search(&store, "tags.kind RLIKE 'PH'"), Vec::<String>::new());
        assert_eq!(search(&store, "status RLIKE '^E'"), ["tr-2"]);
        assert_eq!(search(&store, "span.name RLIKE '-[12]$'"), ["tr-2", "tr-3"]);
        // A link to a run counts for `run_id =` only, as in MLflow; other comparators read the
        // `mlflow.sourceRun` metadata, which no trace here has.
        assert_eq!(
            search(&store, "run_id RLIKE 'run-[0-9]'"),
            Vec::<String>::new()
        );
        assert_eq!(search(&store, "run_id != 'run-7'"), Vec::<String>::new());
        assert_eq!(search(&store, "tags.kind IS NULL"), ["tr-3"]);
        assert_eq!(search(&store, "tags.kind IS NOT NULL"), ["tr-1", "tr-2"]);
        assert_eq!(search(&store, "run_id = 'run-7'"), ["tr-3"]);
        assert_eq!(search(&store, "span.name = 'step-1'"), ["tr-2"]);
        assert_eq!(
            search(&store, "span.name LIKE 'step-%'"),
            ["tr-1", "tr-2", "tr-3"]
        );
        assert_eq!(
            search(&store, "span.type = 'LLM' AND status = 'OK'"),
            ["tr-1", "tr-3"]
        );
        assert_eq!(search(&store, "span.status = 'ERROR'"), ["tr-2"]);
        // As MLflow's SQL store: LIKE patterns over the span's text after `"<key>"`, and `=` /
        // `!=` comparing that text with the pattern itself (never equal, always unequal).
        let all = ["tr-1", "tr-2", "tr-3"];
        let none = Vec::<String>::new();
        assert_eq!(search(&store, "span.attributes.model = 'tiny'"), none);
        assert_eq!(search(&store, "span.attributes.model != 'tiny'"), all);
        assert_eq!(search(&store, "span.attributes.nope != 'x'"), all);
        assert_eq!(search(&store, "span.attributes.model LIKE '%tiny%'"), all);
        assert_eq!(search(&store, "span.attributes.model LIKE '%TINY%'"), none);
        assert_eq!(search(&store, "span.attributes.model ILIKE '%TINY%'"), all);
        assert_eq!(search(&store, "span.attributes.model LIKE '%huge%'"), none);
        assert_eq!(search(&store, "span.attributes.model LIKE 'tiny'"), none);
        assert_eq!(
            search(&store, "span.attributes.temperature LIKE '%0.5%'"),
            all
        );
        // The name comes before the attributes in the span's text.
        assert_eq!(
            search(&store, "span.attributes.model LIKE '%step-1%'"),
            none
        );
        assert_eq!(search(&store, "span.content LIKE '%step-1%'"), ["tr-2"]);
        // MLflow's RLIKE on an attribute: `"<key>": "\\"` then the expression, `^` and `$`
        // anchoring it to the attribute's JSON string.
        assert_eq!(search(&store, "span.attributes.model RLIKE 'in'"), all);
        assert_eq!(search(&store, "span.attributes.model RLIKE '^tiny$'"), all);
        assert_eq!(search(&store, "span.attributes.model RLIKE '^iny'"), none);
        assert_eq!(search(&store, "span.attributes.model RLIKE 'tin$'"), none);
        assert_eq!(search(&store, "trace.text LIKE '%step-1%'"), ["tr-2"]);
        assert_eq!(
            search(&store, "span.content LIKE '%tiny%'"),
            ["tr-1", "tr-2", "tr-3"]
        );
        // User text is a bound value, never SQL.
        assert_eq!(
            search(&store, "tags.kind = \"x' OR '1'='1\""),
            Vec::<String>::new()
        );
        // Orders, NULLs as SQLite places them, and pages.
        assert_eq!(
            search_ordered(&store, "", "timestamp_ms DESC"),
            ["tr-3", "tr-2", "tr-1"]
        );
        store
            .log_spans(
                "0",
                vec![span("tr-0", "02", Some("01"), "child", "OK", 500)],
                "a".into(),
            )
            .unwrap();
        assert_eq!(
            search_ordered(&store, "", "execution_time ASC"),
            ["tr-0", "tr-3", "tr-2", "tr-1"]
        );
        assert_eq!(
            search_ordered(&store, "", "execution_time DESC"),
            ["tr-3", "tr-2", "tr-1", "tr-0"]
        );
        let paged = all_pages(
            &store,
            TraceSearch {
                experiment_ids: vec!["0".into(), "not-a-number".into()],
                filter: vec![],
                order_by: vec![],
                max_results: 3,
                page_token: None,
            },
        );
        assert_eq!(paged, ["tr-3", "tr-2", "tr-1", "tr-0"]);
        store
            .delete_traces(&TraceDeletion {
                experiment_id: "0".into(),
                trace_ids: vec!["tr-0".into()],
                ..Default::default()
            })
            .unwrap();

        // Assessments, with an override chain: a-3 overrides a-2, which overrides a-1.
        let fb = json!({"assessment_id": "a-1", "trace_id": "tr-1", "assessment_name": "good",
                        "feedback": {"value": 0.9}, "valid": true});
        store.create_assessment(fb).unwrap();
        let over = json!({"assessment_id": "a-2", "trace_id": "tr-1", "assessment_name": "good",
                          "feedback": {"value": 0.1}, "overrides": "a-1", "valid": true});
        store.create_assessment(over).unwrap();
        assert_eq!(store.get_assessment("tr-1", "a-1").unwrap()["valid"], false);
        assert_eq!(search(&store, "feedback.good < 0.5"), ["tr-1"]);
        assert_eq!(search(&store, "feedback.good > 0.5"), Vec::<String>::new());
        assert_eq!(search(&store, "feedback.good = 0.1"), ["tr-1"]);
        assert_eq!(search(&store, "feedback.good IS NULL"), ["tr-2", "tr-3"]);
        let missing = json!({"assessment_id": "a-9", "trace_id": "tr-1",
                             "assessment_name": "good", "feedback": {"value": 1},
                             "overrides": "a-nope"});
        assert_eq!(
            store.create_assessment(missing).unwrap_err().code,
            ErrorCode::ResourceDoesNotExist
        );
        let exp = json!({"assessment_id": "a-3", "trace_id": "tr-2", "assessment_name": "answer",
                         "expectation": {"value": "paris"}, "valid": true});
        store.create_assessment(exp).unwrap();
        assert_eq!(search(&store, "expectation.answer = 'paris'"), ["tr-2"]);
        assert_eq!(search(&store, "expectation.answer LIKE '%par%'"), ["tr-2"]);
        // An assessment id of another trace is not replaced through this one.
        let stolen = json!({"assessment_id": "a-3", "trace_id": "tr-1",
                            "assessment_name": "answer", "expectation": {"value": "rome"}});
        assert!(store.create_assessment(stolen).is_err());
        // Updates replace fields and merge metadata.
        let mut update = AssessmentUpdate::default();
        update
            .fields
            .insert("feedback".into(), json!({"value": 0.7}));
        update.metadata = Some([("why".to_string(), "rechecked".to_string())].into());
        let updated = store.update_assessment("tr-2", "a-3", update).unwrap();
        assert_eq!(updated["feedback"]["value"], 0.7);
        assert!(updated.get("expectation").is_none());
        assert_eq!(updated["metadata"]["why"], "rechecked");
        assert_eq!(search(&store, "feedback.answer >= 0.7"), ["tr-2"]);
        assert_eq!(
            store
                .update_assessment("tr-2", "a-nope", AssessmentUpdate::default())
                .unwrap_err()
                .code,
            ErrorCode::ResourceDoesNotExist
        );
        store.delete_assessment("tr-1", "a-2").unwrap();
        assert_eq!(store.get_assessment("tr-1", "a-1").unwrap()["valid"], true);
        assert_eq!(store.get_trace_info("tr-1").unwrap().assessments.len(), 1);
        // A missing assessment deletes as a success, a missing trace does not.
        store.delete_assessment("tr-1", "a-2").unwrap();
        assert_eq!(
            store.delete_assessment("tr-nope", "a-1").unwrap_err().code,
            ErrorCode::ResourceDoesNotExist
        );

        // Tags.
        store.delete_trace_tag("tr-2", "kind").unwrap();
        assert_eq!(
            store.delete_trace_tag("tr-2", "kind").unwrap_err().code,
            ErrorCode::ResourceDoesNotExist
        );
        assert_eq!(
            store.set_trace_tag("tr-nope", "k", "v").unwrap_err().code,
            ErrorCode::ResourceDoesNotExist
        );

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
    });
}

/// Session-level assessments (their metadata names a session) and feedback without a value,
/// as MLflow 3.17's SQL store answers `feedback.<name>` / `expectation.<name>` filters over them
/// (compared with a real `mlflow server` in tests/e2e/test_traces_sessions.py): a valid
/// session-level assessment matching the filter matches every trace of the holding trace's
/// session, and a feedback without a value is the JSON text `null`.
#[test]
fn session_level_assessments_and_null_feedback() {
    each_backend!(|store| {
        let traces = [
            ("s1-a", Some("S1")),
            ("s1-b", Some("S1")),
            ("s2-a", Some("S2")),
            ("s2-b", Some("S2")),
            ("none", None),
        ];
        for (i, (id, session)) in traces.iter().enumerate() {
            let mut record = TraceInfo {
                trace_id: id.to_string(),
                experiment_id: "0".into(),
                request_time: 1000 * (i as i64 + 1),
                execution_duration: Some(1),
                state: "OK".into(),
                ..TraceInfo::default()
            };
            if let Some(s) = session {
                record
                    .trace_metadata
                    .insert("mlflow.trace.session".into(), s.to_string());
            }
            store.start_trace(record, "a".into()).unwrap();
        }
        let create = |id: &str, trace: &str, name: &str, body: serde_json::Value| {
            let mut a = json!({"assessment_id": id, "trace_id": trace, "assessment_name": name,
                               "valid": true});
            a.as_object_mut()
                .unwrap()
                .extend(body.as_object().unwrap().clone());
            store.create_assessment(a).unwrap()
        };
        // The session named in the metadata is not the one covered: the holding trace's is.
        create(
            "a-1",
            "s1-a",
            "coherent",
            json!({"feedback": {"value": "good"}, "metadata": {"mlflow.trace.session": "S9"}}),
        );
        create(
            "a-2",
            "s2-a",
            "coherent",
            json!({"feedback": {"value": "bad"}}),
        );
        for (filter, want) in [
            ("feedback.coherent = 'good'", vec!["s1-a", "s1-b"]),
            ("feedback.coherent LIKE '%o%'", vec!["s1-a", "s1-b"]),
            ("feedback.coherent != 'good'", vec!["s2-a"]),
            (
                "feedback.coherent IS NOT NULL",
                vec!["s1-a", "s1-b", "s2-a"],
            ),
            ("feedback.coherent IS NULL", vec!["s2-b", "none"]),
        ] {
            assert_eq!(search(&store, filter), want, "{filter}");
        }
        // A trace-level assessment becomes the session's when an update names a session.
        let update = AssessmentUpdate {
            metadata: Some([("mlflow.trace.session".to_string(), "S2".to_string())].into()),
            ..Default::default()
        };
        store.update_assessment("s2-a", "a-2", update).unwrap();
        assert_eq!(
            search(&store, "feedback.coherent = 'bad'"),
            ["s2-a", "s2-b"]
        );
        // Overridden, it covers nothing; its replacement names no session.
        create(
            "a-3",
            "s1-a",
            "coherent",
            json!({"feedback": {"value": "fine"}, "overrides": "a-1"}),
        );
        assert_eq!(
            search(&store, "feedback.coherent = 'good'"),
            Vec::<String>::new()
        );
        assert_eq!(search(&store, "feedback.coherent = 'fine'"), ["s1-a"]);
        // Expectations too.
        create(
            "a-4",
            "s1-b",
            "goal",
            json!({"expectation": {"value": 3}, "metadata": {"mlflow.trace.session": "S1"}}),
        );
        assert_eq!(search(&store, "expectation.goal > 2"), ["s1-a", "s1-b"]);

        // Feedback without a value (a scorer's error) is kept as the text `null`.
        create(
            "a-5",
            "none",
            "judged",
            json!({"feedback": {"error": {"error_code": "E", "error_message": "m"}}}),
        );
        create(
            "a-6",
            "s2-b",
            "judged",
            json!({"feedback": {"value": null}}),
        );
        for (filter, want) in [
            ("feedback.judged = 'null'", vec!["s2-b", "none"]),
            ("feedback.judged != 'x'", vec!["s2-b", "none"]),
            ("feedback.judged LIKE 'nu%'", vec!["s2-b", "none"]),
            ("feedback.judged IS NOT NULL", vec!["s2-b", "none"]),
            ("feedback.judged > 0", vec![]),
            ("feedback.judged = 'None'", vec![]),
        ] {
            assert_eq!(search(&store, filter), want, "{filter}");
        }
        // Read back as written: no value.
        let read = store.get_assessment("none", "a-5").unwrap();
        assert!(read["feedback"].get("value").is_none());
        // The count (correlation's) agrees with the search.
        let filter = parse_trace_filter("feedback.coherent IS NOT NULL").unwrap();
        assert_eq!(store.count_traces(&["0".into()], &filter).unwrap(), 3);
    });
}

/// `IS NULL` over a name every searched trace holds answers nothing (from counts asked before
/// the search, `held_by_all_queries`); the counts are of traces, not assessments, of valid ones
/// of that kind, in the searched experiments only, and follow every change of an assessment.
#[test]
fn is_null_when_every_trace_holds_the_assessment() {
    each_backend!(|store| {
        let other = store.create_experiment("other", None, &[]).unwrap();
        let (zero, b) = ("0", other.as_str());
        for (i, (id, experiment)) in [("a1", zero), ("a2", zero), ("a3", zero), ("b1", b)]
            .iter()
            .enumerate()
        {
            let record = TraceInfo {
                trace_id: id.to_string(),
                experiment_id: experiment.to_string(),
                request_time: 1000 * (i as i64 + 1),
                execution_duration: Some(1),
                state: "OK".into(),
                ..TraceInfo::default()
            };
            store.start_trace(record, "a".into()).unwrap();
        }
        let create = |id: &str, trace: &str, body: serde_json::Value| {
            let mut a = json!({"assessment_id": id, "trace_id": trace,
                               "assessment_name": "quality", "valid": true});
            a.as_object_mut()
                .unwrap()
                .extend(body.as_object().unwrap().clone());
            store.create_assessment(a).unwrap()
        };
        let search_in = |experiments: &[&str], filter: &str| -> (Vec<String>, u64) {
            let filter = parse_trace_filter(filter).unwrap();
            let experiment_ids: Vec<String> = experiments.iter().map(|e| e.to_string()).collect();
            let found = all_pages(
                &store,
                TraceSearch {
                    experiment_ids: experiment_ids.clone(),
                    filter: filter.clone(),
                    order_by: vec![parse_trace_order_by("timestamp_ms ASC").unwrap()],
                    max_results: 1,
                    page_token: None,
                },
            );
            (found, store.count_traces(&experiment_ids, &filter).unwrap())
        };
        let null = "feedback.quality IS NULL";
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(search_in(&["0"], null), (ids(&["a1", "a2", "a3"]), 3));

        // Two valid feedbacks on a1 and one on a2: as many as the traces, but a3 holds none.
        create("f-1", "a1", json!({"feedback": {"value": "yes"}}));
        create("f-2", "a1", json!({"feedback": {"value": "no"}}));
        create("f-3", "a2", json!({"feedback": {"value": "yes"}}));
        assert_eq!(search_in(&["0"], null), (ids(&["a3"]), 1));
        // An expectation of the name is not a feedback.
        create("e-1", "a3", json!({"expectation": {"value": "yes"}}));
        assert_eq!(search_in(&["0"], null), (ids(&["a3"]), 1));
        assert_eq!(
            search_in(&["0"], "expectation.quality IS NULL"),
            (ids(&["a1", "a2"]), 2)
        );
        // Now every trace of experiment 0 holds one: nothing, with or without other clauses.
        create("f-4", "a3", json!({"feedback": {"value": "no"}}));
        assert_eq!(search_in(&["0"], null), (vec![], 0));
        assert_eq!(
            search_in(&["0"], &format!("{null} AND feedback.quality = 'yes'")),
            (vec![], 0)
        );
        // Experiment 1's trace holds none: searched together, it alone is found.
        assert_eq!(search_in(&["0", b], null), (ids(&["b1"]), 1));
        assert_eq!(search_in(&[b], null), (ids(&["b1"]), 1));
        // A trace in another experiment holding one does not stand for b1.
        create("f-5", "b1", json!({"feedback": {"value": "yes"}}));
        assert_eq!(search_in(&["0", b], null), (vec![], 0));
        // Overridden, a feedback is no longer valid; its replacement is.
        create(
            "f-6",
            "b1",
            json!({"feedback": {"value": "no"}, "overrides": "f-5"}),
        );
        assert_eq!(search_in(&["0", b], null), (vec![], 0));
        // Deleted, it leaves its trace without one (the overridden one becomes valid again, as
        // in MLflow, so delete that too).
        store.delete_assessment("b1", "f-6").unwrap();
        store.delete_assessment("b1", "f-5").unwrap();
        assert_eq!(search_in(&["0", b], null), (ids(&["b1"]), 1));
        // Renamed by an update, a3's feedback no longer counts for `quality`.
        let update = AssessmentUpdate {
            fields: [("assessment_name".to_string(), json!("other"))]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        store.update_assessment("a3", "f-4", update).unwrap();
        assert_eq!(search_in(&["0"], null), (ids(&["a3"]), 1));
        // A deleted trace takes its assessments with it.
        store
            .delete_traces(&TraceDeletion {
                experiment_id: "0".into(),
                trace_ids: vec!["a3".into()],
                max_timestamp_millis: None,
                max_traces: None,
            })
            .unwrap();
        assert_eq!(search_in(&["0"], null), (vec![], 0));
    });
}

/// A search over names with session-level assessments (split on PostgreSQL into one search for
/// each side of each such clause: a trace holding a matching assessment, or a trace of a covered
/// session, whose pages are merged): every page size, order and pair of clauses gives the traces
/// of one whole search, in its order, each once, and the count agrees.
#[test]
fn session_scoped_searches_page_as_one() {
    each_backend!(|store| {
        // Traces 0-11 in sessions of 3 (S0..S3), request times out of id order, and 12-13 in none.
        for i in 0..14 {
            let mut record = TraceInfo {
                trace_id: format!("tr-{i:02}"),
                experiment_id: "0".into(),
                request_time: 1000 + (i * 7 % 5) * 100 + i,
                execution_duration: Some(1),
                state: "OK".into(),
                ..TraceInfo::default()
            };
            if i < 12 {
                record
                    .trace_metadata
                    .insert("mlflow.trace.session".into(), format!("S{}", i / 3));
            }
            store.start_trace(record, "a".into()).unwrap();
        }
        let mut n = 0;
        let mut create = |trace: usize, name: &str, value: &str, session: bool| {
            n += 1;
            let mut a = json!({"assessment_id": format!("a-{n}"), "trace_id": format!("tr-{trace:02}"),
                               "assessment_name": name, "feedback": {"value": value}, "valid": true});
            if session {
                a["metadata"] = json!({"mlflow.trace.session": "any"});
            }
            store.create_assessment(a).unwrap();
        };
        // `quality`: good on S0 (session-level, on tr-01) and directly on tr-05, tr-10, tr-13;
        // `safety`: pass on S1 and S3 (session-level) and directly on tr-00 and tr-12.
        create(1, "quality", "good", true);
        for t in [5, 10, 13] {
            create(t, "quality", "good", false);
        }
        create(4, "quality", "bad", true);
        create(3, "safety", "pass", true);
        create(9, "safety", "pass", true);
        for t in [0, 12] {
            create(t, "safety", "pass", false);
        }
        let quality = ["tr-00", "tr-01", "tr-02", "tr-05", "tr-10", "tr-13"];
        let both = ["tr-00", "tr-05", "tr-10"];
        for (filter, want) in [
            ("feedback.quality = 'good'", &quality[..]),
            (
                "feedback.quality = 'good' AND feedback.safety = 'pass'",
                &both[..],
            ),
        ] {
            let parsed = parse_trace_filter(filter).unwrap();
            assert_eq!(
                store.count_traces(&["0".into()], &parsed).unwrap(),
                want.len() as u64,
                "{filter}"
            );
            for order in ["timestamp_ms DESC", "timestamp_ms ASC", "request_id DESC"] {
                let whole = search_ordered(&store, filter, order);
                let mut sorted = whole.clone();
                sorted.sort();
                assert_eq!(sorted, want, "{filter} {order}");
                for size in [1, 2, 4] {
                    let paged = all_pages(
                        &store,
                        TraceSearch {
                            experiment_ids: vec!["0".into()],
                            filter: parsed.clone(),
                            order_by: vec![parse_trace_order_by(order).unwrap()],
                            max_results: size,
                            page_token: None,
                        },
                    );
                    assert_eq!(paged, whole, "{filter} {order} pages of {size}");
                }
            }
        }
    });
}

/// `\\` in LIKE patterns of trace filters, per backend as MLflow's SQL store has it: SQLite's
/// `LIKE` without `ESCAPE` takes it as itself, PostgreSQL's as the escape of the next character.
#[test]
fn backslashes_in_like_patterns_as_mlflow_per_backend() {
    fn check(store: &impl TraceStore, sqlite: bool) {
        for (id, kind) in [("tr-1", "C:\\dir"), ("tr-2", "beta_1"), ("tr-3", "a%b")] {
            store
                .log_spans(
                    "0",
                    vec![span(id, "01", None, "root", "OK", 1000)],
                    "a".into(),
                )
                .unwrap();
            store.set_trace_tag(id, "kind", kind).unwrap();
        }
        let found = |f: &str| search(store, f);
        let none = Vec::<String>::new();
        // A pattern that does not compile: MLflow's SQLite store matches nothing, its PostgreSQL
        // store answers 400 BAD_REQUEST.
        let bad = TraceSearch {
            experiment_ids: vec!["0".into()],
            filter: parse_trace_filter("tags.kind RLIKE '('").unwrap(),
            order_by: vec![],
            max_results: 100,
            page_token: None,
        };
        match store.search_traces(&bad) {
            Ok(page) if sqlite => assert!(page.items.is_empty()),
            Err(e) if !sqlite => {
                assert_eq!(e.code, wasmflow_core::ErrorCode::BadRequest);
                assert!(
                    e.message.contains("invalid regular expression"),
                    "{}",
                    e.message
                );
            }
            other => panic!(
                "RLIKE '(' on sqlite={sqlite}: {:?}",
                other.map(|p| p.items.len())
            ),
        }
        if sqlite {
            assert_eq!(found("tags.kind LIKE 'C:\\dir'"), ["tr-1"]);
            assert_eq!(found("tags.kind LIKE '%\\%'"), ["tr-1"]);
            assert_eq!(found("tags.kind ILIKE 'c:\\DIR'"), ["tr-1"]);
            assert_eq!(found("tags.kind LIKE 'beta\\_%'"), none);
            assert_eq!(found("tags.kind LIKE 'a\\%b'"), none);
        } else {
            assert_eq!(found("tags.kind LIKE 'C:\\dir'"), none);
            assert_eq!(found("tags.kind LIKE 'C:\\\\dir'"), ["tr-1"]);
            assert_eq!(found("tags.kind LIKE 'beta\\_%'"), ["tr-2"]);
            assert_eq!(found("tags.kind LIKE 'a\\%b'"), ["tr-3"]);
        }
    }
    let (_dir, store) = common::store();
    check(&store, true);
    if let Some((_db, store)) = common::pg_store() {
        check(&store, false);
    }
}

#[test]
fn deletes_by_age_take_the_oldest_and_stop_at_the_count() {
    each_backend!(|store| {
        for i in 0..6 {
            let id = format!("tr-{i}");
            store
                .log_spans(
                    "0",
                    vec![span(&id, "01", None, "r", "OK", 100 * i)],
                    "a".into(),
                )
                .unwrap();
        }
        let by_age = |max_timestamp_millis, max_traces| TraceDeletion {
            experiment_id: "0".into(),
            max_timestamp_millis: Some(max_timestamp_millis),
            max_traces,
            ..Default::default()
        };
        assert_eq!(store.delete_traces(&by_age(250, Some(2))).unwrap().len(), 2);
        assert_eq!(search(&store, ""), ["tr-2", "tr-3", "tr-4", "tr-5"]);
        assert_eq!(store.delete_traces(&by_age(250, Some(5))).unwrap().len(), 1);
        assert_eq!(store.delete_traces(&by_age(400, None)).unwrap().len(), 2);
        assert_eq!(search(&store, ""), ["tr-5"]);
    });
}

/// Spans of the same traces arriving from many requests at once (as OTLP exporters send them):
/// every span is kept, and each trace's record ends as one writer alone would leave it.
/// A span that carries MLflow's cost and model attributes, as the client sends them
/// (JSON-encoded strings) or as an OpenTelemetry SDK may (plain strings).
fn costed_span(
    trace: &str,
    id: &str,
    start_ms: i64,
    model: &str,
    cost: serde_json::Value,
) -> NewSpan {
    let mut s = span(trace, id, Some("00"), "llm", "OK", start_ms);
    s.content = json!({"name": "llm", "attributes": {
        "mlflow.llm.model": model,
        "mlflow.llm.provider": "\"openai\"",
        "mlflow.llm.cost": cost.to_string(),
    }})
    .to_string();
    s
}

#[test]
fn span_cost_metrics_and_model_dimensions() {
    use wasmflow_store::trace_metrics::{
        Aggregation, MetricQuery, MetricView, query_trace_metrics,
    };
    each_backend!(|store| {
        let spans = vec![
            span("tr-c1", "00", None, "root", "OK", 1000),
            costed_span(
                "tr-c1",
                "01",
                1001,
                "\"gpt-4o\"",
                json!({"input_cost": 0.5, "output_cost": 1.0, "total_cost": 1.5}),
            ),
            costed_span(
                "tr-c1",
                "02",
                1002,
                "mini",
                json!({"input_cost": "0.25", "total_cost": 0.25}),
            ),
            span("tr-c2", "00", None, "root", "OK", 5000),
            costed_span(
                "tr-c2",
                "01",
                5001,
                "mini",
                json!({"input_cost": true, "total_cost": 2}),
            ),
        ];
        store.log_spans("0", spans, "a".into()).unwrap();
        let query =
            |metric: &str, aggs: Vec<Aggregation>, dims: &[&str], window: Option<(i64, i64)>| {
                let q = MetricQuery {
                    experiment_ids: vec!["0".into()],
                    view: MetricView::Spans,
                    metric_name: metric.into(),
                    aggregations: aggs,
                    dimensions: dims.iter().map(|d| d.to_string()).collect(),
                    filters: vec![],
                    time_interval_seconds: None,
                    start_time_ms: window.map(|w| w.0),
                    end_time_ms: window.map(|w| w.1),
                    max_results: 1000,
                };
                query_trace_metrics(&store, &q)
                    .unwrap()
                    .into_iter()
                    .map(|p| (p.dimensions, p.values))
                    .collect::<Vec<_>>()
            };
        let dim = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        // A boolean is no cost; a numeric string is one; a JSON-encoded model name is unwrapped.
        assert_eq!(
            query(
                "input_cost",
                vec![Aggregation::Sum],
                &["span_model_name"],
                None
            ),
            vec![
                (
                    dim("span_model_name", "gpt-4o"),
                    vec![("SUM".to_string(), 0.5)]
                ),
                (
                    dim("span_model_name", "mini"),
                    vec![("SUM".to_string(), 0.25)]
                ),
            ]
        );
        assert_eq!(
            query(
                "total_cost",
                vec![Aggregation::Sum, Aggregation::Max],
                &["span_model_provider"],
                None
            ),
            vec![(
                dim("span_model_provider", "openai"),
                vec![("SUM".to_string(), 3.75), ("MAX".to_string(), 2.0)]
            )]
        );
        // Spans without a model have no model dimension; root spans are left out.
        assert_eq!(
            query(
                "span_count",
                vec![Aggregation::Count],
                &["span_model_name"],
                None
            ),
            vec![
                (
                    dim("span_model_name", "gpt-4o"),
                    vec![("COUNT".to_string(), 1.0)]
                ),
                (
                    dim("span_model_name", "mini"),
                    vec![("COUNT".to_string(), 2.0)]
                ),
            ]
        );
        // Costs are windowed by the span's start, its end millisecond included.
        assert_eq!(
            query(
                "total_cost",
                vec![Aggregation::Sum],
                &[],
                Some((1002, 1002))
            ),
            vec![(vec![], vec![("SUM".to_string(), 0.25)])]
        );
        // A spec of MLflow's: costs have no span-name dimension.
        let e = MetricQuery {
            experiment_ids: vec!["0".into()],
            view: MetricView::Spans,
            metric_name: "input_cost".into(),
            aggregations: vec![Aggregation::Count],
            dimensions: vec![],
            filters: vec![],
            time_interval_seconds: None,
            start_time_ms: None,
            end_time_ms: None,
            max_results: 10,
        };
        assert!(query_trace_metrics(&store, &e).is_err());
    });
}

#[test]
fn concurrent_span_ingestion_loses_nothing() {
    each_backend!(|store| {
        let store = Arc::new(store);
        const THREADS: usize = 8;
        const TRACES: usize = 4;
        const SPANS: usize = 24;
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let store = store.clone();
                s.spawn(move || {
                    for n in (t..SPANS).step_by(THREADS) {
                        let spans = (0..TRACES)
                            .map(|trace| {
                                let (parent, id) = if n == 0 {
                                    (None, "00".to_string())
                                } else {
                                    (Some("00"), format!("{n:02}"))
                                };
                                span(
                                    &format!("tr-{trace}"),
                                    &id,
                                    parent,
                                    "s",
                                    "OK",
                                    1000 + n as i64,
                                )
                            })
                            .collect();
                        store.log_spans("0", spans, "a".into()).unwrap();
                    }
                });
            }
        });
        for trace in 0..TRACES {
            let id = format!("tr-{trace}");
            assert_eq!(
                store.get_spans(std::slice::from_ref(&id)).unwrap().len(),
                SPANS,
                "{id}"
            );
            let info = store.get_trace_info(&id).unwrap();
            assert_eq!(
                (info.state.as_str(), info.request_time),
                ("OK", 1000),
                "{id}"
            );
        }
        assert_eq!(search(&*store, "").len(), TRACES);
    });
}

#[test]
fn eval_datasets_records_and_search() {
    each_backend!(|store| {
        let tags = vec![("team".to_string(), "nlp".to_string())];
        let ds = store
            .create_eval_dataset("qa", tags, vec!["0".into()])
            .unwrap();
        assert_eq!(ds.experiment_ids, ["0"]);
        assert_eq!(ds.tags, [("team".to_string(), "nlp".to_string())]);
        let other = store
            .create_eval_dataset("zz-other", vec![], vec![])
            .unwrap();
        assert_eq!(
            store
                .create_eval_dataset("x", vec![], vec!["999".into()])
                .unwrap_err()
                .code,
            ErrorCode::ResourceDoesNotExist
        );
        assert!(store.create_eval_dataset(" ", vec![], vec![]).is_err());

        let record = |v| NewRecord::from_json(v).unwrap();
        let counts = store
            .upsert_eval_dataset_records(
                &ds.dataset_id,
                vec![
                    record(json!({"inputs": {"q": "2+2"}, "expectations": {"a": "4"},
                                  "tags": {"mlflow.user": "ann"}})),
                    record(json!({"inputs": {"q": "3+3"}})),
                    record(json!({"inputs": {"q": "4+4"}, "outputs": {"r": 8}})),
                ],
            )
            .unwrap();
        assert_eq!((counts.inserted, counts.updated), (3, 0));
        // The same inputs (keys in another order) merge into the stored record.
        let counts = store
            .upsert_eval_dataset_records(
                &ds.dataset_id,
                vec![record(
                    json!({"inputs": {"q": "2+2"}, "expectations": {"b": "four"},
                                   "tags": {"mlflow.user": "bob"}}),
                )],
            )
            .unwrap();
        assert_eq!((counts.inserted, counts.updated), (0, 1));
        let got = store.get_eval_dataset(&ds.dataset_id).unwrap();
        assert_eq!(got.last_updated_by.as_deref(), Some("bob"));
        assert_eq!(got.created_by, None);
        assert!(
            got.profile
                .as_deref()
                .unwrap()
                .contains("\"num_records\": 3")
        );
        assert!(got.schema.as_deref().unwrap().contains("\"q\": \"string\""));

        // Records page by (created_time, id).
        let first = store.eval_dataset_records(&ds.dataset_id, 2, None).unwrap();
        assert_eq!(first.records.len(), 2);
        let rest = store
            .eval_dataset_records(&ds.dataset_id, 2, first.next.clone())
            .unwrap();
        assert_eq!(rest.records.len(), 1);
        assert!(rest.next.is_none());
        let all: Vec<_> = first.records.iter().chain(&rest.records).collect();
        let merged = all.iter().find(|r| r["inputs"]["q"] == "2+2").unwrap();
        assert_eq!(merged["expectations"], json!({"a": "4", "b": "four"}));
        assert_eq!(merged["created_by"], "ann");

        // Deleting records counts the profile down.
        let id = merged["dataset_record_id"].as_str().unwrap().to_string();
        assert_eq!(
            store
                .delete_eval_dataset_records(&ds.dataset_id, &[id.clone(), "dr-nope".into()])
                .unwrap(),
            1
        );
        let got = store.get_eval_dataset(&ds.dataset_id).unwrap();
        assert!(
            got.profile
                .as_deref()
                .unwrap()
                .contains("\"num_records\": 2")
        );

        // Tags, experiments and search.
        store
            .set_eval_dataset_tags(&ds.dataset_id, vec![("stage".into(), "gold".into())])
            .unwrap();
        store
            .delete_eval_dataset_tag(&ds.dataset_id, "team")
            .unwrap();
        assert_eq!(
            store.get_eval_dataset(&ds.dataset_id).unwrap().tags,
            [("stage".to_string(), "gold".to_string())]
        );
        let find = |filter: &str, experiments: Vec<String>| -> Vec<String> {
            store
                .search_eval_datasets(&EvalDatasetSearch {
                    experiment_ids: experiments,
                    filter: parse_evaluation_dataset_filter(filter).unwrap(),
                    order_by: vec![parse_evaluation_dataset_order_by("name ASC").unwrap()],
                    max_results: 10,
                    page_token: None,
                })
                .unwrap()
                .items
                .into_iter()
                .map(|d| d.name)
                .collect()
        };
        assert_eq!(find("", vec![]), ["qa", "zz-other"]);
        assert_eq!(find("", vec!["0".into()]), ["qa"]);
        assert_eq!(find("name LIKE 'q%'", vec![]), ["qa"]);
        assert_eq!(find("tags.stage = 'gold'", vec![]), ["qa"]);
        assert_eq!(
            find("name = \"qa' OR '1'='1\"", vec![]),
            Vec::<String>::new()
        );
        let linked = store
            .add_eval_dataset_to_experiments(&other.dataset_id, &["0".into()])
            .unwrap();
        assert_eq!(linked.dataset_id, other.dataset_id);
        assert_eq!(find("", vec!["0".into()]), ["qa", "zz-other"]);
        store
            .remove_eval_dataset_from_experiments(&other.dataset_id, &["0".into()])
            .unwrap();
        assert_eq!(
            store.eval_dataset_experiment_ids(&ds.dataset_id).unwrap(),
            ["0"]
        );
        assert!(
            store
                .eval_dataset_experiment_ids(&other.dataset_id)
                .unwrap()
                .is_empty()
        );

        // Deleting the dataset takes its records.
        store.delete_eval_dataset(&ds.dataset_id).unwrap();
        assert_eq!(
            store.get_eval_dataset(&ds.dataset_id).unwrap_err().code,
            ErrorCode::ResourceDoesNotExist
        );
        assert!(
            store
                .eval_dataset_records(&ds.dataset_id, 10, None)
                .unwrap()
                .records
                .is_empty()
        );
        store.delete_eval_dataset(&ds.dataset_id).unwrap();
    });
}

/// Upserts of the same new inputs into one dataset from many threads: one record per inputs.
#[test]
fn concurrent_upserts_keep_one_record_per_inputs() {
    each_backend!(|store| {
        let ds = store.create_eval_dataset("qa", vec![], vec![]).unwrap();
        let store = Arc::new(store);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (store, id) = (store.clone(), ds.dataset_id.clone());
                s.spawn(move || {
                    let records = (0..5)
                        .map(|i| {
                            NewRecord::from_json(json!({"inputs": {"q": i}, "tags": {"writer": t}}))
                                .unwrap()
                        })
                        .collect();
                    store.upsert_eval_dataset_records(&id, records).unwrap();
                });
            }
        });
        let page = store
            .eval_dataset_records(&ds.dataset_id, 100, None)
            .unwrap();
        assert_eq!(page.records.len(), 5);
        let got = store.get_eval_dataset(&ds.dataset_id).unwrap();
        assert!(
            got.profile
                .as_deref()
                .unwrap()
                .contains("\"num_records\": 5")
        );
    });
}
