//! `POST /graphql`, as MLflow's server answers the queries its UI sends (`mlflowGetRun`,
//! `mlflowSearchRuns`, `mlflowGetExperiment`, `mlflowGetMetricHistoryBulkInterval`,
//! `mlflowSearchModelVersions`, `mlflowListArtifacts`, `mlflowSearchDatasets`).
//!
//! The query is parsed (graphql-parser) and executed here: operations and their variables,
//! selection sets with aliases, fragments and `@skip`/`@include`, checked against MLflow's schema
//! ([`schema`]). Each root field is resolved as MLflow resolves it, by the REST handler of the
//! same message (called through the router, so both answer the same), and its proto JSON is then
//! shaped by the selection: camelCase names, int64s as strings (`LongString`), and unset proto
//! fields as their defaults, as graphene reads them from a proto. The answer is MLflow's
//! `{"data": ..., "errors": [message, ...] | null}`.

mod schema;

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use graphql_parser::query::{
    Definition, Directive, Document, Field, FragmentDefinition, OperationDefinition, Selection,
    SelectionSet, Type, TypeCondition, Value as GqlValue,
};
use http_body_util::BodyExt as _;
use serde_json::{Map, Number, Value, json};
use tower::ServiceExt as _;

use schema::{Kind, Ty};

/// MLflow's limits (`graphql_no_batching.py` and its environment variables' defaults).
const MAX_DEPTH: usize = 10;
const MAX_SELECTIONS: usize = 1000;

fn env_limit(name: &str) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(10)
}

type Doc<'a> = Document<'a, String>;
type Sel<'a> = SelectionSet<'a, String>;
type GField<'a> = Field<'a, String>;
type Fragments<'d, 'a> = HashMap<&'d str, &'d FragmentDefinition<'a, String>>;

/// Answers one GraphQL request. `api` is the `/api/2.0/mlflow` router the resolvers call.
pub async fn handle(api: Router, method: Method, query: Option<String>, body: Bytes) -> Response {
    let request: Value = if method == Method::GET {
        crate::request::query_to_json(query.as_deref().unwrap_or(""))
    } else {
        match crate::request::body_to_json(&body) {
            Ok(v) => v,
            Err(e) => return answer(StatusCode::BAD_REQUEST, Value::Null, vec![e.0.message]),
        }
    };
    let Some(text) = request.get("query").and_then(Value::as_str) else {
        return answer(
            StatusCode::BAD_REQUEST,
            Value::Null,
            vec!["Must provide query string.".into()],
        );
    };
    let variables = match request.get("variables") {
        Some(Value::Object(m)) => m.clone(),
        // GET sends them as a JSON string.
        Some(Value::String(s)) if !s.is_empty() => match serde_json::from_str(s) {
            Ok(Value::Object(m)) => m,
            _ => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    Value::Null,
                    vec!["Variables are invalid JSON.".into()],
                );
            }
        },
        _ => Map::new(),
    };
    let operation = request.get("operationName").and_then(Value::as_str);
    let doc = match graphql_parser::parse_query::<String>(text) {
        Ok(doc) => doc,
        Err(e) => {
            let msg = e.to_string();
            return answer(
                StatusCode::BAD_REQUEST,
                Value::Null,
                vec![format!("Syntax Error: {}", msg.trim())],
            );
        }
    };
    let (data, errors) = execute(&api, &doc, operation, &variables).await;
    answer(StatusCode::OK, data, errors)
}

fn answer(status: StatusCode, data: Value, errors: Vec<String>) -> Response {
    let errors = if errors.is_empty() {
        Value::Null
    } else {
        json!(errors)
    };
    (
        status,
        axum::Json(json!({ "data": data, "errors": errors })),
    )
        .into_response()
}

/// Validates and runs the operation: `(data, errors)`.
async fn execute(
    api: &Router,
    doc: &Doc<'_>,
    operation_name: Option<&str>,
    variables: &Map<String, Value>,
) -> (Value, Vec<String>) {
    let fragments: Fragments = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Fragment(f) => Some((f.name.as_str(), f)),
            Definition::Operation(_) => None,
        })
        .collect();
    let operations: Vec<&OperationDefinition<String>> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Operation(o) => Some(o),
            Definition::Fragment(_) => None,
        })
        .collect();
    let name_of = |o: &OperationDefinition<String>| match o {
        OperationDefinition::Query(q) => q.name.clone(),
        OperationDefinition::Mutation(m) => m.name.clone(),
        OperationDefinition::Subscription(s) => s.name.clone(),
        OperationDefinition::SelectionSet(_) => None,
    };
    let op = match operation_name {
        Some(name) => operations
            .iter()
            .find(|o| name_of(o).as_deref() == Some(name))
            .copied()
            .ok_or_else(|| format!("Unknown operation named '{name}'.")),
        None if operations.len() == 1 => Ok(operations[0]),
        None if operations.is_empty() => Err("Must provide an operation.".to_string()),
        None => {
            Err("Must provide operation name if query contains multiple operations.".to_string())
        }
    };
    let op = match op {
        Ok(op) => op,
        Err(e) => return (Value::Null, vec![e]),
    };
    let (root, selection, var_defs) = match op {
        OperationDefinition::SelectionSet(s) => ("Query", s, &[][..]),
        OperationDefinition::Query(q) => ("Query", &q.selection_set, &q.variable_definitions[..]),
        OperationDefinition::Mutation(m) => {
            ("Mutation", &m.selection_set, &m.variable_definitions[..])
        }
        OperationDefinition::Subscription(_) => {
            return (
                Value::Null,
                vec!["Schema is not configured to execute subscription operation.".into()],
            );
        }
    };
    if let Err(e) = check_safety(selection, &fragments) {
        return (Value::Null, vec![e]);
    }
    // Variables: given values, else defaults; a required one must be given.
    let mut vars = Map::new();
    for def in var_defs {
        let given = variables.get(&def.name).filter(|v| !v.is_null()).cloned();
        let value = match (given, &def.default_value) {
            (Some(v), _) => v,
            (None, Some(default)) => match literal(default, &Map::new()) {
                Ok(v) => v,
                Err(e) => return (Value::Null, vec![e]),
            },
            (None, None) => {
                if matches!(def.var_type, Type::NonNullType(_)) {
                    return (
                        Value::Null,
                        vec![format!(
                            "Variable '${}' of required type '{}' was not provided.",
                            def.name,
                            type_text(&def.var_type)
                        )],
                    );
                }
                Value::Null
            }
        };
        vars.insert(def.name.clone(), value);
    }
    let ctx = Ctx {
        fragments: &fragments,
        vars: &vars,
    };
    if let Err(e) = ctx.validate(root, selection, 1) {
        return (Value::Null, vec![e]);
    }
    let mut data = Map::new();
    let mut errors = Vec::new();
    for (key, fields) in ctx.collect(root, selection) {
        let field = fields[0];
        if field.name == "__typename" {
            data.insert(key, json!(root));
            continue;
        }
        let Some((_, _, ty)) = find_field(root, &field.name) else {
            continue;
        };
        let Kind::Object(type_name) = ty.kind else {
            continue;
        };
        let subs: Vec<&Sel> = fields.iter().map(|f| &f.selection_set).collect();
        match resolve_root(api, &ctx, field).await {
            Ok(mut value) => {
                if type_name == "MlflowGetRunResponse" || type_name == "MlflowSearchRunsResponse" {
                    extend_runs(api, &ctx, type_name, &subs, &mut value, &mut errors).await;
                }
                data.insert(key, ctx.project(type_name, &value, &subs));
            }
            Err(e) => {
                data.insert(key, Value::Null);
                errors.push(e);
            }
        }
    }
    (Value::Object(data), errors)
}

/// `graphql_no_batching.check_query_safety`: depth, total selections, root fields, aliases.
fn check_safety<'a>(selection: &Sel<'a>, fragments: &Fragments<'_, 'a>) -> Result<(), String> {
    let mut stack = vec![(selection, 1usize, Vec::<&str>::new())];
    let (mut root_fields, mut max_aliases, mut total) = (0usize, 0usize, 0usize);
    while let Some((set, depth, visited)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(format!("Query exceeds maximum depth of {MAX_DEPTH}"));
        }
        let mut fields = Vec::new();
        let mut aliases = 0;
        let mut queue: Vec<&Selection<String>> = set.items.iter().collect();
        let mut seen = visited.clone();
        while let Some(s) = queue.pop() {
            match s {
                Selection::Field(f) => {
                    aliases += usize::from(f.alias.is_some());
                    fields.push(f);
                }
                Selection::InlineFragment(i) => queue.extend(i.selection_set.items.iter()),
                Selection::FragmentSpread(s) => {
                    if !seen.contains(&s.fragment_name.as_str()) {
                        seen.push(s.fragment_name.as_str());
                        if let Some(def) = fragments.get(s.fragment_name.as_str()) {
                            queue.extend(def.selection_set.items.iter());
                        }
                    }
                }
            }
        }
        for f in fields {
            if depth == 1 {
                root_fields += 1;
            }
            if !f.selection_set.items.is_empty() {
                stack.push((&f.selection_set, depth + 1, visited.clone()));
            }
            total += 1;
            if total > MAX_SELECTIONS {
                return Err(format!(
                    "Query exceeds maximum total selections of {MAX_SELECTIONS}"
                ));
            }
        }
        max_aliases = max_aliases.max(aliases);
    }
    for (count, what, var) in [
        (
            root_fields,
            "root fields",
            "MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS",
        ),
        (max_aliases, "aliases", "MLFLOW_SERVER_GRAPHQL_MAX_ALIASES"),
    ] {
        let limit = env_limit(var);
        if count > limit {
            return Err(format!(
                "GraphQL queries should have at most {limit} {what}, got {count} {what}. To \
                 increase the limit, set the {var} environment variable."
            ));
        }
    }
    Ok(())
}

/// A variable's type as written (`MlflowGetRunInput!`, `[String]`).
fn type_text(ty: &Type<String>) -> String {
    match ty {
        Type::NamedType(name) => name.clone(),
        Type::ListType(inner) => format!("[{}]", type_text(inner)),
        Type::NonNullType(inner) => format!("{}!", type_text(inner)),
    }
}

fn find_field(type_name: &str, name: &str) -> Option<&'static schema::Field> {
    schema::object_fields(type_name)?
        .iter()
        .find(|(n, _, _)| *n == name)
}

fn kind_name(ty: Ty) -> String {
    let base = match ty.kind {
        Kind::String => "String",
        Kind::Float => "Float",
        Kind::Boolean => "Boolean",
        Kind::Long => "LongString",
        Kind::Enum(_) => "Enum",
        Kind::Object(n) => n,
    };
    if ty.list {
        format!("[{base}!]")
    } else {
        base.to_string()
    }
}

/// A literal (with variables substituted) as JSON.
fn literal(value: &GqlValue<String>, vars: &Map<String, Value>) -> Result<Value, String> {
    Ok(match value {
        GqlValue::Variable(name) => vars
            .get(name)
            .cloned()
            .ok_or_else(|| format!("Variable '${name}' is not defined."))?,
        GqlValue::Int(n) => n
            .as_i64()
            .map(Value::from)
            .ok_or_else(|| "Int cannot represent a non 32-bit signed integer value.".to_string())?,
        GqlValue::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        GqlValue::String(s) => Value::String(s.clone()),
        GqlValue::Boolean(b) => Value::Bool(*b),
        GqlValue::Null => Value::Null,
        GqlValue::Enum(e) => Value::String(e.clone()),
        GqlValue::List(items) => Value::Array(
            items
                .iter()
                .map(|i| literal(i, vars))
                .collect::<Result<_, _>>()?,
        ),
        GqlValue::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), literal(v, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

struct Ctx<'d, 'a> {
    fragments: &'d Fragments<'d, 'a>,
    vars: &'d Map<String, Value>,
}

impl<'d, 'a> Ctx<'d, 'a> {
    /// `@skip(if: ...)` and `@include(if: ...)`.
    fn included(&self, directives: &[Directive<'a, String>]) -> bool {
        directives.iter().all(|d| {
            let flag = d
                .arguments
                .iter()
                .find(|(n, _)| n == "if")
                .and_then(|(_, v)| literal(v, self.vars).ok())
                .and_then(|v| v.as_bool());
            !matches!(
                (d.name.as_str(), flag),
                ("skip", Some(true)) | ("include", Some(false))
            )
        })
    }

    fn applies(&self, condition: Option<&TypeCondition<'a, String>>, type_name: &str) -> bool {
        match condition {
            None => true,
            Some(TypeCondition::On(t)) => t == type_name,
        }
    }

    /// The fields of a selection set on `type_name`, by response key in first-seen order, with
    /// fragments expanded (GraphQL's CollectFields).
    fn collect<'s>(&self, type_name: &str, set: &'s Sel<'a>) -> Vec<(String, Vec<&'s GField<'a>>)>
    where
        'd: 's,
    {
        let mut out: Vec<(String, Vec<&'s GField<'a>>)> = Vec::new();
        let mut visited = Vec::new();
        self.collect_into(type_name, set, &mut out, &mut visited);
        out
    }

    fn collect_into<'s>(
        &self,
        type_name: &str,
        set: &'s Sel<'a>,
        out: &mut Vec<(String, Vec<&'s GField<'a>>)>,
        visited: &mut Vec<&'s str>,
    ) where
        'd: 's,
    {
        for item in &set.items {
            match item {
                Selection::Field(f) => {
                    if !self.included(&f.directives) {
                        continue;
                    }
                    let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
                    match out.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, fields)) => fields.push(f),
                        None => out.push((key, vec![f])),
                    }
                }
                Selection::InlineFragment(i) => {
                    if self.included(&i.directives)
                        && self.applies(i.type_condition.as_ref(), type_name)
                    {
                        self.collect_into(type_name, &i.selection_set, out, visited);
                    }
                }
                Selection::FragmentSpread(s) => {
                    let name = s.fragment_name.as_str();
                    if !self.included(&s.directives) || visited.contains(&name) {
                        continue;
                    }
                    visited.push(name);
                    if let Some(def) = self.fragments.get(name)
                        && self.applies(Some(&def.type_condition), type_name)
                    {
                        self.collect_into(type_name, &def.selection_set, out, visited);
                    }
                }
            }
        }
    }

    /// GraphQL validation of the parts MLflow's queries use: every field exists on its type,
    /// objects have a selection and scalars none, fragments are known, arguments are known.
    fn validate(&self, type_name: &str, set: &Sel<'a>, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH + 1 {
            return Err(format!("Query exceeds maximum depth of {MAX_DEPTH}"));
        }
        for item in &set.items {
            match item {
                Selection::Field(f) => self.validate_field(type_name, f, depth)?,
                Selection::InlineFragment(i) => {
                    if let Some(TypeCondition::On(t)) = &i.type_condition
                        && schema::object_fields(t).is_none()
                    {
                        return Err(format!("Unknown type '{t}'."));
                    }
                    self.validate(type_name, &i.selection_set, depth)?;
                }
                Selection::FragmentSpread(s) => {
                    let def = self
                        .fragments
                        .get(s.fragment_name.as_str())
                        .ok_or_else(|| format!("Unknown fragment '{}'.", s.fragment_name))?;
                    let TypeCondition::On(t) = &def.type_condition;
                    if schema::object_fields(t).is_none() {
                        return Err(format!("Unknown type '{t}'."));
                    }
                    if t == type_name {
                        self.validate(type_name, &def.selection_set, depth + 1)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_field(&self, type_name: &str, f: &GField<'a>, depth: usize) -> Result<(), String> {
        if f.name == "__typename" {
            return Ok(());
        }
        let (_, _, ty) = find_field(type_name, &f.name)
            .ok_or_else(|| format!("Cannot query field '{}' on type '{type_name}'.", f.name))?;
        let root = matches!(type_name, "Query" | "Mutation");
        for (arg, _) in &f.arguments {
            let known = root && schema::root_argument(&f.name).is_some_and(|(a, _)| a == arg);
            if !known {
                return Err(format!(
                    "Unknown argument '{arg}' on field '{type_name}.{}'.",
                    f.name
                ));
            }
        }
        match ty.kind {
            Kind::Object(inner) => {
                if f.selection_set.items.is_empty() {
                    return Err(format!(
                        "Field '{}' of type '{}' must have a selection of subfields. Did you \
                         mean '{} {{ ... }}'?",
                        f.name,
                        kind_name(*ty),
                        f.name
                    ));
                }
                self.validate(inner, &f.selection_set, depth + 1)
            }
            _ if !f.selection_set.items.is_empty() => Err(format!(
                "Field '{}' must not have a selection since type '{}' has no subfields.",
                f.name,
                kind_name(*ty)
            )),
            _ => Ok(()),
        }
    }

    /// Shapes `value` (the proto's JSON) by the selection sets on `type_name`.
    fn project(&self, type_name: &str, value: &Value, sets: &[&Sel<'a>]) -> Value {
        let empty = Map::new();
        let object = value.as_object().unwrap_or(&empty);
        let mut out = Map::new();
        let mut merged: Vec<(String, Vec<&GField<'a>>)> = Vec::new();
        for set in sets {
            for (key, fields) in self.collect(type_name, set) {
                match merged.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, all)) => all.extend(fields),
                    None => merged.push((key, fields)),
                }
            }
        }
        for (key, fields) in merged {
            let name = fields[0].name.as_str();
            if name == "__typename" {
                out.insert(key, json!(type_name));
                continue;
            }
            let Some((_, json_key, ty)) = find_field(type_name, name) else {
                continue;
            };
            let subs: Vec<&Sel<'a>> = fields.iter().map(|f| &f.selection_set).collect();
            let v = match object.get(*json_key) {
                Some(v) if !v.is_null() => self.convert(*ty, v, &subs),
                // graphene reads a proto: an unset field is its default; `apiError` is not in
                // the proto and stays null.
                _ if *json_key == "apiError" => Value::Null,
                _ if ty.list => json!([]),
                _ => self.default_of(*ty, &subs),
            };
            out.insert(key, v);
        }
        Value::Object(out)
    }

    fn convert(&self, ty: Ty, value: &Value, subs: &[&Sel<'a>]) -> Value {
        if ty.list {
            let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
            let one = Ty { list: false, ..ty };
            return Value::Array(items.iter().map(|v| self.convert(one, v, subs)).collect());
        }
        match ty.kind {
            Kind::Object(name) => self.project(name, value, subs),
            Kind::Long => match value {
                Value::Number(n) => Value::String(n.to_string()),
                other => other.clone(),
            },
            // A NaN metric is null (MLflow's MlflowMetricExtension), as is any non-number.
            Kind::Float => match value {
                Value::Number(_) => value.clone(),
                _ => Value::Null,
            },
            Kind::String => match value {
                Value::String(_) => value.clone(),
                Value::Number(n) => Value::String(n.to_string()),
                Value::Bool(b) => Value::String(b.to_string()),
                _ => Value::Null,
            },
            Kind::Boolean | Kind::Enum(_) => value.clone(),
        }
    }

    fn default_of(&self, ty: Ty, subs: &[&Sel<'a>]) -> Value {
        match ty.kind {
            Kind::String => json!(""),
            Kind::Long => json!("0"),
            Kind::Float => json!(0.0),
            Kind::Boolean => json!(false),
            Kind::Enum(default) => json!(default),
            Kind::Object(name) => self.project(name, &json!({}), subs),
        }
    }

    /// A root field's `input` argument as the proto message's JSON (snake_case names).
    fn input(&self, field: &GField<'a>) -> Result<Value, String> {
        let Some((arg_name, input_type)) = schema::root_argument(&field.name) else {
            return Ok(json!({}));
        };
        let given = field
            .arguments
            .iter()
            .find(|(n, _)| n == arg_name)
            .map(|(_, v)| literal(v, self.vars))
            .transpose()?
            .unwrap_or(Value::Null);
        let Some(input_type) = input_type else {
            return Ok(given);
        };
        let Value::Object(given) = given else {
            return Ok(json!({}));
        };
        let fields = schema::input_fields(input_type).unwrap_or_default();
        let mut out = Map::new();
        for (k, v) in given {
            let (_, proto) = fields
                .iter()
                .find(|(g, _)| *g == k)
                .ok_or_else(|| format!("Field '{k}' is not defined by type '{input_type}'."))?;
            if !v.is_null() {
                out.insert((*proto).to_string(), v);
            }
        }
        Ok(Value::Object(out))
    }
}

/// MLflow's resolvers: the REST handler of the same message.
async fn resolve_root<'d, 'a>(
    api: &Router,
    ctx: &Ctx<'d, 'a>,
    field: &GField<'a>,
) -> Result<Value, String> {
    let input = ctx.input(field)?;
    match field.name.as_str() {
        "test" | "testMutation" => Ok(json!({ "output": input })),
        "mlflowGetExperiment" => rest(api, Method::GET, "/experiments/get", &input).await,
        "mlflowGetRun" => rest(api, Method::GET, "/runs/get", &input).await,
        "mlflowGetMetricHistoryBulkInterval" => {
            rest(
                api,
                Method::GET,
                "/metrics/get-history-bulk-interval",
                &input,
            )
            .await
        }
        "mlflowListArtifacts" => rest(api, Method::GET, "/artifacts/list", &input).await,
        "mlflowSearchModelVersions" => {
            rest(api, Method::GET, "/model-versions/search", &input).await
        }
        "mlflowSearchRuns" => rest(api, Method::POST, "/runs/search", &input).await,
        "mlflowSearchDatasets" => {
            rest(api, Method::POST, "/experiments/search-datasets", &input).await
        }
        other => Err(format!("Cannot query field '{other}'.")),
    }
}

/// MLflow's `MlflowRunExtension`: a run's experiment and its registered versions, fetched only
/// when the query asks for them.
async fn extend_runs<'d, 'a>(
    api: &Router,
    ctx: &Ctx<'d, 'a>,
    response_type: &str,
    subs: &[&Sel<'a>],
    value: &mut Value,
    errors: &mut Vec<String>,
) {
    let runs_key = if response_type == "MlflowGetRunResponse" {
        "run"
    } else {
        "runs"
    };
    let mut wanted = (false, false);
    for set in subs {
        for (_, fields) in ctx.collect(response_type, set) {
            if fields[0].name != runs_key {
                continue;
            }
            for f in fields {
                for (_, run_fields) in ctx.collect("MlflowRunExtension", &f.selection_set) {
                    wanted.0 |= run_fields[0].name == "experiment";
                    wanted.1 |= run_fields[0].name == "modelVersions";
                }
            }
        }
    }
    if wanted == (false, false) {
        return;
    }
    let runs: Vec<&mut Value> = match value.get_mut(runs_key) {
        Some(Value::Array(runs)) => runs.iter_mut().collect(),
        Some(run @ Value::Object(_)) => vec![run],
        _ => return,
    };
    for run in runs {
        let info = run.get("info").cloned().unwrap_or_default();
        if wanted.0 {
            let id = info.get("experiment_id").cloned().unwrap_or_default();
            match rest(
                api,
                Method::GET,
                "/experiments/get",
                &json!({ "experiment_id": id }),
            )
            .await
            {
                Ok(v) => run["experiment"] = v.get("experiment").cloned().unwrap_or_default(),
                Err(e) => errors.push(e),
            }
        }
        if wanted.1 {
            let run_id = info.get("run_id").and_then(Value::as_str).unwrap_or("");
            let filter = json!({ "filter": format!("run_id='{run_id}'") });
            match rest(api, Method::GET, "/model-versions/search", &filter).await {
                Ok(v) => {
                    run["model_versions"] = v.get("model_versions").cloned().unwrap_or(json!([]))
                }
                Err(e) => errors.push(e),
            }
        }
    }
}

/// Calls a REST endpoint of `api` with `input` (a query string for GET, the JSON body
/// otherwise): its JSON answer, or its error message.
async fn rest(api: &Router, method: Method, path: &str, input: &Value) -> Result<Value, String> {
    let (uri, body) = if method == Method::GET {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(map) = input.as_object() {
            for (k, v) in map {
                let items = match v {
                    Value::Array(items) => items.clone(),
                    other => vec![other.clone()],
                };
                for item in items {
                    let text = match item {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    q.append_pair(k, &text);
                }
            }
        }
        (format!("{path}?{}", q.finish()), Body::empty())
    } else {
        (path.to_string(), Body::from(input.to_string()))
    };
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body)
        .map_err(|e| e.to_string())?;
    let resp = api.clone().oneshot(req).await.map_err(|e| format!("{e}"))?;
    let ok = resp.status().is_success();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if ok {
        Ok(value)
    } else {
        Err(value
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("internal server error")
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(query: &str, vars: Value) -> (Value, Vec<String>) {
        let api: Router = Router::new()
            .route(
                "/runs/get",
                axum::routing::get(
                    |q: axum::extract::Query<HashMap<String, String>>| async move {
                        if q.get("run_id").map(String::as_str) == Some("missing") {
                            return (
                                StatusCode::NOT_FOUND,
                                axum::Json(json!({"error_code": "RESOURCE_DOES_NOT_EXIST",
                                              "message": "Run with id=missing not found"})),
                            );
                        }
                        (
                            StatusCode::OK,
                            axum::Json(json!({"run": {
                                "info": {"run_id": q["run_id"], "run_uuid": q["run_id"],
                                         "experiment_id": "0", "status": "FINISHED",
                                         "start_time": 1700000000000_i64},
                                "data": {"metrics": [{"key": "m", "value": "NaN", "timestamp": 5,
                                                      "step": 1}]}
                            }})),
                        )
                    },
                ),
            )
            .route(
                "/experiments/get",
                axum::routing::get(|| async {
                    axum::Json(json!({"experiment": {"experiment_id": "0", "name": "Default"}}))
                }),
            )
            .route(
                "/model-versions/search",
                axum::routing::get(|| async { axum::Json(json!({})) }),
            );
        let doc = graphql_parser::parse_query::<String>(query).unwrap();
        execute(&api, &doc, None, vars.as_object().unwrap()).await
    }

    #[tokio::test]
    async fn selections_variables_aliases_and_fragments() {
        let (data, errors) = run(
            r#"query GetRun($data: MlflowGetRunInput!) @component(name: "x") {
                 mlflowGetRun(input: $data) {
                   __typename
                   apiError { code message }
                   run {
                     info { id: runUuid status startTime endTime runName }
                     ...Extra
                     data { metrics { key value step timestamp } params { key } }
                     modelVersions { name }
                   }
                 }
               }
               fragment Extra on MlflowRunExtension {
                 experiment { name tags { key } }
                 outputs @skip(if: true) { modelOutputs { modelId } }
               }"#,
            json!({"data": {"runId": "abc"}}),
        )
        .await;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            data,
            json!({"mlflowGetRun": {
                "__typename": "MlflowGetRunResponse",
                "apiError": null,
                "run": {
                    "info": {"id": "abc", "status": "FINISHED", "startTime": "1700000000000",
                             "endTime": "0", "runName": ""},
                    "experiment": {"name": "Default", "tags": []},
                    "data": {"metrics": [{"key": "m", "value": null, "step": "1",
                                          "timestamp": "5"}],
                             "params": []},
                    "modelVersions": []
                }
            }})
        );
    }

    #[tokio::test]
    async fn errors_as_mlflow_answers_them() {
        let (data, errors) = run(
            "{ mlflowGetRun(input: {runId: \"missing\"}) { run { info { runId } } } }",
            json!({}),
        )
        .await;
        assert_eq!(data, json!({"mlflowGetRun": null}));
        assert_eq!(errors, vec!["Run with id=missing not found"]);

        let (data, errors) = run("{ mlflowGetRun(input: {}) { nope } }", json!({})).await;
        assert_eq!(data, Value::Null);
        assert_eq!(
            errors,
            vec!["Cannot query field 'nope' on type 'MlflowGetRunResponse'."]
        );

        let (_, errors) = run(
            "{ mlflowGetRun(input: {bad: 1}) { apiError { code } } }",
            json!({}),
        )
        .await;
        assert_eq!(
            errors,
            vec!["Field 'bad' is not defined by type 'MlflowGetRunInput'."]
        );

        let (_, errors) = run(
            "query Q($d: MlflowGetRunInput!) { mlflowGetRun(input: $d) { run { info { runId } } } }",
            json!({}),
        )
        .await;
        assert_eq!(
            errors,
            vec!["Variable '$d' of required type 'MlflowGetRunInput!' was not provided."]
        );

        let (_, errors) = run("{ mlflowGetRun(input: {}) { run } }", json!({})).await;
        assert!(errors[0].contains("must have a selection of subfields"));
    }
}
