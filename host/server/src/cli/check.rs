//! `wasmflow plugins check FILE.wasm [--model DIR] [--input REQ.json] [--expect OUT.json
//! --tolerance 1e-5]`: what a plugin author runs before any server is involved. It checks the
//! component as `plugins install` does, then loads the model and scores requests through the
//! serving crate (the code `/serving/...` and `models serve` run): every payload form, zero
//! rows, nulls and NaN, a missing column and a wrong type. One line per check on stdout, one
//! line per failure on stderr, and a non-zero exit when anything failed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json};
use wasmflow_core::mlmodel::{ColumnType, MlModel, Schema};
use wasmflow_runtime::{CheckedPlugin, PluginErrorKind, PluginManager, Runtime};
use wasmflow_serving::{LoadedModel, Refused, ScoreFailure};

use crate::PluginArgs;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The component to check (`.wasm`).
    file: PathBuf,
    /// A model directory (with its MLmodel) to load with the component and score requests on.
    #[arg(long)]
    model: Option<PathBuf>,
    /// A scoring request (MLflow's JSON: dataframe_split, dataframe_records, instances or
    /// inputs) whose rows every check uses; without it, a few rows made from the signature.
    #[arg(long, requires = "model")]
    input: Option<PathBuf>,
    /// The answer `--input` must get (`{"predictions": ...}`), compared number by number.
    #[arg(long, requires = "input")]
    expect: Option<PathBuf>,
    /// How far a number of the answer may be from `--expect`'s: |a - b| <= t * (1 + |b|).
    #[arg(long, default_value_t = 1e-5, requires = "expect")]
    tolerance: f64,
}

/// Runs every check; `Ok(false)` when one failed (the caller exits non-zero).
pub fn run(args: CheckArgs, plugins: &PluginArgs) -> anyhow::Result<bool> {
    let mut report = Report::default();
    let runtime = plugins.runtime()?;
    check(&args, &runtime, &mut report);
    report.summary();
    Ok(report.failures == 0)
}

fn check(args: &CheckArgs, runtime: &Arc<Runtime>, report: &mut Report) {
    let Some(plugin) = check_component(&args.file, runtime, report) else {
        return;
    };
    let Some(dir) = &args.model else {
        return;
    };
    if !args.tolerance.is_finite() || args.tolerance < 0.0 {
        report.fail(
            "expect",
            format!("invalid --tolerance '{}'", args.tolerance),
        );
        return;
    }
    let started = Instant::now();
    let model = match wasmflow_serving::load_with_plugin(runtime, &plugin, dir, 1) {
        Ok(model) => model,
        Err(e) => {
            report.fail("load", format!("'{}': {}", dir.display(), e.message));
            return;
        }
    };
    report.ok(
        "load",
        format!(
            "flavor '{}' of '{}' in {}; {} of linear memory{}",
            model.flavor,
            dir.display(),
            millis(started.elapsed()),
            mib(model.pool.memory()),
            carried_note(dir, &plugin.record.sha256)
        ),
    );
    let input = match args.input.as_deref().map(read_input).transpose() {
        Ok(input) => input,
        Err(message) => {
            report.fail("input", message);
            return;
        }
    };
    let sample = match &input {
        Some((_, sample)) => sample.clone(),
        None => match Sample::from_schema(model.input_schema.as_ref()) {
            Some(sample) => sample,
            None => {
                report.fail(
                    "input",
                    "the model has no signature and the plugin reports none, so no request \
                     can be made up: pass --input REQ.json"
                        .into(),
                );
                return;
            }
        },
    };
    let mut calls = Calls::new(&model, report);
    let given = input.map(|(body, _)| calls.run("input", "application/json", body, Case::Valid));
    let cases = sample.cases();
    let mut reference: Option<(&str, Json)> = None;
    for (name, content_type, body, case) in &cases {
        let answer = calls.run(name, content_type, body.clone(), *case);
        // The forms carry the same rows, so their answers must agree.
        if let (Case::Valid, Some(answer)) = (case, answer) {
            match &reference {
                None => reference = Some((name.as_str(), answer)),
                Some((first, want)) => {
                    if let Err(why) = compare(&answer, want, 1e-9, "predictions") {
                        calls
                            .report
                            .fail(name, format!("the answer differs from {first}'s: {why}"));
                    }
                }
            }
        }
    }
    if let Some(expect) = &args.expect {
        check_expect(expect, args.tolerance, given.flatten(), calls.report);
    }
    let (peak, dropped) = (calls.peak, calls.dropped);
    let limit = runtime.config().memory_limit;
    let unknown = if dropped > 0 {
        format!(
            "; not counting the {dropped} instances dropped after a trap, timeout or the \
             memory cap"
        )
    } else {
        String::new()
    };
    report.ok(
        "memory",
        format!(
            "peak {} of linear memory in the instance (limit {}){unknown}",
            mib(peak),
            mib(limit)
        ),
    );
}

/// Says so when the model carries another component than the one checked (which `check` uses
/// instead, so that a plugin can be checked before it is attached to the model).
fn carried_note(dir: &Path, sha256: &str) -> String {
    let carried = std::fs::read_to_string(dir.join("MLmodel"))
        .ok()
        .and_then(|text| MlModel::parse(&text).ok())
        .and_then(|mlmodel| mlmodel.carried_plugin().ok().flatten());
    match carried {
        Some(c) if !c.sha256.trim().eq_ignore_ascii_case(sha256) => format!(
            " (the model carries '{}' with sha256 '{}'; checked with this component instead)",
            c.component, c.sha256
        ),
        _ => String::new(),
    }
}

/// What `plugins install` checks: a component of the flavor world, importing only what the host
/// provides, whose `info` gives a valid name, version and flavors.
fn check_component(file: &Path, runtime: &Runtime, report: &mut Report) -> Option<CheckedPlugin> {
    let wasm = match std::fs::read(file) {
        Ok(wasm) => wasm,
        Err(e) => {
            report.fail(
                "component",
                format!("cannot read '{}': {e}", file.display()),
            );
            return None;
        }
    };
    let started = Instant::now();
    match PluginManager::inspect(runtime, &wasm) {
        Ok(plugin) => {
            report.ok(
                "component",
                format!(
                    "'{}' ({} KiB, sha256 {}) exports the flavor world and imports only what \
                     the host provides; ready in {}",
                    file.display(),
                    wasm.len() >> 10,
                    &plugin.record.sha256[..12],
                    millis(started.elapsed())
                ),
            );
            report.ok(
                "info",
                format!(
                    "{}@{} loads {}",
                    plugin.record.name,
                    plugin.record.version,
                    plugin.record.loads.join(",")
                ),
            );
            Some(plugin)
        }
        Err(e) => {
            report.fail("component", format!("'{}': {e}", file.display()));
            None
        }
    }
}

fn check_expect(path: &Path, tolerance: f64, answer: Option<Json>, report: &mut Report) {
    let want = match std::fs::read(path) {
        Ok(bytes) => match parse_answer(&bytes) {
            Some(json) => json,
            None => {
                report.fail(
                    "expect",
                    format!("'{}' is not a JSON answer", path.display()),
                );
                return;
            }
        },
        Err(e) => {
            report.fail("expect", format!("cannot read '{}': {e}", path.display()));
            return;
        }
    };
    let Some(answer) = answer else {
        report.fail("expect", "--input got no answer to compare".into());
        return;
    };
    // `{"predictions": ...}` as the server answers, or the predictions alone.
    let want = match want {
        Json::Object(mut o) if o.len() == 1 && o.contains_key("predictions") => {
            o.remove("predictions").unwrap_or_default()
        }
        other => other,
    };
    let got = answer.get("predictions").cloned().unwrap_or(answer);
    match compare(&got, &want, tolerance, "predictions") {
        Ok(count) => report.ok(
            "expect",
            format!(
                "{count} numbers within {tolerance:e} of '{}'",
                path.display()
            ),
        ),
        Err(why) => report.fail("expect", why),
    }
}

/// What a request is expected to get.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Case {
    /// A good request: it must get an answer.
    Valid,
    /// An edge case or a bad request: an answer, the host's refusal, or the plugin's
    /// `invalid-input`/`unsupported` are all fine; a trap or an `internal` error is not.
    Edge,
}

/// The scoring calls on one loaded model: latency per call, peak memory, and no more calls
/// after a timeout (each would wait the full deadline).
struct Calls<'a> {
    model: &'a LoadedModel,
    report: &'a mut Report,
    peak: usize,
    /// Instances dropped after a trap, timeout or the memory cap: their memory is unknown.
    dropped: usize,
    timed_out: Option<String>,
}

impl<'a> Calls<'a> {
    fn new(model: &'a LoadedModel, report: &'a mut Report) -> Self {
        Self {
            peak: model.pool.memory(),
            model,
            report,
            dropped: 0,
            timed_out: None,
        }
    }

    /// Scores `body`; the answer's JSON when there is one.
    fn run(&mut self, name: &str, content_type: &str, body: Vec<u8>, case: Case) -> Option<Json> {
        if let Some(first) = &self.timed_out {
            self.report.skip(
                name,
                format!("not run: the plugin timed out on '{first}', and would again"),
            );
            return None;
        }
        let started = Instant::now();
        let result = self.model.try_score(Some(content_type), &body);
        let elapsed = started.elapsed();
        self.peak = self.peak.max(self.model.pool.memory());
        match (result, case) {
            (Ok(answer), _) => match parse_answer(&answer) {
                Some(json) => {
                    self.report.ok(
                        name,
                        format!("answered in {} ({} bytes)", millis(elapsed), answer.len()),
                    );
                    Some(json)
                }
                None => {
                    self.report.fail(
                        name,
                        format!(
                            "the answer is not JSON: '{}'",
                            String::from_utf8_lossy(&answer[..answer.len().min(200)])
                        ),
                    );
                    None
                }
            },
            (Err(ScoreFailure::Refused(refused)), Case::Valid) => {
                self.report.fail(
                    name,
                    format!(
                        "the host refused the request before the plugin: {}",
                        refused_text(&refused)
                    ),
                );
                None
            }
            (Err(ScoreFailure::Refused(refused)), Case::Edge) => {
                self.report.ok(
                    name,
                    format!(
                        "refused by the host before the plugin in {}: {}",
                        millis(elapsed),
                        refused_text(&refused)
                    ),
                );
                None
            }
            (Err(ScoreFailure::Plugin(e)), case) => {
                if e.kind == PluginErrorKind::Timeout {
                    self.timed_out = Some(name.to_string());
                }
                if e.kind.poisons_instance() {
                    self.dropped += 1;
                }
                match verdict(e.kind, case) {
                    Ok(()) => self.report.ok(
                        name,
                        format!(
                            "refused by the plugin ({}) in {}: {}",
                            kind_name(e.kind),
                            millis(elapsed),
                            e.message
                        ),
                    ),
                    Err(why) => self.report.fail(
                        name,
                        format!("{why} after {}: {}", millis(elapsed), e.message),
                    ),
                }
                None
            }
        }
    }
}

/// Whether a plugin failure of `kind` is acceptable for a request of `case`: the reason when
/// it is not.
fn verdict(kind: PluginErrorKind, case: Case) -> Result<(), String> {
    let described = match kind {
        PluginErrorKind::InvalidInput | PluginErrorKind::Unsupported if case == Case::Edge => {
            return Ok(());
        }
        PluginErrorKind::InvalidInput | PluginErrorKind::Unsupported => {
            return Err(format!(
                "the plugin refused a valid request ({})",
                kind_name(kind)
            ));
        }
        PluginErrorKind::Internal => "answered an 'internal' error",
        PluginErrorKind::InvalidModel => "answered an 'invalid-model' error",
        PluginErrorKind::Trapped => "trapped",
        PluginErrorKind::Timeout => "ran past its deadline",
        PluginErrorKind::OutOfMemory => "ran out of memory",
        PluginErrorKind::MalformedOutput => "returned malformed output",
        PluginErrorKind::Host => "could not be run",
    };
    Err(match case {
        Case::Valid => format!("the plugin {described} on a valid request"),
        Case::Edge => format!(
            "the plugin did not respect the error kinds: it {described} where bad input \
             deserves 'invalid-input'"
        ),
    })
}

fn kind_name(kind: PluginErrorKind) -> &'static str {
    match kind {
        PluginErrorKind::InvalidInput => "invalid-input",
        PluginErrorKind::InvalidModel => "invalid-model",
        PluginErrorKind::Unsupported => "unsupported",
        PluginErrorKind::Internal => "internal",
        PluginErrorKind::Trapped => "trap",
        PluginErrorKind::Timeout => "timeout",
        PluginErrorKind::OutOfMemory => "out-of-memory",
        PluginErrorKind::MalformedOutput => "malformed-output",
        PluginErrorKind::Host => "host",
    }
}

fn refused_text(refused: &Refused) -> String {
    match refused {
        Refused::UnsupportedMediaType(m) => m.clone(),
        Refused::Error(e) => format!(
            "{} ({} {})",
            e.message,
            e.code.http_status(),
            e.code.as_str()
        ),
    }
}

/// The rows every request is made of.
#[derive(Clone, Debug, PartialEq)]
enum Sample {
    /// Named columns, row by row, and the request's `params`.
    Table {
        columns: Vec<String>,
        rows: Vec<Vec<Json>>,
        params: Option<Json>,
    },
    /// A tensor input (`instances`/`inputs` of arrays), sent as it is.
    Tensor { value: Json, params: Option<Json> },
}

/// Written where a request needs a NaN: JSON has none, so the body writer puts Python's token.
const NAN: &str = "\u{0}nan";

impl Sample {
    /// Reads a request body in any of MLflow's four JSON forms.
    fn from_request(json: &Json) -> Result<Self, String> {
        let Json::Object(object) = json else {
            return Err("the request must be a JSON object".into());
        };
        let params = object.get("params").cloned().filter(|p| !p.is_null());
        let forms: Vec<&String> = object.keys().filter(|k| *k != "params").collect();
        let [form] = forms.as_slice() else {
            return Err(format!(
                "the request must have exactly one of 'dataframe_split', 'dataframe_records', \
                 'instances' and 'inputs'; it has {forms:?}"
            ));
        };
        let value = &object[form.as_str()];
        let table = match (form.as_str(), value) {
            ("dataframe_split", Json::Object(split)) => {
                let columns: Vec<String> = match split.get("columns") {
                    Some(Json::Array(c)) => c.iter().map(column_name).collect(),
                    _ => return Err("'dataframe_split' needs 'columns'".into()),
                };
                let rows = match split.get("data") {
                    Some(Json::Array(rows)) => rows
                        .iter()
                        .map(|row| match row {
                            Json::Array(values) if values.len() == columns.len() => {
                                Ok(values.clone())
                            }
                            other => Err(format!(
                                "a 'dataframe_split' row does not have {} values: '{other}'",
                                columns.len()
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err("'dataframe_split' needs 'data'".into()),
                };
                Some((columns, rows))
            }
            ("dataframe_records" | "instances" | "inputs", Json::Array(records))
                if !records.is_empty() && records.iter().all(Json::is_object) =>
            {
                Some(records_table(records))
            }
            ("inputs", Json::Object(columns))
                if columns.values().all(|v| {
                    matches!(v, Json::Array(a) if a.iter().all(|x| !x.is_array() && !x.is_object()))
                }) =>
            {
                let names: Vec<String> = columns.keys().cloned().collect();
                let len = columns.values().map(|v| v.as_array().map_or(0, Vec::len));
                let len = len.max().unwrap_or(0);
                let rows = (0..len)
                    .map(|i| {
                        columns
                            .values()
                            .map(|v| v.get(i).cloned().unwrap_or(Json::Null))
                            .collect()
                    })
                    .collect();
                Some((names, rows))
            }
            ("dataframe_records", other) => {
                return Err(format!(
                    "'dataframe_records' must be a list of objects, not '{other}'"
                ));
            }
            ("instances" | "inputs", _) => None,
            (other, _) => return Err(format!("unknown request field '{other}'")),
        };
        Ok(match table {
            Some((columns, rows)) => Sample::Table {
                columns,
                rows,
                params,
            },
            None => Sample::Tensor {
                value: value.clone(),
                params,
            },
        })
    }

    /// A few rows that fit the signature.
    fn from_schema(schema: Option<&Schema>) -> Option<Self> {
        match schema? {
            Schema::Columns(specs) => {
                let columns = specs
                    .iter()
                    .enumerate()
                    .map(|(i, spec)| spec.name.clone().unwrap_or_else(|| i.to_string()))
                    .collect();
                let rows = (0..3)
                    .map(|row| {
                        specs
                            .iter()
                            .map(|spec| synthetic(&spec.dtype, row))
                            .collect()
                    })
                    .collect();
                Some(Sample::Table {
                    columns,
                    rows,
                    params: None,
                })
            }
            Schema::Tensors(specs) => {
                let tensor = |shape: &[i64], dtype: &str| {
                    let dims: Vec<usize> = shape
                        .iter()
                        .enumerate()
                        .map(|(i, &d)| match d {
                            d if d > 0 => d as usize,
                            _ if i == 0 => 3,
                            _ => 2,
                        })
                        .collect();
                    nested(&dims, dtype)
                };
                let value = match specs.as_slice() {
                    [one] if one.name.is_none() => tensor(&one.shape, &one.dtype),
                    _ => Json::Object(
                        specs
                            .iter()
                            .enumerate()
                            .map(|(i, s)| {
                                let name = s.name.clone().unwrap_or_else(|| i.to_string());
                                (name, tensor(&s.shape, &s.dtype))
                            })
                            .collect(),
                    ),
                };
                Some(Sample::Tensor {
                    value,
                    params: None,
                })
            }
        }
    }

    /// Every request to make: (check name, content type, body, what it should get).
    fn cases(&self) -> Vec<(String, &'static str, Vec<u8>, Case)> {
        const JSON: &str = "application/json";
        match self {
            Sample::Tensor { value, params } => {
                let empty = match value {
                    Json::Object(o) => {
                        Json::Object(o.keys().map(|k| (k.clone(), Json::Array(vec![]))).collect())
                    }
                    _ => Json::Array(vec![]),
                };
                vec![
                    (
                        "instances".into(),
                        JSON,
                        request("instances", value.clone(), params),
                        Case::Valid,
                    ),
                    (
                        "inputs".into(),
                        JSON,
                        request("inputs", value.clone(), params),
                        Case::Valid,
                    ),
                    (
                        "zero rows".into(),
                        JSON,
                        request("inputs", empty, params),
                        Case::Edge,
                    ),
                ]
            }
            Sample::Table {
                columns,
                rows,
                params,
            } => {
                let mut cases = vec![
                    (
                        "dataframe_split".into(),
                        JSON,
                        split(columns, rows, params),
                        Case::Valid,
                    ),
                    (
                        "dataframe_records".into(),
                        JSON,
                        request("dataframe_records", records(columns, rows), params),
                        Case::Valid,
                    ),
                    (
                        "instances".into(),
                        JSON,
                        request("instances", records(columns, rows), params),
                        Case::Valid,
                    ),
                    (
                        "inputs".into(),
                        JSON,
                        request("inputs", by_column(columns, rows), params),
                        Case::Valid,
                    ),
                ];
                // CSV cannot carry params.
                if params.is_none() {
                    cases.push(("csv".into(), "text/csv", csv(columns, rows), Case::Valid));
                }
                cases.push((
                    "zero rows".into(),
                    JSON,
                    split(columns, &[], params),
                    Case::Edge,
                ));
                if let Some(first) = rows.first() {
                    let mut nulls = rows.clone();
                    nulls[0] = vec![Json::Null; first.len()];
                    cases.push((
                        "nulls".into(),
                        JSON,
                        split(columns, &nulls, params),
                        Case::Edge,
                    ));
                    let mut nan = rows.clone();
                    let mut any = false;
                    for value in &mut nan[0] {
                        if value.is_number() {
                            *value = Json::String(NAN.into());
                            any = true;
                        }
                    }
                    if any {
                        cases.push(("nan".into(), JSON, split(columns, &nan, params), Case::Edge));
                    }
                }
                if let Some(last) = columns.last() {
                    let kept = &columns[..columns.len() - 1];
                    let rows: Vec<Vec<Json>> =
                        rows.iter().map(|r| r[..kept.len()].to_vec()).collect();
                    cases.push((
                        format!("missing column '{last}'"),
                        JSON,
                        split(kept, &rows, params),
                        Case::Edge,
                    ));
                }
                if let Some(first) = columns.first() {
                    let wrong = match rows.first().and_then(|r| r.first()) {
                        Some(Json::String(_)) => serde_json::json!({"not": "a string"}),
                        _ => Json::String("not a number".into()),
                    };
                    let bad: Vec<Vec<Json>> = rows
                        .iter()
                        .map(|r| {
                            let mut r = r.clone();
                            r[0] = wrong.clone();
                            r
                        })
                        .collect();
                    cases.push((
                        format!("wrong type ('{first}' = {wrong})"),
                        JSON,
                        split(columns, &bad, params),
                        Case::Edge,
                    ));
                }
                cases
            }
        }
    }
}

fn column_name(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn records_table(records: &[Json]) -> (Vec<String>, Vec<Vec<Json>>) {
    let mut columns: Vec<String> = Vec::new();
    for record in records {
        for key in record.as_object().into_iter().flat_map(Map::keys) {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    let rows = records
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| r.get(c).cloned().unwrap_or(Json::Null))
                .collect()
        })
        .collect();
    (columns, rows)
}

fn synthetic(dtype: &ColumnType, row: usize) -> Json {
    let row_f = row as f64;
    match dtype {
        ColumnType::Boolean => Json::Bool(row.is_multiple_of(2)),
        ColumnType::Integer | ColumnType::Long => Json::from(row as i64 + 1),
        ColumnType::Float | ColumnType::Double => Json::from(0.5 + row_f * 1.25),
        ColumnType::String => Json::String(["a", "b", "c"][row % 3].into()),
        ColumnType::Binary => Json::String("aGVsbG8=".into()),
        ColumnType::Datetime => Json::String(format!("2024-01-0{}T00:00:00", row % 9 + 1)),
        ColumnType::Other(_) => Json::String(format!("value {row}")),
    }
}

fn nested(dims: &[usize], dtype: &str) -> Json {
    match dims.split_first() {
        None => match dtype {
            "bool" => Json::Bool(true),
            "str" | "object" => Json::String("a".into()),
            d if d.starts_with("int") || d.starts_with("uint") => Json::from(1),
            _ => Json::from(0.5),
        },
        Some((&n, rest)) => Json::Array((0..n).map(|_| nested(rest, dtype)).collect()),
    }
}

fn records(columns: &[String], rows: &[Vec<Json>]) -> Json {
    Json::Array(
        rows.iter()
            .map(|row| Json::Object(columns.iter().cloned().zip(row.iter().cloned()).collect()))
            .collect(),
    )
}

fn by_column(columns: &[String], rows: &[Vec<Json>]) -> Json {
    Json::Object(
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), rows.iter().map(|r| r[i].clone()).collect()))
            .collect(),
    )
}

fn split(columns: &[String], rows: &[Vec<Json>], params: &Option<Json>) -> Vec<u8> {
    request(
        "dataframe_split",
        serde_json::json!({ "columns": columns, "data": rows }),
        params,
    )
}

fn request(form: &str, value: Json, params: &Option<Json>) -> Vec<u8> {
    let mut body = Map::new();
    body.insert(form.into(), value);
    if let Some(params) = params {
        body.insert("params".into(), params.clone());
    }
    let text = Json::Object(body).to_string();
    let marker = Json::String(NAN.into()).to_string();
    text.replace(&marker, "NaN").into_bytes()
}

fn csv(columns: &[String], rows: &[Vec<Json>]) -> Vec<u8> {
    let field = |text: &str| {
        if text.is_empty() || text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_string()
        }
    };
    let mut out = String::new();
    let header: Vec<String> = columns.iter().map(|c| field(c)).collect();
    let _ = writeln!(out, "{}", header.join(","));
    for row in rows {
        let values: Vec<String> = row
            .iter()
            .map(|v| match v {
                Json::Null => String::new(),
                Json::String(s) if s == NAN => "NaN".into(),
                Json::String(s) => field(s),
                Json::Bool(b) => String::from(if *b { "True" } else { "False" }),
                other => field(&other.to_string()),
            })
            .collect();
        let _ = writeln!(out, "{}", values.join(","));
    }
    out.into_bytes()
}

/// Reads `--input`: its body as given, and the rows the other checks are made of.
fn read_input(path: &Path) -> Result<(Vec<u8>, Sample), String> {
    let body = std::fs::read(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
    let json = parse_answer(&body).ok_or_else(|| format!("'{}' is not JSON", path.display()))?;
    let sample = Sample::from_request(&json).map_err(|e| format!("'{}': {e}", path.display()))?;
    Ok((body, sample))
}

/// Parses JSON as the scoring server writes it: Python's `NaN`, `Infinity` and `-Infinity`
/// become the strings "NaN", "Infinity" and "-Infinity" (equal only to themselves).
fn parse_answer(bytes: &[u8]) -> Option<Json> {
    let mut text = Vec::with_capacity(bytes.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            text.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        let token = [&b"-Infinity"[..], b"Infinity", b"NaN"]
            .into_iter()
            .find(|t| bytes[i..].starts_with(t));
        match token {
            Some(token) => {
                text.push(b'"');
                text.extend_from_slice(token);
                text.push(b'"');
                i += token.len();
            }
            None => {
                in_string = b == b'"';
                text.push(b);
                i += 1;
            }
        }
    }
    serde_json::from_slice(&text).ok()
}

/// Compares an answer with the expected one: same shape, same strings, and numbers within
/// `tolerance` (|a - b| <= t * (1 + |b|)). The count of numbers compared, or where they differ.
fn compare(got: &Json, want: &Json, tolerance: f64, at: &str) -> Result<usize, String> {
    match (got, want) {
        (Json::Number(a), Json::Number(b)) => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            if (a - b).abs() <= tolerance * (1.0 + b.abs()) {
                Ok(1)
            } else {
                Err(format!("{at} is {a}, expected {b}"))
            }
        }
        (Json::Array(a), Json::Array(b)) => {
            if a.len() != b.len() {
                return Err(format!("{at} has {} values, expected {}", a.len(), b.len()));
            }
            a.iter().zip(b).enumerate().try_fold(0, |n, (i, (a, b))| {
                Ok(n + compare(a, b, tolerance, &format!("{at}[{i}]"))?)
            })
        }
        (Json::Object(a), Json::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .try_fold(0, |n, key| match (a.get(key), b.get(key)) {
                    (Some(a), Some(b)) => Ok(n + compare(a, b, tolerance, &format!("{at}.{key}"))?),
                    (Some(_), None) => Err(format!("{at} has '{key}', which is not expected")),
                    _ => Err(format!("{at} lacks '{key}'")),
                })
        }
        (a, b) if a == b => Ok(0),
        (a, b) => Err(format!("{at} is {a}, expected {b}")),
    }
}

/// The check lines: `ok NAME: ...` on stdout, `FAIL NAME: ...` on stderr.
#[derive(Default)]
struct Report {
    checks: usize,
    failures: usize,
}

impl Report {
    fn ok(&mut self, name: &str, detail: String) {
        self.checks += 1;
        let _ = writeln!(std::io::stdout().lock(), "ok   {name}: {detail}");
    }

    fn skip(&mut self, name: &str, detail: String) {
        let _ = writeln!(std::io::stdout().lock(), "skip {name}: {detail}");
    }

    fn fail(&mut self, name: &str, message: String) {
        self.checks += 1;
        self.failures += 1;
        let _ = std::io::stdout().flush();
        let _ = writeln!(std::io::stderr().lock(), "FAIL {name}: {message}");
    }

    fn summary(&self) {
        if self.failures == 0 {
            let _ = writeln!(
                std::io::stdout().lock(),
                "all {} checks passed",
                self.checks
            );
        } else {
            let _ = std::io::stdout().flush();
            let _ = writeln!(
                std::io::stderr().lock(),
                "{} of {} checks failed",
                self.failures,
                self.checks
            );
        }
    }
}

fn millis(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_request_form_reads_to_the_same_rows() {
        let want = Sample::Table {
            columns: vec!["a".into(), "b".into()],
            rows: vec![vec![json!(1.0), json!("x")], vec![json!(2.5), json!(null)]],
            params: None,
        };
        for request in [
            json!({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, "x"], [2.5, null]]}}),
            json!({"dataframe_records": [{"a": 1.0, "b": "x"}, {"a": 2.5, "b": null}]}),
            json!({"instances": [{"a": 1.0, "b": "x"}, {"a": 2.5}]}),
            json!({"inputs": {"a": [1.0, 2.5], "b": ["x", null]}}),
        ] {
            assert_eq!(Sample::from_request(&request).unwrap(), want, "{request}");
        }
        let tensor = Sample::from_request(&json!({"inputs": [[1, 2], [3, 4]]})).unwrap();
        assert!(matches!(tensor, Sample::Tensor { .. }));
        let error = Sample::from_request(&json!({"rows": []})).unwrap_err();
        assert!(
            error.contains("'rows'") || error.contains("\"rows\""),
            "{error}"
        );
    }

    #[test]
    fn the_cases_cover_every_form_and_each_bad_input() {
        let sample = Sample::Table {
            columns: vec!["x1".into(), "x2".into()],
            rows: vec![vec![json!(1.0), json!(2)], vec![json!(3.5), json!(-4)]],
            params: None,
        };
        let cases = sample.cases();
        let names: Vec<&str> = cases.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "dataframe_split",
                "dataframe_records",
                "instances",
                "inputs",
                "csv",
                "zero rows",
                "nulls",
                "nan",
                "missing column 'x2'",
                "wrong type ('x1' = \"not a number\")",
            ]
        );
        let body = |name: &str| {
            let case = cases.iter().find(|c| c.0 == name).unwrap();
            String::from_utf8(case.2.clone()).unwrap()
        };
        assert_eq!(body("csv"), "x1,x2\n1.0,2\n3.5,-4\n");
        assert_eq!(
            body("nan"),
            r#"{"dataframe_split":{"columns":["x1","x2"],"data":[[NaN,NaN],[3.5,-4]]}}"#
        );
        assert_eq!(
            body("missing column 'x2'"),
            r#"{"dataframe_split":{"columns":["x1"],"data":[[1.0],[3.5]]}}"#
        );
        assert_eq!(
            body("zero rows"),
            r#"{"dataframe_split":{"columns":["x1","x2"],"data":[]}}"#
        );
        // Every form but CSV carries params.
        let with_params = Sample::Table {
            columns: vec!["x".into()],
            rows: vec![vec![json!(1)]],
            params: Some(json!({"k": 2})),
        };
        let cases = with_params.cases();
        assert!(cases.iter().all(|c| c.0 != "csv"));
        assert!(
            cases
                .iter()
                .all(|c| String::from_utf8_lossy(&c.2).contains(r#""params":{"k":2}"#))
        );
    }

    #[test]
    fn rows_are_made_up_from_the_signature() {
        let schema =
            Schema::parse(r#"[{"name": "n", "type": "long"}, {"name": "s", "type": "string"}]"#)
                .unwrap();
        let Some(Sample::Table { columns, rows, .. }) = Sample::from_schema(Some(&schema)) else {
            panic!("a table");
        };
        assert_eq!(columns, ["n", "s"]);
        assert_eq!(rows[0], [json!(1), json!("a")]);
        assert_eq!(rows.len(), 3);
        let tensors = Schema::parse(
            r#"[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}]"#,
        )
        .unwrap();
        let Some(Sample::Tensor { value, .. }) = Sample::from_schema(Some(&tensors)) else {
            panic!("a tensor");
        };
        assert_eq!(value, json!([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]));
        assert_eq!(Sample::from_schema(None), None);
    }

    #[test]
    fn answers_compare_within_the_tolerance() {
        let got =
            parse_answer(br#"{"predictions": [{"y": 1.000001, "z": NaN}, -Infinity]}"#).unwrap();
        let want = json!({"predictions": [{"y": 1.0, "z": "NaN"}, "-Infinity"]});
        assert_eq!(compare(&got, &want, 1e-5, "a"), Ok(1));
        assert_eq!(
            compare(&got, &want, 1e-9, "a"),
            Err("a.predictions[0].y is 1.000001, expected 1".into())
        );
        let error = compare(&json!([1, 2]), &json!([1]), 1e-5, "predictions").unwrap_err();
        assert_eq!(error, "predictions has 2 values, expected 1");
        let error = compare(&json!({"a": 1}), &json!({"b": 1}), 1e-5, "p").unwrap_err();
        assert_eq!(error, "p has 'a', which is not expected");
        // A string that spells a token stays a string.
        assert_eq!(
            parse_answer(br#"["NaN x", "a\"NaN"]"#).unwrap(),
            json!(["NaN x", "a\"NaN"])
        );
    }

    #[test]
    fn bad_input_deserves_invalid_input_and_never_a_trap() {
        assert!(verdict(PluginErrorKind::InvalidInput, Case::Edge).is_ok());
        assert!(verdict(PluginErrorKind::Unsupported, Case::Edge).is_ok());
        let internal = verdict(PluginErrorKind::Internal, Case::Edge).unwrap_err();
        assert!(
            internal.contains("did not respect the error kinds"),
            "{internal}"
        );
        assert!(internal.contains("'internal'"), "{internal}");
        let trap = verdict(PluginErrorKind::Trapped, Case::Edge).unwrap_err();
        assert!(
            trap.contains("did not respect the error kinds: it trapped"),
            "{trap}"
        );
        let refused = verdict(PluginErrorKind::InvalidInput, Case::Valid).unwrap_err();
        assert!(refused.contains("refused a valid request"), "{refused}");
        let oom = verdict(PluginErrorKind::OutOfMemory, Case::Valid).unwrap_err();
        assert!(
            oom.contains("ran out of memory on a valid request"),
            "{oom}"
        );
    }
}
