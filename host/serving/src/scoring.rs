//! MLflow's scoring protocol: request bodies (`dataframe_split`, `dataframe_records`,
//! `instances`, `inputs`, CSV) into the columns or tensors a plugin takes, cast to the model's
//! signature, and a plugin's output into `{"predictions": ...}` in MLflow's shapes.

use serde_json::{Map, Value as Json};
use wasmflow_core::mlmodel::{ColumnSpec, ColumnType, ParamSpec, Schema, TensorSpec};
use wasmflow_runtime::{Column, Data, Tensor, Values};

use crate::pyjson;

mod cells;
mod numeric;
mod rows;
mod stream;

pub use rows::{DEFAULT_MAX_ROWS, set_max_rows};

use cells::Cells;

/// Why a request cannot be scored, in the scoring server's terms.
#[derive(Debug, PartialEq)]
pub enum ScoringError {
    /// 415, plain text, as MLflow answers it.
    UnsupportedMediaType(String),
    /// 400 `BAD_REQUEST`: the payload is not in a form the protocol knows.
    BadRequest(String),
    /// 400 `INVALID_PARAMETER_VALUE`: the data does not fit the model's signature.
    Invalid(String),
}

impl std::fmt::Display for ScoringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnsupportedMediaType(m) | Self::BadRequest(m) | Self::Invalid(m) => {
                f.write_str(m)
            }
        }
    }
}

type Result<T> = std::result::Result<T, ScoringError>;

fn bad(message: impl Into<String>) -> ScoringError {
    ScoringError::BadRequest(message.into())
}

fn invalid(message: impl Into<String>) -> ScoringError {
    ScoringError::Invalid(message.into())
}

const FORMATS: [&str; 4] = [
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
];

/// A parsed request.
#[derive(Debug)]
pub struct ScoringRequest {
    pub input: Data,
    /// The request's `params`, as a JSON object.
    pub params: Option<String>,
}

/// Parses a request body by its content type, casting to `schema` when the model has one.
pub fn parse_request(
    content_type: Option<&str>,
    body: &[u8],
    schema: Option<&Schema>,
    params_schema: Option<&[ParamSpec]>,
) -> Result<ScoringRequest> {
    let content_type = content_type.unwrap_or("");
    let mut parts = content_type.split(';').map(str::trim);
    let mime = parts.next().unwrap_or("").to_ascii_lowercase();
    for parameter in parts.filter(|p| !p.is_empty()) {
        let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if !key.trim().eq_ignore_ascii_case("charset") {
            return Err(ScoringError::UnsupportedMediaType(format!(
                "Unrecognized content type parameters: {}.",
                key.trim()
            )));
        }
        if !value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8") {
            return Err(ScoringError::UnsupportedMediaType(
                "The scoring server only supports UTF-8".into(),
            ));
        }
    }
    match mime.as_str() {
        "application/json" => parse_json(body, schema, params_schema),
        "text/csv" => Ok(ScoringRequest {
            input: parse_csv(body, schema)?,
            params: enforce_params(None, params_schema)?.map(|p| params_text(Json::Object(p))),
        }),
        _ => Err(ScoringError::UnsupportedMediaType(format!(
            "This predictor only supports the following content types: Types: ['text/csv', \
             'application/json']. Got '{content_type}'."
        ))),
    }
}

fn parse_json(
    body: &[u8],
    schema: Option<&Schema>,
    params_schema: Option<&[ParamSpec]>,
) -> Result<ScoringRequest> {
    parse_json_within(body, schema, params_schema, rows::max_rows())
}

/// [`parse_json`] with a row limit of `limit`.
fn parse_json_within(
    body: &[u8],
    schema: Option<&Schema>,
    params_schema: Option<&[ParamSpec]>,
    limit: usize,
) -> Result<ScoringRequest> {
    // NaN, Infinity and -Infinity (as Python writes them) become marked strings, read back as
    // numbers while the marker is set; bodies without them are parsed as they are.
    let rewritten = pyjson::rewrite_nonfinite(body);
    let (body, width) = match &rewritten {
        Some((body, width)) => (body.as_slice(), *width),
        None => (body, 0),
    };
    let _marker = pyjson::MarkerGuard::set(width);
    // The typed readers count rows as they read and stop past the limit, holding 8 bytes a
    // value at most; the JSON value parse holds many times the body (a 1,000,000-row, 8 MB
    // body took 575 MB), so a body it would read is counted first, in a pass that allocates
    // nothing. A row takes at least two bytes (`1,`): shorter bodies cannot be past the limit.
    let counted = match parse_typed(body, schema, params_schema, limit) {
        Typed::Request(request) => return Ok(request),
        Typed::TooManyRows => true,
        Typed::Other => body.len() / 2 > limit,
    };
    if counted {
        let rows = rows::count_json(body);
        if rows > limit {
            return Err(bad(rows::too_many(Some(rows), limit)));
        }
    }
    parse_value(body, schema, params_schema)
}

/// The body read as one JSON value (with the non-finite marker set), then cast: every shape
/// the protocol allows, and every error's wording.
fn parse_value(
    body: &[u8],
    schema: Option<&Schema>,
    params_schema: Option<&[ParamSpec]>,
) -> Result<ScoringRequest> {
    let json: Json = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "Ensure that input is a valid JSON formatted string. Error: '{e}'"
        ))
    })?;
    let Json::Object(mut object) = json else {
        return Err(bad(
            "The input must be a JSON dictionary with exactly one of the input fields \
                        {'dataframe_split', 'dataframe_records', 'instances', 'inputs'}",
        ));
    };
    let given = match object.remove("params") {
        None | Some(Json::Null) => None,
        Some(Json::Object(p)) => Some(p),
        Some(_) => return Err(bad("'params' must be a JSON object")),
    };
    let params = enforce_params(given, params_schema)?.map(|p| params_text(Json::Object(p)));
    let present: Vec<&str> = FORMATS
        .iter()
        .copied()
        .filter(|f| object.contains_key(*f))
        .collect();
    let [format] = present.as_slice() else {
        let keys: Vec<&String> = object.keys().collect();
        return Err(bad(format!(
            "The input must be a JSON dictionary with exactly one of the input fields \
             {{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}}. Received \
             dictionary with input fields: {keys:?}."
        )));
    };
    let payload = object.remove(*format).unwrap_or(Json::Null);
    let input = match *format {
        "dataframe_split" => frame_to_data(split_frame(payload)?, schema)?,
        "dataframe_records" => frame_to_data(records_frame(payload)?, schema)?,
        _ => tensor_payload_to_data(payload, schema)?,
    };
    Ok(ScoringRequest { input, params })
}

/// What the typed readers made of a body.
enum Typed {
    Request(ScoringRequest),
    /// A payload past the row limit (reading stopped there).
    TooManyRows,
    /// Not a shape they take, or a request that would be refused: the JSON value parse words it.
    Other,
}

/// The body read straight into typed columns ([`stream`]), when it is in a shape that parse
/// takes and scores without an error; otherwise the body is read as a JSON value, whose code
/// words every error. Both give the same request for the bodies this one takes.
fn parse_typed(
    body: &[u8],
    schema: Option<&Schema>,
    params_schema: Option<&[ParamSpec]>,
    limit: usize,
) -> Typed {
    let columns_schema = match schema {
        Some(Schema::Columns(specs)) => Some(specs.as_slice()),
        _ => None,
    };
    let rows_by_position = columns_schema.is_some();
    let parsed = match numeric::parse(body, rows_by_position, limit) {
        Err(stream::Unread::Other) => stream::parse(body, rows_by_position, limit),
        read => read,
    };
    match parsed {
        Ok(parsed) => typed_request(parsed, schema, columns_schema, params_schema)
            .map_or(Typed::Other, Typed::Request),
        Err(stream::Unread::TooManyRows) => Typed::TooManyRows,
        Err(stream::Unread::Other) => Typed::Other,
    }
}

/// A body the typed readers read, cast to the signature; `None` when that is an error.
fn typed_request(
    parsed: stream::Parsed,
    schema: Option<&Schema>,
    columns_schema: Option<&[ColumnSpec]>,
    params_schema: Option<&[ParamSpec]>,
) -> Option<ScoringRequest> {
    use stream::Payload;
    let given = match parsed.params {
        None | Some(Json::Null) => None,
        Some(Json::Object(p)) => Some(p),
        Some(_) => return None,
    };
    let params = enforce_params(given, params_schema)
        .ok()?
        .map(|p| params_text(Json::Object(p)));
    let tensor_specs = match schema {
        Some(Schema::Tensors(specs)) => Some(specs.as_slice()),
        _ => None,
    };
    let input = match parsed.payload {
        Payload::Frame(frame) => frame_to_data(frame, schema),
        // Records are named lists of one value a row: a frame unless the model takes tensors.
        Payload::Records(frame) => match tensor_specs {
            None => frame_to_data(frame, schema),
            Some(specs) => {
                let rows = frame.values.first().map_or(0, Cells::len) as i64;
                frame
                    .columns
                    .into_iter()
                    .zip(frame.values)
                    .map(|(name, flat)| {
                        let spec = specs.iter().find(|s| s.name.as_deref() == Some(&name));
                        tensor_of(name, vec![rows], &flat, spec)
                    })
                    .collect::<Result<_>>()
                    .map(Data::Tensors)
            }
        },
        Payload::Rows(values) => {
            let specs = columns_schema?;
            if values.len() != specs.len() {
                return None;
            }
            let columns = specs
                .iter()
                .enumerate()
                .map(|(i, s)| s.name.clone().unwrap_or(i.to_string()))
                .collect();
            frame_to_data(Frame { columns, values }, schema)
        }
        Payload::Named(named)
            if tensor_specs.is_none() && named.iter().all(|(_, n)| n.shape.len() == 1) =>
        {
            let (columns, values) = named.into_iter().map(|(name, n)| (name, n.flat)).unzip();
            frame_to_data(Frame { columns, values }, schema)
        }
        Payload::Named(named) => {
            let specs = tensor_specs.unwrap_or_default();
            named
                .into_iter()
                .map(|(name, nested)| {
                    let spec = specs.iter().find(|s| s.name.as_deref() == Some(&name));
                    tensor_of(name, nested.shape, &nested.flat, spec)
                })
                .collect::<Result<_>>()
                .map(Data::Tensors)
        }
        Payload::Tensor(nested) => {
            let spec = match tensor_specs {
                Some([spec]) => Some(spec),
                Some(_) => return None,
                None => None,
            };
            let name = spec
                .and_then(|s| s.name.clone())
                .unwrap_or_else(|| "input".into());
            tensor_of(name, nested.shape, &nested.flat, spec).map(|t| Data::Tensors(vec![t]))
        }
    };
    Some(ScoringRequest {
        input: input.ok()?,
        params,
    })
}

/// A request's params as MLflow's pyfunc takes them (`_enforce_params_schema`): ignored when
/// the model's signature declares none; else the declared ones only, each checked against its
/// type, with the defaults of those not given.
fn enforce_params(
    given: Option<Map<String, Json>>,
    specs: Option<&[ParamSpec]>,
) -> Result<Option<Map<String, Json>>> {
    let Some(specs) = specs else {
        return Ok(None);
    };
    let mut given = given.unwrap_or_default();
    let mut params = Map::new();
    let mut refused = Vec::new();
    for spec in specs {
        match given.remove(&spec.name) {
            Some(value) => match check_param(&value, spec) {
                Ok(()) => {
                    params.insert(spec.name.clone(), value);
                }
                Err(why) => refused.push(format!(
                    "('{}', \"Failed to validate type and shape for '{}', error: {why}\")",
                    spec.name, spec.name
                )),
            },
            None => {
                params.insert(spec.name.clone(), spec.default.clone());
            }
        }
    }
    if !refused.is_empty() {
        return Err(invalid(format!(
            "Invalid parameters found: {{{}}}",
            refused.join(", ")
        )));
    }
    Ok(Some(params))
}

/// Whether a param's value has its spec's type (and is a list when the spec has a shape).
fn check_param(value: &Json, spec: &ParamSpec) -> std::result::Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    if spec.shape.is_some() {
        let Json::Array(items) = value else {
            return Err(format!(
                "expected a list of {}, got {}",
                spec.dtype,
                show(value)
            ));
        };
        return items
            .iter()
            .try_for_each(|item| check_scalar(item, &spec.dtype));
    }
    check_scalar(value, &spec.dtype)
}

fn check_scalar(value: &Json, dtype: &str) -> std::result::Result<(), String> {
    let fits = match dtype {
        "boolean" => value.is_boolean(),
        "string" => matches!(value, Json::String(s) if pyjson::nonfinite(s).is_none()),
        "double" | "float" => {
            value.is_number() || matches!(value, Json::String(s) if pyjson::nonfinite(s).is_some())
        }
        "long" | "integer" => value.is_i64() || value.is_u64(),
        // datetime, binary and types this host does not check are passed on as they are.
        _ => true,
    };
    if fits {
        Ok(())
    } else {
        Err(format!("expected a {dtype}, got {}", show(value)))
    }
}

/// The request's params as JSON text for the plugin; a non-finite number is written as Python
/// writes it (serde_json would write the marked string).
fn params_text(params: Json) -> String {
    fn write(out: &mut String, value: &Json) {
        match value {
            Json::String(s) if pyjson::nonfinite(s).is_some() => out.push_str(&show(value)),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(out, item);
                }
                out.push(']');
            }
            Json::Object(map) => {
                out.push('{');
                for (i, (key, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Json::String(key.clone()).to_string());
                    out.push(':');
                    write(out, item);
                }
                out.push('}');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(&mut out, &params);
    out
}

/// A value as an error message quotes it (a non-finite number as Python writes it).
fn show(value: &Json) -> String {
    match value {
        Json::String(s) => pyjson::nonfinite(s).map_or_else(|| value.to_string(), pyjson::repr_f64),
        other => other.to_string(),
    }
}

fn is_nonfinite(value: &Json) -> bool {
    value.as_str().and_then(pyjson::nonfinite).is_some()
}

/// A table as parsed from the payload, before types are decided.
#[derive(Debug)]
pub(crate) struct Frame {
    pub columns: Vec<String>,
    /// One list of values per column, all of one length.
    pub values: Vec<Cells>,
}

fn split_frame(payload: Json) -> Result<Frame> {
    let Json::Object(mut split) = payload else {
        return Err(bad(
            "'dataframe_split' must be an object with 'columns' and 'data'",
        ));
    };
    let rows = match split.remove("data") {
        Some(Json::Array(rows)) => rows,
        _ => return Err(bad("'dataframe_split' needs 'data', a list of rows")),
    };
    let width = rows
        .iter()
        .map(|r| r.as_array().map_or(1, Vec::len))
        .max()
        .unwrap_or(0);
    let columns: Vec<String> = match split.remove("columns") {
        Some(Json::Array(names)) => names.iter().map(json_name).collect(),
        None | Some(Json::Null) => (0..width).map(|i| i.to_string()).collect(),
        Some(_) => return Err(bad("'columns' must be a list of names")),
    };
    rows_to_frame(columns, rows, |i, got, want| {
        bad(format!(
            "row {i} of 'dataframe_split' has {got} values for {want} columns"
        ))
    })
}

/// Rows of values by position (a scalar is a one-value row) as named columns; `wrong_length`
/// words the error for a row of another length.
fn rows_to_frame(
    columns: Vec<String>,
    rows: Vec<Json>,
    wrong_length: impl Fn(usize, usize, usize) -> ScoringError,
) -> Result<Frame> {
    let mut frame = Frame {
        values: (0..columns.len())
            .map(|_| Cells::with_capacity(rows.len()))
            .collect(),
        columns,
    };
    for (i, row) in rows.into_iter().enumerate() {
        let row = match row {
            Json::Array(row) => row,
            scalar => vec![scalar],
        };
        if row.len() != frame.columns.len() {
            return Err(wrong_length(i, row.len(), frame.columns.len()));
        }
        for (column, value) in frame.values.iter_mut().zip(row) {
            column.push(value);
        }
    }
    Ok(frame)
}

fn records_frame(payload: Json) -> Result<Frame> {
    let Json::Array(records) = payload else {
        return Err(bad("'dataframe_records' must be a list of records"));
    };
    let mut frame = Frame {
        columns: Vec::new(),
        values: Vec::new(),
    };
    for (row, record) in records.into_iter().enumerate() {
        let Json::Object(record) = record else {
            return Err(bad(format!(
                "record {row} of 'dataframe_records' is not an object"
            )));
        };
        // A parsed JSON object has no duplicate keys: each value is this row's.
        for (name, value) in record {
            let index = match frame.columns.iter().position(|c| *c == name) {
                Some(i) => i,
                None => {
                    frame.columns.push(name);
                    let mut column = Cells::default();
                    for _ in 0..row {
                        column.push_null();
                    }
                    frame.values.push(column);
                    frame.values.len() - 1
                }
            };
            frame.values[index].push(value);
        }
        // Keys missing from this record are missing values, as pandas fills them.
        for column in &mut frame.values {
            if column.len() <= row {
                column.push_null();
            }
        }
    }
    Ok(frame)
}

fn json_name(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A table becomes columns cast to a column schema, or tensors for a tensor schema (the whole
/// frame as one tensor, or one column per named tensor, as MLflow's `_enforce_tensor_schema`).
fn frame_to_data(frame: Frame, schema: Option<&Schema>) -> Result<Data> {
    match schema {
        Some(Schema::Tensors(specs)) => {
            let rows = frame.values.first().map_or(0, Cells::len) as i64;
            if let [spec] = specs.as_slice() {
                let width = frame.columns.len();
                let mut shape = vec![rows, width as i64];
                if spec.shape.len() == 1 && width == 1 {
                    shape.truncate(1);
                }
                return Ok(Data::Tensors(vec![tensor_from_columns(
                    spec,
                    shape,
                    &frame.values,
                )?]));
            }
            let tensors = specs
                .iter()
                .map(|spec| {
                    let name = spec.name.as_deref().unwrap_or_default();
                    let index = frame
                        .columns
                        .iter()
                        .position(|c| c == name)
                        .ok_or_else(|| invalid(format!("Model is missing inputs ['{name}'].")))?;
                    tensor_from(spec, vec![rows], &frame.values[index])
                })
                .collect::<Result<_>>()?;
            Ok(Data::Tensors(tensors))
        }
        Some(Schema::Columns(specs)) => Ok(Data::Table(enforce_columns(frame, specs)?)),
        None => Ok(Data::Table(
            frame
                .columns
                .into_iter()
                .zip(frame.values)
                .map(|(name, values)| {
                    let values = infer_values(&name, &values)?;
                    Ok(Column { name, values })
                })
                .collect::<Result<_>>()?,
        )),
    }
}

/// Required columns present, each cast to its declared type; columns not in the schema are
/// dropped, as MLflow's schema enforcement does.
fn enforce_columns(frame: Frame, specs: &[ColumnSpec]) -> Result<Vec<Column>> {
    let named = specs.iter().all(|s| s.name.is_some());
    if !named {
        // Unnamed columns match by position.
        if frame.columns.len() != specs.len() {
            return Err(invalid(format!(
                "Model inference is missing inputs: the model expects {} columns, got {}",
                specs.len(),
                frame.columns.len()
            )));
        }
        return frame
            .columns
            .into_iter()
            .zip(frame.values)
            .zip(specs)
            .map(|((name, values), spec)| {
                Ok(Column {
                    values: cast_column(&name, &values, &spec.dtype)?,
                    name,
                })
            })
            .collect();
    }
    let missing: Vec<&str> = specs
        .iter()
        .filter(|s| s.required)
        .filter_map(|s| s.name.as_deref())
        .filter(|n| !frame.columns.iter().any(|c| c == n))
        .collect();
    if !missing.is_empty() {
        return Err(invalid(format!("Model is missing inputs {missing:?}.")));
    }
    let mut columns = Vec::with_capacity(specs.len());
    for spec in specs {
        let name = spec.name.clone().unwrap_or_default();
        if let Some(index) = frame.columns.iter().position(|c| *c == name) {
            let values = cast_column(&name, &frame.values[index], &spec.dtype)?;
            columns.push(Column { name, values });
        }
    }
    Ok(columns)
}

/// `instances` / `inputs`: a list (one tensor, or records), or an object of named lists.
fn tensor_payload_to_data(payload: Json, schema: Option<&Schema>) -> Result<Data> {
    let (named, payload) = match payload {
        Json::Object(map) => (Some(map), Json::Null),
        Json::Array(items) if !items.is_empty() && items.iter().all(Json::is_object) => {
            // A list of records is turned into named lists, as MLflow does for `instances`.
            let frame = records_frame(Json::Array(items))?;
            let map = frame
                .columns
                .into_iter()
                .zip(frame.values.iter().map(|c| Json::Array(c.to_json())))
                .collect();
            (Some(map), Json::Null)
        }
        other => (None, other),
    };
    match (named, schema) {
        (Some(map), Some(Schema::Columns(_)) | None)
            if map.values().all(|v| !v.is_array() || is_flat(v)) =>
        {
            let columns: Vec<String> = map.keys().cloned().collect();
            let values = map.into_values().map(|v| {
                let items = match v {
                    Json::Array(items) => items,
                    scalar => vec![scalar],
                };
                let mut cells = Cells::with_capacity(items.len());
                items.into_iter().for_each(|v| cells.push(v));
                cells
            });
            frame_to_data(
                Frame {
                    columns,
                    values: values.collect(),
                },
                schema,
            )
        }
        (Some(map), schema) => {
            let specs = match schema {
                Some(Schema::Tensors(specs)) => specs.as_slice(),
                _ => &[],
            };
            let tensors = map
                .into_iter()
                .map(|(name, value)| {
                    let spec = specs.iter().find(|s| s.name.as_deref() == Some(&name));
                    nested_tensor(name, value, spec)
                })
                .collect::<Result<_>>()?;
            Ok(Data::Tensors(tensors))
        }
        (None, Some(Schema::Columns(specs))) => {
            // Rows by position, named by the schema.
            let Json::Array(rows) = payload else {
                return Err(bad("'instances' / 'inputs' must be a list or an object"));
            };
            let columns: Vec<String> = specs
                .iter()
                .enumerate()
                .map(|(i, s)| s.name.clone().unwrap_or(i.to_string()))
                .collect();
            let frame = rows_to_frame(columns, rows, |i, got, want| {
                invalid(format!(
                    "row {i} has {got} values; the model expects {want}"
                ))
            })?;
            frame_to_data(frame, schema)
        }
        (None, schema) => {
            let spec = match schema {
                Some(Schema::Tensors(specs)) => match specs.as_slice() {
                    [spec] => Some(spec),
                    _ => {
                        return Err(invalid(format!(
                            "the model expects {} named tensors; send an object of them",
                            specs.len()
                        )));
                    }
                },
                _ => None,
            };
            let name = spec
                .and_then(|s| s.name.clone())
                .unwrap_or_else(|| "input".into());
            Ok(Data::Tensors(vec![nested_tensor(name, payload, spec)?]))
        }
    }
}

fn is_flat(value: &Json) -> bool {
    value
        .as_array()
        .is_some_and(|items| items.iter().all(|v| !v.is_array() && !v.is_object()))
}

/// A nested JSON list as a row-major tensor, checked against its spec's shape.
fn nested_tensor(name: String, value: Json, spec: Option<&TensorSpec>) -> Result<Tensor> {
    let mut shape = Vec::new();
    let mut cursor = &value;
    while let Json::Array(items) = cursor {
        shape.push(items.len() as i64);
        match items.first() {
            Some(first) => cursor = first,
            None => break,
        }
    }
    let mut flat = Vec::new();
    flatten(&value, &shape, 0, &mut flat, &name)?;
    let mut cells = Cells::with_capacity(flat.len());
    flat.into_iter().for_each(|v| cells.push(v));
    tensor_of(name, shape, &cells, spec)
}

/// A named tensor of `shape` from its row-major values: cast to its spec, or typed as pandas
/// would without one.
fn tensor_of(
    name: String,
    shape: Vec<i64>,
    flat: &Cells,
    spec: Option<&TensorSpec>,
) -> Result<Tensor> {
    match spec {
        Some(spec) => {
            let mut tensor = tensor_from(spec, shape, flat)?;
            tensor.name = name;
            Ok(tensor)
        }
        None => Ok(Tensor {
            values: infer_values(&name, flat)?,
            shape,
            name,
        }),
    }
}

fn flatten(
    value: &Json,
    shape: &[i64],
    depth: usize,
    out: &mut Vec<Json>,
    name: &str,
) -> Result<()> {
    match value {
        Json::Array(items) => {
            if depth >= shape.len() || items.len() as i64 != shape[depth] {
                return Err(bad(format!(
                    "tensor '{name}' is ragged: its nested lists have different lengths"
                )));
            }
            items
                .iter()
                .try_for_each(|item| flatten(item, shape, depth + 1, out, name))
        }
        scalar if depth == shape.len() => {
            out.push(scalar.clone());
            Ok(())
        }
        _ => Err(bad(format!(
            "tensor '{name}' is ragged: its nested lists have different lengths"
        ))),
    }
}

/// Values cast to a tensor spec's dtype, with its fixed dimensions checked.
fn tensor_from(spec: &TensorSpec, shape: Vec<i64>, flat: &Cells) -> Result<Tensor> {
    tensor_from_columns(spec, shape, std::slice::from_ref(flat))
}

/// A tensor of `shape` whose row-major values are the columns' side by side (one column: its
/// values), cast to the spec's dtype, with its fixed dimensions checked.
fn tensor_from_columns(spec: &TensorSpec, shape: Vec<i64>, columns: &[Cells]) -> Result<Tensor> {
    let name = spec.name.clone().unwrap_or_else(|| "input".into());
    let fits = shape.len() == spec.shape.len()
        && shape
            .iter()
            .zip(&spec.shape)
            .all(|(got, want)| *want < 0 || got == want);
    if !fits {
        let show = |s: &[i64]| s.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        return Err(invalid(format!(
            "Shape of input ({}) does not match expected shape ({}) for tensor '{name}'",
            show(&shape),
            show(&spec.shape)
        )));
    }
    let kind = tensor_kind(&spec.dtype);
    let values = match columns {
        [column] => cast_values(&name, column, kind)?,
        _ => {
            let cast = columns
                .iter()
                .map(|c| cast_values(&name, c, kind))
                .collect::<Result<Vec<_>>>()
                .ok()
                .and_then(|cast| interleave(&cast));
            match cast {
                Some(values) => values,
                // A value that does not cast: the first one in row-major order is named.
                None => {
                    let rows = columns.first().map_or(0, Cells::len);
                    let flat: Vec<Json> = (0..rows)
                        .flat_map(|row| columns.iter().map(move |c| c.json_at(row)))
                        .collect();
                    cast_json(&name, &flat, kind)?
                }
            }
        }
    };
    Ok(Tensor {
        name,
        shape,
        values,
    })
}

/// Columns of one type side by side in row-major order; `None` if their types differ.
fn interleave(columns: &[Values]) -> Option<Values> {
    fn weave<T: Clone>(columns: &[&Vec<T>]) -> Vec<T> {
        let rows = columns.first().map_or(0, |c| c.len());
        let mut out = Vec::with_capacity(rows * columns.len());
        for row in 0..rows {
            out.extend(columns.iter().map(|c| c[row].clone()));
        }
        out
    }
    macro_rules! same {
        ($variant:ident) => {{
            let typed: Option<Vec<_>> = columns
                .iter()
                .map(|c| match c {
                    Values::$variant(v) => Some(v),
                    _ => None,
                })
                .collect();
            typed.map(|t| Values::$variant(weave(&t)))
        }};
    }
    match columns.first()? {
        Values::Float64(_) => same!(Float64),
        Values::Float32(_) => same!(Float32),
        Values::Int64(_) => same!(Int64),
        Values::Int32(_) => same!(Int32),
        Values::Boolean(_) => same!(Boolean),
        Values::Text(_) => same!(Text),
        Values::Binary(_) => same!(Binary),
    }
}

/// The kinds of values the WIT `values` variant holds.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    F64,
    F32,
    I64,
    I32,
    Bool,
    Text,
    Binary,
}

fn tensor_kind(dtype: &str) -> Kind {
    match dtype {
        "float32" | "float16" => Kind::F32,
        "float64" | "double" => Kind::F64,
        "int64" | "uint32" | "uint64" => Kind::I64,
        "int32" | "int16" | "int8" | "uint16" | "uint8" => Kind::I32,
        "bool" => Kind::Bool,
        "bytes" | "binary" => Kind::Binary,
        _ => Kind::Text,
    }
}

fn column_kind(dtype: &ColumnType) -> Kind {
    match dtype {
        ColumnType::Double => Kind::F64,
        ColumnType::Float => Kind::F32,
        ColumnType::Long => Kind::I64,
        ColumnType::Integer => Kind::I32,
        ColumnType::Boolean => Kind::Bool,
        ColumnType::Binary => Kind::Binary,
        ColumnType::String | ColumnType::Datetime | ColumnType::Other(_) => Kind::Text,
    }
}

fn cast_column(name: &str, values: &Cells, dtype: &ColumnType) -> Result<Values> {
    cast_values(name, values, column_kind(dtype))
}

/// The type pandas would infer: integers, then floats (null as NaN), booleans, strings.
fn infer_values(name: &str, values: &Cells) -> Result<Values> {
    let kind = match values {
        Cells::Int(_) => Kind::I64,
        // Floats and nulls: not all integers (a typed buffer is never empty).
        Cells::Float { .. } => Kind::F64,
        Cells::Json(values) => {
            if values.iter().all(|v| v.is_i64() || v.is_u64()) {
                Kind::I64
            } else if values
                .iter()
                .all(|v| v.is_number() || v.is_null() || is_nonfinite(v))
            {
                Kind::F64
            } else if values.iter().all(Json::is_boolean) {
                Kind::Bool
            } else {
                Kind::Text
            }
        }
    };
    cast_values(name, values, kind)
}

/// Values cast to `kind`: the typed buffers' usual casts directly, every other one (and every
/// failure, for its message) as the JSON values.
fn cast_values(name: &str, values: &Cells, kind: Kind) -> Result<Values> {
    // A float that is a whole number below 2^53 in magnitude, as `cast_json` takes it.
    let whole = |x: f64| (x.fract() == 0.0 && x.abs() < 9.007e15).then_some(x as i64);
    let cast = match (values, kind) {
        // Nulls are NaN already, as the JSON cast makes them.
        (Cells::Float { values, .. }, Kind::F64) => Some(Values::Float64(values.clone())),
        (Cells::Float { values, .. }, Kind::F32) => {
            Some(Values::Float32(values.iter().map(|&x| x as f32).collect()))
        }
        (
            Cells::Float {
                values,
                nulls: false,
            },
            Kind::I64,
        ) => values
            .iter()
            .map(|&x| whole(x))
            .collect::<Option<_>>()
            .map(Values::Int64),
        (Cells::Int(values), Kind::I64) => Some(Values::Int64(values.clone())),
        (Cells::Int(values), Kind::F64) => {
            Some(Values::Float64(values.iter().map(|&x| x as f64).collect()))
        }
        (Cells::Int(values), Kind::F32) => Some(Values::Float32(
            values.iter().map(|&x| x as f64 as f32).collect(),
        )),
        (Cells::Int(values), Kind::I32) => values
            .iter()
            .map(|&x| i32::try_from(x).ok())
            .collect::<Option<_>>()
            .map(Values::Int32),
        (Cells::Json(values), kind) => return cast_json(name, values, kind),
        _ => None,
    };
    match cast {
        Some(values) => Ok(values),
        None => cast_json(name, &values.to_json(), kind),
    }
}

fn cast_json(name: &str, values: &[Json], kind: Kind) -> Result<Values> {
    let fail = |value: &Json, target: &str| {
        invalid(format!(
            "Incompatible input types for column '{name}': cannot convert {} to {target}",
            show(value)
        ))
    };
    let float = |v: &Json| -> Result<f64> {
        match v {
            Json::Number(n) => n.as_f64().ok_or_else(|| fail(v, "a float")),
            Json::Null => Ok(f64::NAN),
            Json::Bool(b) => Ok(f64::from(u8::from(*b))),
            // A token the client sent, or a string pandas' float cast reads.
            Json::String(s) => match (pyjson::nonfinite(s), s.as_str()) {
                (Some(f), _) => Ok(f),
                (None, "NaN" | "nan") => Ok(f64::NAN),
                (None, "Infinity" | "inf") => Ok(f64::INFINITY),
                (None, "-Infinity" | "-inf") => Ok(f64::NEG_INFINITY),
                _ => Err(fail(v, "a float")),
            },
            _ => Err(fail(v, "a float")),
        }
    };
    let integer = |v: &Json| -> Result<i64> {
        match v {
            Json::Number(n) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.007e15)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| fail(v, "an integer")),
            Json::Bool(b) => Ok(i64::from(*b)),
            _ => Err(fail(v, "an integer")),
        }
    };
    Ok(match kind {
        Kind::F64 => Values::Float64(values.iter().map(float).collect::<Result<_>>()?),
        Kind::F32 => Values::Float32(
            values
                .iter()
                .map(|v| float(v).map(|f| f as f32))
                .collect::<Result<_>>()?,
        ),
        Kind::I64 => Values::Int64(values.iter().map(integer).collect::<Result<_>>()?),
        Kind::I32 => Values::Int32(
            values
                .iter()
                .map(|v| {
                    integer(v)
                        .and_then(|i| i32::try_from(i).map_err(|_| fail(v, "a 32-bit integer")))
                })
                .collect::<Result<_>>()?,
        ),
        Kind::Bool => Values::Boolean(
            values
                .iter()
                .map(|v| match v {
                    Json::Bool(b) => Ok(*b),
                    Json::Number(n) if n.as_f64() == Some(0.0) => Ok(false),
                    Json::Number(n) if n.as_f64() == Some(1.0) => Ok(true),
                    _ => Err(fail(v, "a boolean")),
                })
                .collect::<Result<_>>()?,
        ),
        Kind::Text => Values::Text(
            values
                .iter()
                .map(|v| match v {
                    // What pandas' astype(str) makes of a float: nan, inf, -inf.
                    Json::String(s) => match pyjson::nonfinite(s) {
                        Some(f) if f.is_nan() => "nan".into(),
                        Some(f) => if f > 0.0 { "inf" } else { "-inf" }.into(),
                        None => s.clone(),
                    },
                    other => other.to_string(),
                })
                .collect(),
        ),
        Kind::Binary => Values::Binary(
            values
                .iter()
                .map(|v| match v {
                    Json::String(s) => {
                        use base64::Engine as _;
                        base64::engine::general_purpose::STANDARD
                            .decode(s)
                            .map_err(|_| fail(v, "base64 bytes"))
                    }
                    _ => Err(fail(v, "base64 bytes")),
                })
                .collect::<Result<_>>()?,
        ),
    })
}

/// A CSV body (a header row, then one row per example), as `pandas.read_csv` reads it.
fn parse_csv(body: &[u8], schema: Option<&Schema>) -> Result<Data> {
    let failed = |e: csv::Error| {
        bad(format!(
            "Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid \
             CSV-formatted Pandas DataFrame produced using the `pandas.DataFrame.to_csv()` method. \
             Error: '{e}'"
        ))
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let columns: Vec<String> = reader
        .headers()
        .map_err(failed)?
        .iter()
        .map(str::to_string)
        .collect();
    let limit = rows::max_rows();
    let mut records = Vec::new();
    for record in reader.records() {
        if records.len() == limit {
            return Err(bad(rows::too_many(None, limit)));
        }
        records.push(record.map_err(failed)?);
    }
    // Infinities are marked strings, as in a JSON body; the marker is longer than the NULs any
    // field starts with, so no field is mistaken for one.
    let width = 1 + records
        .iter()
        .flat_map(|r| r.iter())
        .map(|f| f.bytes().take_while(|&b| b == 0).count())
        .max()
        .unwrap_or(0);
    let _marker = pyjson::MarkerGuard::set(width);
    let mut values: Vec<Cells> = (0..columns.len())
        .map(|_| Cells::with_capacity(records.len()))
        .collect();
    for record in &records {
        for (column, field) in values.iter_mut().zip(record.iter()) {
            column.push(csv_value(field, width));
        }
    }
    frame_to_data(Frame { columns, values }, schema)
}

/// The strings `pandas.read_csv` reads as missing values by default.
const CSV_NA: [&str; 19] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

/// A CSV field as the JSON value pandas would read it as: its missing-value strings are
/// missing, numbers (`inf`, `Infinity` in any case, signed) are numbers, `True`/`TRUE`/`true`
/// and the like booleans, anything else text.
fn csv_value(field: &str, width: usize) -> Json {
    if CSV_NA.contains(&field) {
        return Json::Null;
    }
    let number = field.trim();
    if let Ok(i) = number.parse::<i64>() {
        return Json::from(i);
    }
    let unsigned = number.trim_start_matches(['+', '-']);
    if unsigned.len() + 1 >= number.len()
        && (unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity"))
    {
        let token = if number.starts_with('-') {
            "-Infinity"
        } else {
            "Infinity"
        };
        return Json::String(format!("{}{token}", "\0".repeat(width)));
    }
    // Rust's float syntax without its nan/inf words (handled above as pandas has them).
    let numeric = !number.is_empty()
        && number
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if numeric && let Ok(f) = number.parse::<f64>() {
        return Json::from(f);
    }
    match field {
        "True" | "true" | "TRUE" => Json::Bool(true),
        "False" | "false" | "FALSE" => Json::Bool(false),
        _ => Json::String(field.into()),
    }
}

/// The body of `{"predictions": ...}` exactly as MLflow's `predictions_to_json` writes it
/// (`json.dump` with `NumpyEncoder`: `", "` and `": "` separators, Python's float repr, NaN
/// tokens, `\uXXXX` escapes), for the scoring server's answer and `models predict`'s output:
/// - a table is a pandas DataFrame: records `[{"column": value, ...}, ...]`, even one column;
/// - one tensor named `""` is a numpy array: its values nested by its shape;
/// - other tensors are a dict of arrays: `{"name": nested values, ...}`.
///
/// The runtime has checked that columns have equal lengths and shapes match their values.
pub fn predictions(output: &Data) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 24 * output_len(output));
    out.extend_from_slice(b"{\"predictions\": ");
    match output {
        Data::Table(columns) => write_records(&mut out, columns),
        Data::Tensors(tensors) if tensors.len() == 1 && tensors[0].name.is_empty() => {
            write_tensor(&mut out, &tensors[0]);
        }
        Data::Tensors(tensors) => {
            out.push(b'{');
            for (i, tensor) in tensors.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                pyjson::write_str(&mut out, &tensor.name);
                out.extend_from_slice(b": ");
                write_tensor(&mut out, tensor);
            }
            out.push(b'}');
        }
    }
    out.push(b'}');
    out
}

fn output_len(output: &Data) -> usize {
    match output {
        Data::Table(columns) => columns.iter().map(|c| c.values.len()).sum(),
        Data::Tensors(tensors) => tensors.iter().map(|t| t.values.len()).sum(),
    }
}

fn write_records(out: &mut Vec<u8>, columns: &[Column]) {
    let rows = columns.first().map_or(0, |c| c.values.len());
    // Each column's `"name": ` once, copied into every record.
    let keys: Vec<Vec<u8>> = columns
        .iter()
        .map(|c| {
            let mut key = Vec::with_capacity(c.name.len() + 4);
            pyjson::write_str(&mut key, &c.name);
            key.extend_from_slice(b": ");
            key
        })
        .collect();
    out.push(b'[');
    for row in 0..rows {
        if row > 0 {
            out.extend_from_slice(b", ");
        }
        out.push(b'{');
        for (i, (column, key)) in columns.iter().zip(&keys).enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(key);
            write_value(out, &column.values, row);
        }
        out.push(b'}');
    }
    out.push(b']');
}

fn write_tensor(out: &mut Vec<u8>, tensor: &Tensor) {
    let shape: Vec<usize> = tensor
        .shape
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(0))
        .collect();
    write_nested(out, &tensor.values, &shape, 0);
}

/// The values from `offset` nested by `shape` (`ndarray.tolist()`); a 0-d tensor is a scalar.
fn write_nested(out: &mut Vec<u8>, values: &Values, shape: &[usize], offset: usize) {
    let Some((&length, inner)) = shape.split_first() else {
        if offset < values.len() {
            write_value(out, values, offset);
        } else {
            out.extend_from_slice(b"null");
        }
        return;
    };
    let stride: usize = inner.iter().product();
    out.push(b'[');
    if inner.is_empty() {
        // The innermost dimension: the hot loop, one match per list.
        write_run(out, values, offset, length);
    } else {
        for i in 0..length {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            write_nested(out, values, inner, offset + i * stride);
        }
    }
    out.push(b']');
}

/// `length` values from `offset`, separated by `", "`.
fn write_run(out: &mut Vec<u8>, values: &Values, offset: usize, length: usize) {
    fn run<T>(out: &mut Vec<u8>, items: &[T], write: impl Fn(&mut Vec<u8>, &T)) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            write(out, item);
        }
    }
    let end = (offset + length).min(values.len());
    let range = offset.min(end)..end;
    match values {
        Values::Float64(v) => run(out, &v[range], |o, &x| pyjson::write_f64(o, x)),
        Values::Float32(v) => run(out, &v[range], |o, &x| pyjson::write_f32(o, x)),
        Values::Int64(v) => run(out, &v[range], |o, &x| pyjson::write_i64(o, x)),
        Values::Int32(v) => run(out, &v[range], |o, &x| pyjson::write_i64(o, i64::from(x))),
        Values::Boolean(v) => run(out, &v[range], |o, &x| write_bool(o, x)),
        Values::Text(v) => run(out, &v[range], |o, x| pyjson::write_str(o, x)),
        Values::Binary(v) => run(out, &v[range], |o, x| pyjson::write_bytes(o, x)),
    }
}

fn write_bool(out: &mut Vec<u8>, x: bool) {
    out.extend_from_slice(if x { b"true" } else { b"false" });
}

/// The value at `i` (a run of one).
fn write_value(out: &mut Vec<u8>, values: &Values, i: usize) {
    write_run(out, values, i, 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str, schema: Option<&Schema>) -> Result<Data> {
        parse_request(Some("application/json"), body.as_bytes(), schema, None).map(|r| r.input)
    }

    fn columns(schema: &str) -> Schema {
        Schema::parse(schema).unwrap()
    }

    #[test]
    fn dataframe_split_is_cast_to_the_column_schema() {
        let schema = columns(r#"[{"name": "a", "type": "float"}, {"name": "b", "type": "long"}]"#);
        let data = parse(r#"{"dataframe_split": {"columns": ["b", "a", "extra"], "data": [[1, 2.5, "x"], [3, 4, "y"]]}}"#, Some(&schema)).unwrap();
        assert_eq!(
            data,
            Data::Table(vec![
                Column {
                    name: "a".into(),
                    values: Values::Float32(vec![2.5, 4.0])
                },
                Column {
                    name: "b".into(),
                    values: Values::Int64(vec![1, 3])
                },
            ])
        );
    }

    #[test]
    fn missing_and_uncastable_columns_are_invalid() {
        let schema = columns(r#"[{"name": "a", "type": "double"}, {"name": "b", "type": "long"}]"#);
        let missing = parse(r#"{"dataframe_records": [{"a": 1}]}"#, Some(&schema)).unwrap_err();
        assert!(
            matches!(missing, ScoringError::Invalid(m) if m.contains("missing inputs [\"b\"]"))
        );
        let uncastable = parse(
            r#"{"dataframe_records": [{"a": "x", "b": 1}]}"#,
            Some(&schema),
        )
        .unwrap_err();
        assert!(matches!(uncastable, ScoringError::Invalid(m) if m.contains("column 'a'")));
    }

    #[test]
    fn a_single_tensor_spec_takes_the_whole_frame() {
        let schema = columns(
            r#"[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}, "name": "x"}]"#,
        );
        let data = parse(
            r#"{"dataframe_split": {"columns": ["p", "q"], "data": [[1, 2], [3, 4]]}}"#,
            Some(&schema),
        )
        .unwrap();
        assert_eq!(
            data,
            Data::Tensors(vec![Tensor {
                name: "x".into(),
                shape: vec![2, 2],
                values: Values::Float32(vec![1.0, 2.0, 3.0, 4.0])
            }])
        );
        let wrong = parse(r#"{"instances": [[1, 2, 3]]}"#, Some(&schema)).unwrap_err();
        assert!(
            matches!(wrong, ScoringError::Invalid(m) if m.contains("does not match expected shape"))
        );
        let data = parse(r#"{"inputs": [[1, 2], [3, 4]]}"#, Some(&schema)).unwrap();
        assert!(matches!(data, Data::Tensors(ref t) if t[0].shape == vec![2, 2]));
    }

    #[test]
    fn records_keep_their_column_order_for_a_whole_frame_tensor() {
        let schema = columns(
            r#"[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 3]}}]"#,
        );
        let data = parse(
            r#"{"dataframe_records": [{"f2": 1, "f10": 2, "f1": 3}]}"#,
            Some(&schema),
        )
        .unwrap();
        let Data::Tensors(tensors) = data else {
            panic!("expected a tensor")
        };
        assert_eq!(tensors[0].values, Values::Float64(vec![1.0, 2.0, 3.0]));
    }

    #[test]
    fn instances_records_become_columns_without_a_schema() {
        let data = parse(
            r#"{"instances": [{"a": 1, "s": "x"}, {"a": 2, "s": "y"}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(
            data,
            Data::Table(vec![
                Column {
                    name: "a".into(),
                    values: Values::Int64(vec![1, 2])
                },
                Column {
                    name: "s".into(),
                    values: Values::Text(vec!["x".into(), "y".into()])
                },
            ])
        );
    }

    #[test]
    fn bad_payloads_are_bad_requests() {
        for body in [
            r#"[1, 2]"#,
            r#"{"x": 1}"#,
            r#"{"instances": [1], "inputs": [2]}"#,
            "{nope",
            r#"{"inputs": [[1, 2], [3]]}"#,
        ] {
            assert!(
                matches!(parse(body, None), Err(ScoringError::BadRequest(_))),
                "{body}"
            );
        }
        let unsupported = parse_request(Some("text/plain"), b"1", None, None).unwrap_err();
        assert!(matches!(unsupported, ScoringError::UnsupportedMediaType(_)));
        let params = parse_request(
            Some("application/json; format=pandas-split"),
            b"{}",
            None,
            None,
        )
        .unwrap_err();
        assert!(matches!(params, ScoringError::UnsupportedMediaType(_)));
    }

    #[test]
    fn csv_reads_like_pandas() {
        let data = parse_request(Some("text/csv"), b"a,b,s\n1,2.5,x\n3,,y\n", None, None)
            .unwrap()
            .input;
        let Data::Table(columns) = data else { panic!() };
        assert_eq!(columns[0].values, Values::Int64(vec![1, 3]));
        assert!(matches!(&columns[1].values, Values::Float64(v) if v[0] == 2.5 && v[1].is_nan()));
        assert_eq!(
            columns[2].values,
            Values::Text(vec!["x".into(), "y".into()])
        );
    }

    #[test]
    fn csv_reads_missing_values_and_infinities_as_pandas() {
        let body = b"a,b,c\nnan,inf,x\nNA,-Infinity,NaN\n2.5,+INF,\n";
        let data = parse_request(Some("text/csv"), body, None, None)
            .unwrap()
            .input;
        let Data::Table(columns) = data else { panic!() };
        assert!(matches!(&columns[0].values, Values::Float64(v)
            if v[0].is_nan() && v[1].is_nan() && v[2] == 2.5));
        assert_eq!(
            columns[1].values,
            Values::Float64(vec![f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY])
        );
        // A field starting with NULs stays text, never an infinity.
        let data = parse_request(Some("text/csv"), b"a\n\0Infinity\ninf\n", None, None)
            .unwrap()
            .input;
        let Data::Table(columns) = data else { panic!() };
        assert_eq!(
            columns[0].values,
            Values::Text(vec!["\0Infinity".into(), "inf".into()])
        );
    }

    #[test]
    fn json_nonfinite_tokens_are_numbers_and_null_is_missing() {
        let body = r#"{"dataframe_split": {"columns": ["x", "s"],
            "data": [[NaN, "NaN"], [Infinity, "b"], [-Infinity, "c"], [null, "d"], [1.5, "e"]]}}"#;
        let data = parse(body, None).unwrap();
        let Data::Table(table) = data else { panic!() };
        let Values::Float64(x) = &table[0].values else {
            panic!("{:?}", table[0].values)
        };
        assert!(x[0].is_nan() && x[3].is_nan());
        assert_eq!(&x[1..3], &[f64::INFINITY, f64::NEG_INFINITY]);
        assert_eq!(x[4], 1.5);
        assert!(matches!(&table[1].values, Values::Text(s) if s[0] == "NaN"));
        // Tensors too, with and without a spec.
        let data = parse(r#"{"inputs": [[1.0, NaN], [-Infinity, 2]]}"#, None).unwrap();
        let Data::Tensors(tensors) = data else {
            panic!()
        };
        assert!(matches!(&tensors[0].values, Values::Float64(v)
            if v[1].is_nan() && v[2] == f64::NEG_INFINITY));
        let schema = columns(
            r#"[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}, "name": "x"}]"#,
        );
        let data = parse(r#"{"inputs": [[1.0, NaN], [-Infinity, 2]]}"#, Some(&schema)).unwrap();
        let Data::Tensors(tensors) = data else {
            panic!()
        };
        assert!(matches!(&tensors[0].values, Values::Float32(v)
            if v[1].is_nan() && v[2] == f32::NEG_INFINITY));
        // Params keep their tokens as Python writes them.
        let specs = ParamSpec::parse_list(
            r#"[{"name": "t", "type": "double", "default": 0.5, "shape": null},
                {"name": "s", "type": "string", "default": "x", "shape": null}]"#,
        )
        .unwrap();
        let request = parse_request(
            Some("application/json"),
            br#"{"inputs": [1.0], "params": {"t": NaN, "s": "Infinity"}}"#,
            None,
            Some(&specs),
        )
        .unwrap();
        assert_eq!(
            request.params.as_deref(),
            Some(r#"{"t":NaN,"s":"Infinity"}"#)
        );
        // An integer column refuses NaN, quoting it as Python would.
        let err = parse(
            r#"{"dataframe_split": {"columns": ["n"], "data": [[NaN]]}}"#,
            Some(&columns(r#"[{"name": "n", "type": "long"}]"#)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("cannot convert NaN"), "{err}");
    }

    /// Both parses of a body under a schema, with the marker set as `parse_json` sets it.
    fn both(
        body: &str,
        schema: Option<&Schema>,
        params: Option<&[ParamSpec]>,
    ) -> (Option<ScoringRequest>, Result<ScoringRequest>) {
        let rewritten = pyjson::rewrite_nonfinite(body.as_bytes());
        let (body, width) = match &rewritten {
            Some((body, width)) => (body.as_slice(), *width),
            None => (body.as_bytes(), 0),
        };
        let _marker = pyjson::MarkerGuard::set(width);
        let typed = match parse_typed(body, schema, params, usize::MAX) {
            Typed::Request(request) => Some(request),
            Typed::TooManyRows | Typed::Other => None,
        };
        (typed, parse_value(body, schema, params))
    }

    #[test]
    fn a_body_past_the_row_limit_is_refused_alike_whichever_parse_reads_it() {
        let schema = columns(r#"[{"name": "a", "type": "double"}, {"name": "b", "type": "long"}]"#);
        // Four rows in each input form; the first of each pair is read by a typed reader (the
        // number reader or the serde one), the second only by the JSON value parse.
        let bodies = [
            (
                r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2], [2.5, 3], [3.5, 4], [4.5, 5]]}}"#,
                r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2], [2.5, 3], [3.5, 4], [4.5, [5]]]}}"#,
            ),
            (
                r#"{"dataframe_split": {"columns": ["a", "b"], "data": [["x", 2], ["y", 3], ["z", 4], ["w", 5]]}}"#,
                r#"{"dataframe_split": {"columns": ["a", "b"], "data": [["x", 2], ["y", 3], ["z", 4], ["w"]]}}"#,
            ),
            (
                r#"{"dataframe_records": [{"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 1, "b": 2}]}"#,
                r#"{"dataframe_records": [{"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 1}]}"#,
            ),
            (
                r#"{"instances": [[1.5, 2], [2.5, 3], [3.5, 4], [4.5, 5]]}"#,
                r#"{"instances": [[1.5, 2], [2.5, 3], [3.5, 4], 5]}"#,
            ),
            (
                r#"{"inputs": {"a": [1.5, 2.5, 3.5, 4.5], "b": [2, 3, 4, 5]}}"#,
                r#"{"inputs": {"a": [1.5, 2.5, 3.5, [4.5]], "b": [2, 3, 4, 5]}}"#,
            ),
        ];
        let refusal = Err(bad(rows::too_many(Some(4), 3)));
        for (typed, value_only) in bodies {
            for schema in [None, Some(&schema)] {
                let mut read = (
                    parse_typed(typed.as_bytes(), schema, None, 3),
                    parse_typed(value_only.as_bytes(), schema, None, 3),
                );
                assert!(matches!(read.0, Typed::TooManyRows), "{typed}");
                assert!(matches!(read.1, Typed::Other), "{value_only}");
                for body in [typed, value_only] {
                    let refused = parse_json_within(body.as_bytes(), schema, None, 3);
                    assert_eq!(refused.map(|r| r.input), refusal, "{body}");
                }
                // At the limit both are read (an error, if any, is the body's, not the limit's).
                read.0 = parse_typed(typed.as_bytes(), schema, None, 4);
                assert!(!matches!(read.0, Typed::TooManyRows), "{typed}");
                for body in [typed, value_only] {
                    let read = parse_json_within(body.as_bytes(), schema, None, 4);
                    assert_ne!(read.map(|r| r.input), refusal, "{body}");
                }
            }
        }
        // The typed readers stop at the first row past the limit: what follows it is not read.
        for cut in [
            r#"{"dataframe_split": {"columns": ["a"], "data": [[1.5], [2.5], [3.5], [4.5], [x"#,
            r#"{"dataframe_split": {"columns": ["a"], "data": [["s"], ["t"], ["u"], ["v"], [x"#,
            r#"{"dataframe_records": [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}, {x"#,
            r#"{"instances": [1, 2, 3, 4, x"#,
            r#"{"instances": [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}, {x"#,
            r#"{"inputs": {"a": ["s", "t", "u", "v", x"#,
        ] {
            assert!(
                matches!(
                    parse_typed(cut.as_bytes(), None, None, 3),
                    Typed::TooManyRows
                ),
                "{cut}"
            );
            // Not JSON, so not counted: the value parse words the error, as before.
            let err = parse_json_within(cut.as_bytes(), None, None, 3).unwrap_err();
            assert!(err.to_string().contains("valid JSON"), "{err}");
        }
    }

    #[test]
    fn the_typed_parse_gives_what_the_json_value_parse_gives() {
        let schemas: Vec<Option<Schema>> = vec![
            None,
            Some(columns(
                r#"[{"name": "a", "type": "double"}, {"name": "b", "type": "long"}]"#,
            )),
            Some(columns(
                r#"[{"name": "a", "type": "float"}, {"name": "b", "type": "integer"}]"#,
            )),
            Some(columns(
                r#"[{"name": "a", "type": "string"}, {"name": "b", "type": "boolean", "required": false}]"#,
            )),
            Some(columns(r#"[{"type": "double"}, {"type": "float"}]"#)),
            Some(columns(
                r#"[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}, "name": "x"}]"#,
            )),
            Some(columns(
                r#"[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]"#,
            )),
            Some(columns(
                r#"[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}, "name": "a"},
                    {"type": "tensor", "tensor-spec": {"dtype": "int32", "shape": [-1]}, "name": "b"}]"#,
            )),
        ];
        let bodies = [
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2], [3.25, 4]]}}"#,
            r#"{"dataframe_split": {"data": [[1, 2.5], [3, 4.5]], "index": [0, 1], "columns": ["b", "a"]}}"#,
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[null, 2], [0.5, null]]}}"#,
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[NaN, 2], [-Infinity, 9007199254740993]]}}"#,
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": [["x", true], ["NaN", false]]}}"#,
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 1.0], [0, 0.0]]}}"#,
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[2.0, 3e2], [-0.0, 1e300]]}}"#,
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 3000000000], [2, -5]]}}"#,
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 18446744073709551615], [2, 1]]}}"#,
            r#"{"dataframe_split": {"data": [[1.5, 2], [3.5, 4]]}}"#,
            r#"{"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1.5, 2, "s"]]}}"#,
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2], [3.5]]}}"#,
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, [2]]]}}"#,
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": []}}"#,
            r#"{"dataframe_records": [{"a": 1.5, "b": 2}, {"b": 4, "a": 3.5}]}"#,
            r#"{"dataframe_records": [{"a": 1.5, "b": 2}, {"a": 3.5}]}"#,
            r#"{"dataframe_records": [{"a": 1.5, "b": 2}, {"a": 3.5, "b": 1, "a": 7.5}]}"#,
            r#"{"dataframe_records": [{"a": "x", "b": null}, {"a": "y", "b": 1}]}"#,
            r#"{"instances": [{"a": 1.5, "b": 2}, {"a": 2.5, "b": 3}]}"#,
            r#"{"inputs": {"a": [1.5, 2.5], "b": [1, 2]}}"#,
            r#"{"inputs": {"a": [1.5, 2.5], "b": [[1, 2], [3, 4]]}}"#,
            r#"{"inputs": {"x": [[1.5, 2.5], [3, 4]]}}"#,
            r#"{"inputs": [[1.5, 2.5], [3.5, 4.5]]}"#,
            r#"{"inputs": [[1, 2], [3, 4]], "params": {"k": 2}}"#,
            r#"{"inputs": [[1, 2], [3, 4]], "params": null}"#,
            r#"{"inputs": [[1, 2], [3, 4]], "params": 5}"#,
            r#"{"instances": [1.5, 2.5, NaN]}"#,
            r#"{"instances": [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]}"#,
            r#"{"instances": [[[1, 2], [3, 4]], [[5, 6], [7]]]}"#,
            r#"{"instances": [[1, 2], 3]}"#,
            r#"{"instances": [[1, 2], [3, 4]], "inputs": [1]}"#,
            r#"{"instances": [[1, 2], [3, 4]], "extra": {"x": [1, 2]}}"#,
            r#"{"instances": [1, 2]} trailing"#,
            r#"{"instances": [{"a": 1}, 2]}"#,
            r#"[1, 2]"#,
        ];
        let specs = ParamSpec::parse_list(
            r#"[{"name": "k", "type": "long", "default": 1, "shape": null}]"#,
        )
        .unwrap();
        let mut typed = 0;
        for schema in &schemas {
            for params in [None, Some(specs.as_slice())] {
                for body in bodies {
                    let (fast, slow) = both(body, schema.as_ref(), params);
                    if let Some(fast) = fast {
                        typed += 1;
                        let slow = slow.unwrap_or_else(|e| panic!("{body} {schema:?}: {e}"));
                        assert_eq!(
                            format!("{:?}", (&fast.input, &fast.params)),
                            format!("{:?}", (&slow.input, &slow.params)),
                            "{body} {schema:?}"
                        );
                    }
                }
            }
        }
        assert!(
            typed > bodies.len(),
            "the typed parse took only {typed} cases"
        );
        // The usual shapes take the typed parse.
        for body in &bodies[..2] {
            assert!(both(body, schemas[1].as_ref(), None).0.is_some(), "{body}");
        }
        for body in [bodies[14], bodies[18], bodies[19]] {
            assert!(both(body, None, None).0.is_some(), "{body}");
        }
        assert!(both(bodies[22], schemas[5].as_ref(), None).0.is_some());
    }

    fn body(data: &Data) -> String {
        String::from_utf8(predictions(data)).unwrap()
    }

    #[test]
    fn params_follow_the_signature_as_mlflow_enforces_them() {
        let body = br#"{"inputs": [1.0], "params": {"k": 3, "extra": true}}"#;
        let json = Some("application/json");
        // No params in the signature: the request's params are ignored.
        let request = parse_request(json, body, None, None).unwrap();
        assert_eq!(request.params, None);
        // Declared params: unknown ones dropped, missing ones defaulted, types checked.
        let specs = ParamSpec::parse_list(
            r#"[{"name": "k", "type": "long", "default": 1, "shape": null},
                {"name": "margin", "type": "boolean", "default": false, "shape": null},
                {"name": "range", "type": "long", "default": [0, 0], "shape": [-1]}]"#,
        )
        .unwrap();
        let request = parse_request(json, body, None, Some(&specs)).unwrap();
        assert_eq!(
            request.params.as_deref(),
            Some(r#"{"k":3,"margin":false,"range":[0,0]}"#)
        );
        let csv = parse_request(Some("text/csv"), b"a\n1\n", None, Some(&specs)).unwrap();
        assert_eq!(
            csv.params.as_deref(),
            Some(r#"{"k":1,"margin":false,"range":[0,0]}"#)
        );
        let wrong = br#"{"inputs": [1.0], "params": {"k": "three", "range": [1, 2.5]}}"#;
        let err = parse_request(json, wrong, None, Some(&specs)).unwrap_err();
        let ScoringError::Invalid(message) = err else {
            panic!("{err:?}")
        };
        assert!(
            message.starts_with("Invalid parameters found: {('k', "),
            "{message}"
        );
        assert!(message.contains("('range', "), "{message}");
    }

    #[test]
    fn predictions_take_mlflow_shapes_and_python_bytes() {
        // Both generated by Python's json.dumps from the same values.
        const RECORDS: &str = r#"{"predictions": [{"a": 1, "b": "x", "c": NaN, "d": true}, {"a": 2, "b": "\u00e9", "c": Infinity, "d": false}]}"#;
        const NESTED: &str = r#"{"predictions": {"": [[0.5, -Infinity], [1e-07, 2.0]], "x": []}}"#;
        let records = Data::Table(vec![
            Column {
                name: "a".into(),
                values: Values::Int64(vec![1, 2]),
            },
            Column {
                name: "b".into(),
                values: Values::Text(vec!["x".into(), "\u{e9}".into()]),
            },
            Column {
                name: "c".into(),
                values: Values::Float64(vec![f64::NAN, f64::INFINITY]),
            },
            Column {
                name: "d".into(),
                values: Values::Boolean(vec![true, false]),
            },
        ]);
        assert_eq!(body(&records), RECORDS);
        let nested = Data::Tensors(vec![
            Tensor {
                name: "".into(),
                shape: vec![2, 2],
                values: Values::Float64(vec![0.5, f64::NEG_INFINITY, 1e-7, 2.0]),
            },
            Tensor {
                name: "x".into(),
                shape: vec![0],
                values: Values::Int32(vec![]),
            },
        ]);
        assert_eq!(body(&nested), NESTED);
        // One column is still a DataFrame: records.
        let one = Data::Table(vec![Column {
            name: "variable".into(),
            values: Values::Float32(vec![0.21]),
        }]);
        assert_eq!(
            body(&one),
            r#"{"predictions": [{"variable": 0.20999999344348907}]}"#
        );
        // One tensor named "" is an array; a named one is a dict.
        let array = Data::Tensors(vec![Tensor {
            name: "".into(),
            shape: vec![2, 2],
            values: Values::Float32(vec![0.5, 0.5, 0.25, 0.9]),
        }]);
        assert_eq!(
            body(&array),
            r#"{"predictions": [[0.5, 0.5], [0.25, 0.8999999761581421]]}"#
        );
        let labels = Data::Tensors(vec![Tensor {
            name: "".into(),
            shape: vec![3],
            values: Values::Text(vec!["a".into(), "b\"".into(), "c".into()]),
        }]);
        assert_eq!(body(&labels), r#"{"predictions": ["a", "b\"", "c"]}"#);
        let named = Data::Tensors(vec![Tensor {
            name: "variable".into(),
            shape: vec![1, 1],
            values: Values::Float64(vec![0.21]),
        }]);
        assert_eq!(body(&named), r#"{"predictions": {"variable": [[0.21]]}}"#);
        // Shapes with zero dimensions and a 0-d tensor, as ndarray.tolist() writes them.
        let empty = Data::Tensors(vec![Tensor {
            name: "".into(),
            shape: vec![2, 0],
            values: Values::Int64(vec![]),
        }]);
        assert_eq!(body(&empty), r#"{"predictions": [[], []]}"#);
        let scalar = Data::Tensors(vec![Tensor {
            name: "".into(),
            shape: vec![],
            values: Values::Int64(vec![7]),
        }]);
        assert_eq!(body(&scalar), r#"{"predictions": 7}"#);
        assert_eq!(body(&Data::Table(vec![])), r#"{"predictions": []}"#);
        let three = Data::Tensors(vec![Tensor {
            name: "".into(),
            shape: vec![2, 1, 2],
            values: Values::Boolean(vec![true, false, false, true]),
        }]);
        assert_eq!(
            body(&three),
            r#"{"predictions": [[[true, false]], [[false, true]]]}"#
        );
    }
}
