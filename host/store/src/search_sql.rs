//! Compiles parsed searches into SQL for either backend. Every value and key is a bound
//! parameter; only fixed column names, table aliases and operators are written into the SQL
//! text. What the two backends spell differently is decided by the [`Dialect`] of the
//! [`Binder`] that collects the parameters.
//!
//! String comparisons follow MLflow: `=`, `!=` and `LIKE` are case-sensitive, `ILIKE` is not. In
//! both, `%` is any run of characters and `_` one character. MLflow's SQL store writes
//! SQLAlchemy's `column.like(value)` / `column.ilike(value)`, with no `ESCAPE` clause, so what
//! `\` means is each backend's default (`mlflow.utils.search_utils.get_sql_comparison_func`):
//! - SQLite: a plain character, as SQLite's `LIKE` has no escape unless one is named. MLflow
//!   turns `PRAGMA case_sensitive_like` on and writes `ILIKE` as `lower(..) LIKE lower(..)`;
//!   here SQLite's `LIKE` keeps ignoring ASCII case, so `LIKE` is compiled to `GLOB` with the
//!   pattern translated (see [`like_to_glob`]), and `ILIKE` to SQLite's `LIKE` (ASCII case
//!   folding only, as `lower` has no Unicode case folding without ICU).
//! - PostgreSQL: the escape, making the next character literal (`\%`, `\_`, `\\`). It has
//!   both `LIKE` and `ILIKE`; its text columns use the C collation, so they compare and sort
//!   byte by byte as SQLite's do, and `ILIKE` folds ASCII case only there too.
//!
//! Lists (`IN`) are one bound parameter: a JSON array read by `json_each` in SQLite, an array
//! compared with `= ANY` in PostgreSQL. PostgreSQL's placeholders are `$n` with an explicit
//! cast, so that a float compared with a BIGINT column (`start_time > 1.5`) is a float.

use wasmflow_core::search::{Comparison, Entity, Op, OrderBy, Value};
use wasmflow_core::{Error, Result};

use crate::{DatasetFilter, LoggedModelSearch};

/// The tag of a run's dataset input naming its context (`mlflow.utils.mlflow_tags`).
const DATASET_CONTEXT_TAG: &str = "mlflow.data.context";

/// The SQL spelling a query is compiled for.
#[allow(
    dead_code,
    reason = "Postgres is compiled for by the PostgreSQL store's modules"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound parameter either driver can send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bound {
    Text(String),
    Int(i64),
    Real(f64),
    /// A text NULL (`IS ?` / `IS NOT DISTINCT FROM`).
    Null,
    TextList(Vec<String>),
    IntList(Vec<i64>),
}

impl Bound {
    /// The value as SQLite stores it: lists as JSON text, read with `json_each`.
    pub(crate) fn into_sqlite(self) -> rusqlite::types::Value {
        use rusqlite::types::Value as V;
        match self {
            Bound::Text(s) => V::Text(s),
            Bound::Int(i) => V::Integer(i),
            Bound::Real(f) => V::Real(f),
            Bound::Null => V::Null,
            Bound::TextList(items) => V::Text(json_text(&items)),
            Bound::IntList(items) => V::Text(json_text(&items)),
        }
    }

    /// PostgreSQL's type of the value: the name its placeholder is cast to, and the driver's
    /// type, sent with the value so that a query needs no round trip to prepare it.
    fn pg_type(&self) -> (&'static str, tokio_postgres::types::Type) {
        use tokio_postgres::types::Type;
        match self {
            Bound::Text(_) | Bound::Null => ("text", Type::TEXT),
            Bound::Int(_) => ("bigint", Type::INT8),
            Bound::Real(_) => ("float8", Type::FLOAT8),
            Bound::TextList(_) => ("text[]", Type::TEXT_ARRAY),
            Bound::IntList(_) => ("bigint[]", Type::INT8_ARRAY),
        }
    }
}

fn json_text<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

impl rusqlite::ToSql for Bound {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Bound::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            other => ToSqlOutput::Owned(other.clone().into_sqlite()),
        })
    }
}

impl tokio_postgres::types::ToSql for Bound {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        match self {
            Bound::Text(s) => s.to_sql(ty, out),
            Bound::Int(i) => i.to_sql(ty, out),
            Bound::Real(f) => f.to_sql(ty, out),
            Bound::Null => Ok(tokio_postgres::types::IsNull::Yes),
            Bound::TextList(items) => items.to_sql(ty, out),
            Bound::IntList(items) => items.to_sql(ty, out),
        }
    }

    /// Each placeholder is cast to its value's type (see [`Bound::pg_type`]); the inner
    /// `to_sql` checks the type again.
    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A compiled query: SQL text and its parameters in placeholder order.
#[derive(Debug)]
pub(crate) struct Query {
    pub sql: String,
    pub params: Vec<Bound>,
}

impl Query {
    /// The parameters as tokio-postgres takes them.
    #[allow(dead_code, reason = "used by the PostgreSQL store's modules")]
    pub(crate) fn pg_params(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect()
    }

    /// The parameters with their types, as tokio-postgres's `query_typed` takes them: parse,
    /// bind and execute go to the server in one message, where an untyped query first waits
    /// for the server to describe its statement.
    #[allow(dead_code, reason = "used by the PostgreSQL store's modules")]
    pub(crate) fn pg_typed_params(
        &self,
    ) -> Vec<(
        &(dyn tokio_postgres::types::ToSql + Sync),
        tokio_postgres::types::Type,
    )> {
        self.params
            .iter()
            .map(|p| {
                (
                    p as &(dyn tokio_postgres::types::ToSql + Sync),
                    p.pg_type().1,
                )
            })
            .collect()
    }
}

/// Collects bound parameters and writes their placeholders in the dialect's spelling. SQLite's
/// `?` are numbered by their place in the text, so conditions must be bound in the order their
/// SQL is written; PostgreSQL's `$n` carry their number.
pub(crate) struct Binder {
    pub dialect: Dialect,
    pub params: Vec<Bound>,
}

impl Binder {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            params: Vec::new(),
        }
    }

    /// Binds `value` and returns its placeholder.
    pub(crate) fn bind(&mut self, value: Bound) -> String {
        let placeholder = match self.dialect {
            Dialect::Sqlite => "?".to_string(),
            Dialect::Postgres => format!("${}::{}", self.params.len() + 1, value.pg_type().0),
        };
        self.params.push(value);
        placeholder
    }

    pub(crate) fn text(&mut self, s: impl Into<String>) -> String {
        self.bind(Bound::Text(s.into()))
    }

    /// `column [NOT] IN list`, the list one bound parameter.
    pub(crate) fn in_list(&mut self, column: &str, not: bool, list: Bound) -> String {
        let p = self.bind(list);
        match (self.dialect, not) {
            (Dialect::Sqlite, false) => format!("{column} IN (SELECT value FROM json_each({p}))"),
            (Dialect::Sqlite, true) => {
                format!("{column} NOT IN (SELECT value FROM json_each({p}))")
            }
            (Dialect::Postgres, false) => format!("{column} = ANY({p})"),
            (Dialect::Postgres, true) => format!("{column} <> ALL({p})"),
        }
    }

    /// `column` equals `value`, NULL matching NULL.
    fn same(&mut self, column: &str, value: Option<String>) -> String {
        let p = self.bind(value.map_or(Bound::Null, Bound::Text));
        match self.dialect {
            Dialect::Sqlite => format!("{column} IS {p}"),
            Dialect::Postgres => format!("{column} IS NOT DISTINCT FROM {p}"),
        }
    }

    /// `LIMIT ? OFFSET ?`, both bound.
    pub(crate) fn page(&mut self, limit: usize, offset: u64) -> String {
        let limit = self.bind(Bound::Int(to_i64(limit)));
        let offset = self.bind(Bound::Int(to_i64(offset)));
        format!("LIMIT {limit} OFFSET {offset}")
    }

    pub(crate) fn finish(self, sql: String) -> Query {
        Query {
            sql,
            params: self.params,
        }
    }
}

/// SQL for comparing `column` with a bound value, as MLflow compares (see the module's notes on
/// case).
pub(crate) fn compare(column: &str, op: Op, value: &Value, b: &mut Binder) -> Result<String> {
    let wrong_value = || {
        Err(Error::invalid(format!(
            "the comparator '{}' does not take this kind of value",
            op.as_str()
        )))
    };
    let bound = match (op, value) {
        (Op::IsNull, _) => return Ok(format!("{column} IS NULL")),
        (Op::IsNotNull, _) => return Ok(format!("{column} IS NOT NULL")),
        (Op::In | Op::NotIn, Value::List(items)) => {
            return Ok(b.in_list(column, op == Op::NotIn, Bound::TextList(items.clone())));
        }
        (Op::Like, Value::Str(s)) => {
            return Ok(match b.dialect {
                Dialect::Sqlite => format!("{column} GLOB {}", b.text(like_to_glob(s))),
                Dialect::Postgres => format!("{column} LIKE {}", b.text(like_pattern(s))),
            });
        }
        (Op::ILike, Value::Str(s)) => {
            return Ok(match b.dialect {
                Dialect::Sqlite => format!("{column} LIKE {}", b.text(s.clone())),
                Dialect::Postgres => format!("{column} ILIKE {}", b.text(like_pattern(s))),
            });
        }
        // MLflow's SQL store: SQLAlchemy's `op("REGEXP")` on SQLite (a function the store
        // registers, see `sqlite::register_regexp`) and `~` on PostgreSQL.
        (Op::RLike, Value::Str(s)) => {
            let p = b.text(s.clone());
            return Ok(match b.dialect {
                Dialect::Sqlite => format!("{column} REGEXP {p}"),
                Dialect::Postgres => format!("{column} ~ {p}"),
            });
        }
        (Op::In | Op::NotIn | Op::Like | Op::ILike | Op::RLike, _) => return wrong_value(),
        (_, Value::Str(s)) => Bound::Text(s.clone()),
        (_, Value::Number(n)) => Bound::Real(*n),
        (_, Value::List(_) | Value::None) => return wrong_value(),
    };
    let p = b.bind(bound);
    Ok(format!("{column} {} {p}", op.as_str()))
}

/// Translates a LIKE pattern without escape (`%` and `_`; `\` is itself, as in SQLite's `LIKE`
/// without `ESCAPE`) into a GLOB pattern, escaping GLOB's own metacharacters as one-character
/// classes.
fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    for c in pattern.chars() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            other => push_literal(&mut out, other),
        }
    }
    out
}

fn push_literal(out: &mut String, c: char) {
    if matches!(c, '*' | '?' | '[' | ']') {
        out.push('[');
        out.push(c);
        out.push(']');
    } else {
        out.push(c);
    }
}

/// A PostgreSQL LIKE pattern (`\` is its escape). PostgreSQL rejects a pattern ending in a lone
/// escape (so MLflow's search fails there), and such a trailing `\` is doubled here to stand
/// for itself, as it does on SQLite.
fn like_pattern(pattern: &str) -> String {
    let mut escaped = false;
    for c in pattern.chars() {
        escaped = !escaped && c == '\\';
    }
    if escaped {
        format!("{pattern}\\")
    } else {
        pattern.to_string()
    }
}

fn to_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

fn entity_name(entity: Entity) -> &'static str {
    match entity {
        Entity::Metric => "metric",
        Entity::Param => "parameter",
        Entity::Tag => "tag",
        Entity::Attribute => "attribute",
        Entity::Dataset => "dataset",
    }
}

fn direction(ascending: bool) -> &'static str {
    if ascending { "ASC" } else { "DESC" }
}

// ---------------------------------------------------------------------------------------------
// Runs

fn run_attribute_column(key: &str) -> Result<&'static str> {
    Ok(match key {
        "run_id" => "r.run_uuid",
        "run_name" => "r.name",
        "status" => "r.status",
        "user_id" => "r.user_id",
        "artifact_uri" => "r.artifact_uri",
        "start_time" => "r.start_time",
        "end_time" => "r.end_time",
        "experiment_id" => "r.experiment_id",
        "lifecycle_stage" => "r.lifecycle_stage",
        other => return Err(Error::invalid(format!("Invalid attribute key '{other}'"))),
    })
}

/// The condition that one of a run's dataset inputs has the context `c` asks for: the input's
/// tags are a JSON list of `{key, value}`.
fn dataset_context(c: &Comparison, b: &mut Binder) -> Result<String> {
    let key = b.text(DATASET_CONTEXT_TAG);
    Ok(match b.dialect {
        Dialect::Sqlite => {
            let inner = compare("t.value ->> '$.value'", c.op, &c.value, b)?;
            format!(
                "EXISTS (SELECT 1 FROM json_each(i.tags) t \
                 WHERE t.value ->> '$.key' = {key} AND {inner})"
            )
        }
        Dialect::Postgres => {
            let inner = compare("((t.value ->> 'value') COLLATE \"C\")", c.op, &c.value, b)?;
            format!(
                "EXISTS (SELECT 1 FROM jsonb_array_elements(i.tags::jsonb) AS t(value) \
                 WHERE t.value ->> 'key' = {key} AND {inner})"
            )
        }
    })
}

/// The id of the metric key bound as `key` (a placeholder): the metric tables name keys by their
/// id in metric_keys. A key never logged has no id, and the comparison with NULL matches nothing.
fn metric_key_id(key: &str) -> String {
    format!("(SELECT metric_key_id FROM metric_keys WHERE key = {key})")
}

fn run_condition(c: &Comparison, b: &mut Binder) -> Result<String> {
    match c.entity {
        Entity::Attribute => compare(run_attribute_column(&c.key)?, c.op, &c.value, b),
        Entity::Metric => {
            let key = b.text(c.key.clone());
            let cond = compare("m.value", c.op, &c.value, b)?;
            // NaN is stored as 0 with a flag. As in MLflow's SQL store, every comparison with
            // NaN is false except `!=`, which NaN always satisfies.
            let cond = if c.op == Op::Ne {
                format!("({cond} OR m.is_nan = 1)")
            } else {
                format!("m.is_nan = 0 AND {cond}")
            };
            Ok(format!(
                "EXISTS (SELECT 1 FROM latest_metrics m WHERE m.run_key = r.run_key \
                 AND m.metric_key_id = {} AND {cond})",
                metric_key_id(&key)
            ))
        }
        Entity::Param | Entity::Tag => {
            let table = if c.entity == Entity::Param {
                "params"
            } else {
                "tags"
            };
            let key = b.text(c.key.clone());
            match c.op {
                Op::IsNull | Op::IsNotNull => {
                    let not = if c.op == Op::IsNull { "NOT " } else { "" };
                    Ok(format!(
                        "{not}EXISTS (SELECT 1 FROM {table} x WHERE x.run_uuid = r.run_uuid \
                         AND x.key = {key})"
                    ))
                }
                // `!=` too needs the key: a run without it does not match, as in MLflow.
                _ => {
                    let cond = compare("x.value", c.op, &c.value, b)?;
                    Ok(format!(
                        "EXISTS (SELECT 1 FROM {table} x WHERE x.run_uuid = r.run_uuid \
                         AND x.key = {key} AND {cond})"
                    ))
                }
            }
        }
        Entity::Dataset => {
            let cond = match c.key.as_str() {
                "name" => compare("d.name", c.op, &c.value, b)?,
                "digest" => compare("d.digest", c.op, &c.value, b)?,
                "context" => dataset_context(c, b)?,
                other => return Err(Error::invalid(format!("Invalid dataset key '{other}'"))),
            };
            Ok(format!(
                "EXISTS (SELECT 1 FROM run_dataset_inputs i \
                 JOIN datasets d ON d.dataset_uuid = i.dataset_uuid \
                 WHERE i.run_uuid = r.run_uuid AND {cond})"
            ))
        }
    }
}

/// The ORDER BY terms for one `order_by` item; metrics, params and tags are joined in as `o{i}`.
/// Runs without the value come last either way, as in MLflow.
fn run_order(i: usize, o: &OrderBy, joins: &mut String, b: &mut Binder) -> Result<String> {
    let dir = direction(o.ascending);
    let table = match o.entity {
        Entity::Attribute => {
            let column = run_attribute_column(&o.key)?;
            // end_time is the only attribute that may be missing; a bare column keeps the order
            // one an index can serve (runs_experiment_start for start_time).
            return Ok(if column == "r.end_time" {
                format!("{column} IS NULL, {column} {dir}")
            } else {
                format!("{column} {dir}")
            });
        }
        Entity::Metric => "latest_metrics",
        Entity::Param => "params",
        Entity::Tag => "tags",
        Entity::Dataset => {
            return Err(Error::invalid(
                "Invalid order_by entity: datasets cannot order runs",
            ));
        }
    };
    let key = b.text(o.key.clone());
    if o.entity == Entity::Metric {
        joins.push_str(&format!(
            " LEFT JOIN {table} o{i} ON o{i}.run_key = r.run_key AND o{i}.metric_key_id = {}",
            metric_key_id(&key)
        ));
        // As in MLflow, either way: numbers first, then NaN, then runs without the metric.
        Ok(format!(
            "o{i}.value IS NULL, o{i}.is_nan ASC, o{i}.value {dir}"
        ))
    } else {
        joins.push_str(&format!(
            " LEFT JOIN {table} o{i} ON o{i}.run_uuid = r.run_uuid AND o{i}.key = {key}"
        ));
        Ok(format!("o{i}.value IS NULL, o{i}.value {dir}"))
    }
}

/// A run search compiled to one or more queries of run ids, each in the page's order: the page
/// is their results one after the other, from `skip`, at most `take` ids.
#[derive(Debug)]
pub(crate) struct RunSearchPlan {
    pub segments: Vec<Query>,
    skip: u64,
    take: usize,
}

impl RunSearchPlan {
    /// Whether a store that has collected `have` ids so far must run the next segment.
    pub(crate) fn wants_more(&self, have: usize) -> bool {
        (have as u64) < self.skip.saturating_add(self.take as u64)
    }

    /// The page out of every id the segments returned.
    pub(crate) fn page(&self, ids: Vec<String>) -> Vec<String> {
        ids.into_iter()
            .skip(usize::try_from(self.skip).unwrap_or(usize::MAX))
            .take(self.take)
            .collect()
    }
}

/// `column` is one of `ids`: a plain equality for one id, so that an index leading with the
/// column also serves the order of what follows it (with an `IN` list the planner sorts every
/// match before taking a page).
pub(crate) fn experiment_match(column: &str, ids: &[i64], b: &mut Binder) -> String {
    match ids {
        [id] => format!("{column} = {}", b.bind(Bound::Int(*id))),
        _ => b.in_list(column, false, Bound::IntList(ids.to_vec())),
    }
}

/// One page of a run search: runs of `experiment_ids` in `stages` matching every filter, in
/// `order_by` order and then MLflow's tie-breakers (`start_time DESC`, `run_uuid ASC`), so that
/// pages are stable.
///
/// Ordered first by a metric, the search is three queries whose results follow each other, as
/// MLflow orders them: runs with a number for the metric (read in order from
/// latest_metrics_experiment_key_value, so a top-k reads about k index entries however big the
/// experiment), then runs whose value is NaN, then runs without the metric. A later segment only
/// runs when the earlier ones did not fill the page. Otherwise it is one query; with the default
/// order on one experiment, runs_experiment_start serves the order and the page is a range read.
pub(crate) fn run_search_sql(
    dialect: Dialect,
    experiment_ids: &[i64],
    stages: &[&str],
    filters: &[Comparison],
    order_by: &[OrderBy],
    limit: usize,
    offset: u64,
) -> Result<RunSearchPlan> {
    let mut seen: Vec<(Entity, &str)> = Vec::new();
    for o in order_by {
        if seen.contains(&(o.entity, o.key.as_str())) {
            return Err(Error::invalid(format!(
                "`order_by` contains duplicate fields: {} '{}'",
                entity_name(o.entity),
                o.key
            )));
        }
        seen.push((o.entity, o.key.as_str()));
    }
    let mut tie_breakers = Vec::new();
    if !seen.contains(&(Entity::Attribute, "start_time")) {
        tie_breakers.push("r.start_time DESC".to_string());
    }
    tie_breakers.push("r.run_uuid ASC".to_string());
    let query = |segment: Segment| -> Result<Query> {
        let mut b = Binder::new(dialect);
        // SQLite numbers `?` by their place in the text: the joins' keys are bound first, as
        // they come before the WHERE conditions.
        let mut joins = String::new();
        let mut rest = Vec::new();
        let first_joined = usize::from(segment != Segment::Whole);
        for (i, o) in order_by.iter().enumerate().skip(first_joined) {
            rest.push(run_order(i, o, &mut joins, &mut b)?);
        }
        let mut order = Vec::new();
        let (from, mut conditions) = match (segment, order_by.first()) {
            (Segment::Whole, _) | (_, None) => (
                "runs r",
                vec![experiment_match("r.experiment_id", experiment_ids, &mut b)],
            ),
            (Segment::Numbers | Segment::NaN, Some(first)) => {
                let experiments = experiment_match("o0.experiment_id", experiment_ids, &mut b);
                let key = b.text(first.key.clone());
                let is_nan = i32::from(segment == Segment::NaN);
                if segment == Segment::Numbers {
                    order.push(format!("o0.value {}", direction(first.ascending)));
                }
                (
                    "latest_metrics o0 JOIN runs r ON r.run_key = o0.run_key",
                    vec![
                        experiments,
                        format!("o0.metric_key_id = {}", metric_key_id(&key)),
                        format!("o0.is_nan = {is_nan}"),
                    ],
                )
            }
            (Segment::Missing, Some(first)) => {
                let experiments = experiment_match("r.experiment_id", experiment_ids, &mut b);
                let key = b.text(first.key.clone());
                (
                    "runs r",
                    vec![
                        experiments,
                        format!(
                            "NOT EXISTS (SELECT 1 FROM latest_metrics o0 \
                             WHERE o0.run_key = r.run_key AND o0.metric_key_id = {})",
                            metric_key_id(&key)
                        ),
                    ],
                )
            }
        };
        order.extend(rest);
        order.extend(tie_breakers.iter().cloned());
        conditions.push(b.in_list("r.lifecycle_stage", false, text_list(stages)));
        for c in filters {
            let on_first = c.entity == Entity::Metric
                && order_by
                    .first()
                    .is_some_and(|o| o.entity == Entity::Metric && o.key == c.key);
            match segment {
                // o0 is the run's value of that metric, a number here: compared in place, the
                // condition bounds the index range o0 is read from, instead of looking the same
                // value up again for every run.
                Segment::Numbers if on_first => {
                    conditions.push(compare("o0.value", c.op, &c.value, &mut b)?)
                }
                // The NaN segment is read only when every comparison of that metric is `!=`
                // (see below), which NaN satisfies.
                Segment::NaN if on_first => {}
                _ => conditions.push(run_condition(c, &mut b)?),
            }
        }
        let page = if segment == Segment::Whole {
            b.page(limit, offset)
        } else {
            let n = offset.saturating_add(limit as u64);
            format!("LIMIT {}", b.bind(Bound::Int(to_i64(n))))
        };
        let sql = format!(
            "SELECT r.run_uuid FROM {from}{joins} WHERE {} ORDER BY {} {page}",
            conditions.join(" AND "),
            order.join(", ")
        );
        Ok(b.finish(sql))
    };
    if let Some(first) = order_by.first().filter(|o| o.entity == Entity::Metric) {
        // A filter on the first order key's metric matches only runs that have it, and unless
        // it is `!=` only runs where it is a number (see `run_condition`): the segments no
        // matching run can be in are not read at all.
        let on_key = || {
            filters
                .iter()
                .filter(|c| c.entity == Entity::Metric && c.key == first.key)
        };
        let mut segments = vec![query(Segment::Numbers)?];
        if !on_key().any(|c| c.op != Op::Ne) {
            segments.push(query(Segment::NaN)?);
        }
        if on_key().next().is_none() {
            segments.push(query(Segment::Missing)?);
        }
        Ok(RunSearchPlan {
            segments,
            skip: offset,
            take: limit,
        })
    } else {
        Ok(RunSearchPlan {
            segments: vec![query(Segment::Whole)?],
            skip: 0,
            take: limit,
        })
    }
}

/// The part of a run search one query reads (see [`run_search_sql`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    /// Every matching run, in the whole order.
    Whole,
    /// Runs whose first order key, a metric, is a number.
    Numbers,
    /// Runs whose first order key, a metric, is NaN.
    NaN,
    /// Runs without the first order key, a metric.
    Missing,
}

fn text_list(items: &[&str]) -> Bound {
    Bound::TextList(items.iter().map(|s| s.to_string()).collect())
}

// ---------------------------------------------------------------------------------------------
// Experiments

fn experiment_attribute_column(key: &str) -> Result<&'static str> {
    Ok(match key {
        "name" => "e.name",
        "experiment_id" => "e.experiment_id",
        "creation_time" => "e.creation_time",
        "last_update_time" => "e.last_update_time",
        other => return Err(Error::invalid(format!("Invalid attribute key '{other}'"))),
    })
}

fn experiment_id(id: &str) -> Result<i64> {
    id.trim().parse().map_err(|_| {
        Error::invalid(format!(
            "Invalid experiment ID '{id}'. Experiment ID must be a valid integer."
        ))
    })
}

fn experiment_condition(c: &Comparison, b: &mut Binder) -> Result<String> {
    match c.entity {
        // Ids arrive as quoted strings, as MLflow wants them; the column is an integer.
        Entity::Attribute if c.key == "experiment_id" => match (c.op, &c.value) {
            (Op::Eq | Op::Ne, Value::Str(id)) => {
                let p = b.bind(Bound::Int(experiment_id(id)?));
                Ok(format!("e.experiment_id {} {p}", c.op.as_str()))
            }
            (Op::In | Op::NotIn, Value::List(ids)) => {
                let ids = ids
                    .iter()
                    .map(|id| experiment_id(id))
                    .collect::<Result<Vec<_>>>()?;
                Ok(b.in_list("e.experiment_id", c.op == Op::NotIn, Bound::IntList(ids)))
            }
            (op, _) => Err(Error::invalid(format!(
                "Invalid comparator for experiment_id: {}",
                op.as_str()
            ))),
        },
        Entity::Attribute => compare(experiment_attribute_column(&c.key)?, c.op, &c.value, b),
        Entity::Tag => {
            let key = b.text(c.key.clone());
            match c.op {
                Op::IsNull | Op::IsNotNull => Ok(format!(
                    "{}EXISTS (SELECT 1 FROM experiment_tags t \
                     WHERE t.experiment_id = e.experiment_id AND t.key = {key})",
                    if c.op == Op::IsNull { "NOT " } else { "" }
                )),
                _ => {
                    let cond = compare("t.value", c.op, &c.value, b)?;
                    Ok(format!(
                        "EXISTS (SELECT 1 FROM experiment_tags t \
                         WHERE t.experiment_id = e.experiment_id AND t.key = {key} AND {cond})"
                    ))
                }
            }
        }
        other => Err(Error::invalid(format!(
            "Invalid entity type '{}' for experiments",
            entity_name(other)
        ))),
    }
}

/// `SELECT e.experiment_id FROM experiments e ...` for one page of an experiment search, in
/// MLflow's order: `order_by` (default `creation_time DESC, experiment_id ASC`), then
/// `experiment_id DESC` as the tie-breaker unless the order names the id.
pub(crate) fn experiment_search_sql(
    dialect: Dialect,
    stages: &[&str],
    filters: &[Comparison],
    order_by: &[OrderBy],
    limit: usize,
    offset: u64,
) -> Result<Query> {
    let mut b = Binder::new(dialect);
    let mut conditions = vec![b.in_list("e.lifecycle_stage", false, text_list(stages))];
    for c in filters {
        conditions.push(experiment_condition(c, &mut b)?);
    }
    let mut order = Vec::new();
    for o in order_by {
        if o.entity != Entity::Attribute {
            return Err(Error::invalid(format!(
                "Invalid order_by entity: {}",
                entity_name(o.entity)
            )));
        }
        order.push(format!(
            "{} {}",
            experiment_attribute_column(&o.key)?,
            direction(o.ascending)
        ));
    }
    if order.is_empty() {
        order.push("e.creation_time DESC".into());
        order.push("e.experiment_id ASC".into());
    } else if !order_by.iter().any(|o| o.key == "experiment_id") {
        order.push("e.experiment_id DESC".into());
    }
    let page = b.page(limit, offset);
    let sql = format!(
        "SELECT e.experiment_id FROM experiments e WHERE {} ORDER BY {} {page}",
        conditions.join(" AND "),
        order.join(", ")
    );
    Ok(b.finish(sql))
}

// ---------------------------------------------------------------------------------------------
// Logged models

/// The `logged_models` column an attribute filter or order names.
fn logged_model_column(key: &str) -> Result<&'static str> {
    Ok(match key {
        "model_id" => "lm.model_id",
        "name" => "lm.name",
        "status" => "lm.status",
        "model_type" => "lm.model_type",
        "source_run_id" => "lm.source_run_id",
        "creation_timestamp" | "creation_time" | "creation_timestamp_ms" => {
            "lm.creation_timestamp_ms"
        }
        "last_updated_timestamp" | "last_updated_timestamp_ms" => "lm.last_updated_timestamp_ms",
        other => {
            return Err(Error::invalid(format!(
                "Invalid attribute key '{other}' for logged models"
            )));
        }
    })
}

/// `(x.dataset_name = ? AND x.dataset_digest IS ?) OR ...` for the metric rows `x` on one of
/// `datasets`; `None` when there are none (every metric counts).
fn dataset_condition(datasets: &[DatasetFilter], b: &mut Binder) -> Option<String> {
    if datasets.is_empty() {
        return None;
    }
    let parts: Vec<String> = datasets
        .iter()
        .map(|d| {
            let name = b.text(d.name.clone());
            let digest = b.same("x.dataset_digest", d.digest.clone());
            format!("(x.dataset_name = {name} AND {digest})")
        })
        .collect();
    Some(format!("({})", parts.join(" OR ")))
}

fn logged_model_condition(
    c: &Comparison,
    datasets: &[DatasetFilter],
    b: &mut Binder,
) -> Result<String> {
    let exists = |table: &str, b: &mut Binder| -> Result<String> {
        let key = b.text(c.key.clone());
        let cond = compare("x.value", c.op, &c.value, b)?;
        Ok(format!(
            "EXISTS (SELECT 1 FROM {table} x WHERE x.model_id = lm.model_id AND x.key = {key} \
             AND {cond})"
        ))
    };
    match c.entity {
        Entity::Attribute => compare(logged_model_column(&c.key)?, c.op, &c.value, b),
        Entity::Param => exists("logged_model_params", b),
        Entity::Tag => exists("logged_model_tags", b),
        Entity::Metric => {
            let key = b.text(c.key.clone());
            let cond = compare("x.value", c.op, &c.value, b)?;
            let on_datasets = dataset_condition(datasets, b)
                .map(|d| format!(" AND {d}"))
                .unwrap_or_default();
            Ok(format!(
                "EXISTS (SELECT 1 FROM metrics x WHERE x.model_id = lm.model_id \
                 AND x.metric_key_id = {} AND x.is_nan = 0 AND {cond}{on_datasets})",
                metric_key_id(&key)
            ))
        }
        Entity::Dataset => Err(Error::invalid(
            "dataset filters are not supported for logged models; use `datasets`",
        )),
    }
}

/// `SELECT lm.model_id FROM logged_models lm ...` for one page of a logged-model search: active
/// models of `experiment_ids` matching every filter (metric filters counting only metrics on
/// `search.datasets` when given), in `order_by` order, then newest first and by id.
pub(crate) fn logged_model_search_sql(
    dialect: Dialect,
    experiment_ids: &[i64],
    search: &LoggedModelSearch,
    limit: usize,
    offset: u64,
) -> Result<Query> {
    if search.datasets.iter().any(|d| d.name.is_empty()) {
        return Err(Error::invalid(
            "`dataset_name` in the `datasets` clause must be specified.",
        ));
    }
    let mut b = Binder::new(dialect);
    // ORDER BY comes after WHERE in the text, so its parameters are bound after the filters'.
    let mut sql = format!(
        "SELECT lm.model_id FROM logged_models lm WHERE lm.lifecycle_stage = 'active' AND {}",
        b.in_list(
            "lm.experiment_id",
            false,
            Bound::IntList(experiment_ids.to_vec())
        )
    );
    for c in &search.filter {
        sql.push_str(" AND ");
        sql.push_str(&logged_model_condition(c, &search.datasets, &mut b)?);
    }
    // Without a metric filter, the datasets alone select models with any metric on them.
    if !search.filter.iter().any(|c| c.entity == Entity::Metric)
        && let Some(on_datasets) = dataset_condition(&search.datasets, &mut b)
    {
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM metrics x WHERE x.model_id = lm.model_id AND {on_datasets})"
        ));
    }
    let mut order = Vec::new();
    for o in &search.order_by {
        let dir = direction(o.ascending);
        match o.entity {
            Entity::Attribute => order.push(format!("{} {dir}", logged_model_column(&o.key)?)),
            Entity::Metric => {
                let latest = |b: &mut Binder| {
                    format!(
                        "(SELECT x.value FROM metrics x WHERE x.model_id = lm.model_id \
                         AND x.metric_key_id = {} AND x.is_nan = 0 \
                         ORDER BY x.step DESC, x.timestamp DESC LIMIT 1)",
                        metric_key_id(&b.text(o.key.clone()))
                    )
                };
                // Models without the metric sort last either way.
                let (first, second) = (latest(&mut b), latest(&mut b));
                order.push(format!("{first} IS NULL, {second} {dir}"));
            }
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid order_by entity for logged models: '{}'",
                    o.key
                )));
            }
        }
    }
    order.push("lm.creation_timestamp_ms DESC".into());
    order.push("lm.model_id ASC".into());
    let page = b.page(limit, offset);
    sql.push_str(&format!(" ORDER BY {} {page}", order.join(", ")));
    Ok(b.finish(sql))
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, params};
    use wasmflow_core::ErrorCode;
    use wasmflow_core::search::{
        parse_experiment_filter, parse_experiment_order_by, parse_run_filter, parse_run_order_by,
    };

    use super::*;
    use crate::sqlite::search_sql::SqlQuery;

    const ACTIVE: &[&str] = &["active"];
    const ALL: &[&str] = &["active", "deleted"];

    /// Three experiments (the third deleted) and six runs:
    ///
    /// | run | exp | name      | user  | status   | start | end  | stage   |
    /// |-----|-----|-----------|-------|----------|-------|------|---------|
    /// | r1  | 1   | alpha-run | alice | FINISHED | 1000  | 2000 | active  |
    /// | r2  | 1   | Beta-run  | bob   | RUNNING  | 2000  | NULL | active  |
    /// | r3  | 1   | gamma     | alice | FAILED   | 3000  | 3500 | active  |
    /// | r4  | 1   | gone      | bob   | FINISHED | 4000  | 4100 | deleted |
    /// | r5  | 2   | other     | carol | FINISHED | 3000  | 3100 | active  |
    /// | r6  | 1   | ÄÖ-run    | dave  | FINISHED | 500   | 600  | active  |
    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!("../migrations/0001_tracking.sql"))
            .unwrap();
        conn.execute_batch(include_str!(
            "../migrations/0009_latest_metrics_experiment.sql"
        ))
        .unwrap();
        conn.execute_batch(include_str!("../migrations/0010_surrogate_keys.sql"))
            .unwrap();
        for (id, name, stage, created, updated) in [
            (1, "exp-one", "active", 100, 150),
            (2, "Exp-Two", "active", 200, 150),
            (3, "third", "deleted", 300, 350),
        ] {
            conn.execute(
                "INSERT INTO experiments (experiment_id, name, artifact_location, \
                 lifecycle_stage, creation_time, last_update_time) VALUES (?, ?, '', ?, ?, ?)",
                params![id, name, stage, created, updated],
            )
            .unwrap();
        }
        for (id, key, value) in [(1, "team", "alpha"), (2, "team", "Beta"), (1, "x", "a*b")] {
            conn.execute(
                "INSERT INTO experiment_tags VALUES (?, ?, ?)",
                params![id, key, value],
            )
            .unwrap();
        }
        for (run, exp, name, user, status, start, end, stage) in [
            (
                "r1",
                1,
                "alpha-run",
                "alice",
                "FINISHED",
                1000,
                Some(2000),
                "active",
            ),
            ("r2", 1, "Beta-run", "bob", "RUNNING", 2000, None, "active"),
            (
                "r3",
                1,
                "gamma",
                "alice",
                "FAILED",
                3000,
                Some(3500),
                "active",
            ),
            (
                "r4",
                1,
                "gone",
                "bob",
                "FINISHED",
                4000,
                Some(4100),
                "deleted",
            ),
            (
                "r5",
                2,
                "other",
                "carol",
                "FINISHED",
                3000,
                Some(3100),
                "active",
            ),
            (
                "r6",
                1,
                "ÄÖ-run",
                "dave",
                "FINISHED",
                500,
                Some(600),
                "active",
            ),
        ] {
            conn.execute(
                "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, \
                 end_time, artifact_uri, lifecycle_stage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    run,
                    exp,
                    name,
                    user,
                    status,
                    start,
                    end,
                    format!("s3://bucket/{run}"),
                    stage
                ],
            )
            .unwrap();
        }
        // r3's accuracy is NaN (stored as 0 with the flag); r5 and r6 have none.
        for (run, key, value, is_nan) in [
            ("r1", "acc", 0.9, false),
            ("r2", "acc", 0.5, false),
            ("r3", "acc", 0.0, true),
            ("r4", "acc", 0.7, false),
            ("r1", "loss", -1.5, false),
            ("r2", "loss", 0.0, false),
        ] {
            conn.execute(
                "INSERT OR IGNORE INTO metric_keys (key) VALUES (?1)",
                params![key],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO latest_metrics (run_key, metric_key_id, experiment_id, step, \
                 timestamp, value, is_nan) SELECT r.run_key, k.metric_key_id, r.experiment_id, \
                 0, 0, ?3, ?4 FROM runs r, metric_keys k WHERE r.run_uuid = ?1 AND k.key = ?2",
                params![run, key, value, is_nan],
            )
            .unwrap();
        }
        for (run, key, value) in [
            ("r1", "lr", "0.01"),
            ("r2", "lr", "0.1"),
            ("r3", "opt", "Adam"),
            ("r1", "x", "a"),
            ("r1", "pattern", "a*b[c]?"),
            ("r2", "pattern", "axbcd"),
            ("r2", "path", "C:\\dir"),
            ("r6", "x", "b"),
        ] {
            conn.execute(
                "INSERT INTO params VALUES (?, ?, ?)",
                params![run, key, value],
            )
            .unwrap();
        }
        for (run, key, value) in [
            ("r1", "team", "Alpha"),
            ("r2", "team", "alpha"),
            ("r5", "team", "alpha"),
            ("r6", "team", "äö"),
            ("r1", "mlflow.user", "alice"),
            ("r2", "a b", "spaced"),
        ] {
            conn.execute(
                "INSERT INTO tags VALUES (?, ?, ?)",
                params![run, key, value],
            )
            .unwrap();
        }
        for (uuid, name, digest) in [("d1", "train-set", "abc"), ("d2", "eval-set", "def")] {
            conn.execute(
                "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, \
                 source) VALUES (?, 1, ?, ?, 'local', '')",
                params![uuid, name, digest],
            )
            .unwrap();
        }
        for (run, dataset, tags) in [
            (
                "r1",
                "d1",
                r#"[{"key":"mlflow.data.context","value":"training"}]"#,
            ),
            (
                "r2",
                "d2",
                r#"[{"key":"other","value":"x"},{"key":"mlflow.data.context","value":"eval"}]"#,
            ),
            ("r3", "d1", "[]"),
        ] {
            conn.execute(
                "INSERT INTO run_dataset_inputs VALUES (?, ?, ?)",
                params![run, dataset, tags],
            )
            .unwrap();
        }
        conn
    }

    fn run_page(
        conn: &Connection,
        experiments: &[i64],
        stages: &[&str],
        filter: &str,
        order_by: &[&str],
        limit: usize,
        offset: u64,
    ) -> Vec<String> {
        let filters = parse_run_filter(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        let order: Vec<OrderBy> = order_by
            .iter()
            .map(|o| parse_run_order_by(o).unwrap())
            .collect();
        let plan = run_search_sql(
            Dialect::Sqlite,
            experiments,
            stages,
            &filters,
            &order,
            limit,
            offset,
        )
        .unwrap();
        let mut ids = Vec::new();
        for query in &plan.segments {
            if !plan.wants_more(ids.len()) {
                break;
            }
            let query = SqlQuery::from(query);
            ids.extend(
                query
                    .first_column::<String>(conn)
                    .unwrap_or_else(|e| panic!("{filter}: {e}\n{}", query.sql)),
            );
        }
        plan.page(ids)
    }

    /// Active runs of experiments 1 and 2 matching `filter`, in the default order.
    fn runs(conn: &Connection, filter: &str) -> Vec<String> {
        run_page(conn, &[1, 2], ACTIVE, filter, &[], 100, 0)
    }

    /// Like [`runs`] but sorted, for checks of membership only.
    fn matching(conn: &Connection, filter: &str) -> Vec<String> {
        let mut ids = runs(conn, filter);
        ids.sort();
        ids
    }

    fn ordered(conn: &Connection, order_by: &[&str]) -> Vec<String> {
        run_page(conn, &[1, 2], ACTIVE, "", order_by, 100, 0)
    }

    fn experiments(
        conn: &Connection,
        stages: &[&str],
        filter: &str,
        order_by: &[&str],
    ) -> Vec<i64> {
        experiment_page(conn, stages, filter, order_by, 100, 0)
    }

    fn experiment_page(
        conn: &Connection,
        stages: &[&str],
        filter: &str,
        order_by: &[&str],
        limit: usize,
        offset: u64,
    ) -> Vec<i64> {
        let filters = parse_experiment_filter(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        let order: Vec<OrderBy> = order_by
            .iter()
            .map(|o| parse_experiment_order_by(o).unwrap())
            .collect();
        experiment_search_sql(Dialect::Sqlite, stages, &filters, &order, limit, offset)
            .map(SqlQuery::from)
            .unwrap()
            .first_column(conn)
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
    }

    #[test]
    fn like_patterns_become_globs() {
        assert_eq!(like_to_glob("a%b_c"), "a*b?c");
        assert_eq!(like_to_glob("x*y?[z]"), "x[*]y[?][[]z[]]");
        // `\` is itself, as in SQLite's LIKE without ESCAPE (MLflow's).
        assert_eq!(like_to_glob("100\\%"), "100\\*");
        assert_eq!(like_to_glob("a\\_b"), "a\\?b");
        assert_eq!(like_to_glob("end\\"), "end\\");
        assert_eq!(like_pattern("end\\"), "end\\\\");
        assert_eq!(like_pattern("end\\\\"), "end\\\\");
        assert_eq!(like_pattern("a\\%"), "a\\%");
    }

    #[test]
    fn default_order_and_scope() {
        let conn = db();
        // start_time DESC, then run_uuid ASC for the r3/r5 tie; r4 is deleted.
        assert_eq!(runs(&conn, ""), ["r3", "r5", "r2", "r1", "r6"]);
        assert_eq!(
            run_page(&conn, &[1, 2], ALL, "", &[], 100, 0),
            ["r4", "r3", "r5", "r2", "r1", "r6"]
        );
        assert_eq!(
            run_page(&conn, &[1], ACTIVE, "", &[], 100, 0),
            ["r3", "r2", "r1", "r6"]
        );
        assert_eq!(run_page(&conn, &[2], ACTIVE, "", &[], 100, 0), ["r5"]);
        assert_eq!(
            run_page(&conn, &[1, 2], &["deleted"], "", &[], 100, 0),
            ["r4"]
        );
        assert!(run_page(&conn, &[], ACTIVE, "", &[], 100, 0).is_empty());
        assert!(run_page(&conn, &[7], ACTIVE, "", &[], 100, 0).is_empty());
    }

    #[test]
    fn metric_operators() {
        let conn = db();
        assert_eq!(matching(&conn, "metrics.acc = 0.9"), ["r1"]);
        assert_eq!(matching(&conn, "metrics.acc > 0.6"), ["r1"]);
        assert_eq!(matching(&conn, "metrics.acc >= 0.5"), ["r1", "r2"]);
        assert_eq!(matching(&conn, "metrics.acc < 0.9"), ["r2"]);
        assert_eq!(matching(&conn, "metrics.acc <= 0.9"), ["r1", "r2"]);
        assert_eq!(matching(&conn, "metrics.loss < 0"), ["r1"]);
        assert_eq!(matching(&conn, "metrics.loss = 0"), ["r2"]);
        assert_eq!(
            matching(&conn, "metrics.missing > -1e300"),
            Vec::<String>::new()
        );
        assert_eq!(
            matching(&conn, "metrics.acc > 0.4 AND metrics.acc < 0.6"),
            ["r2"]
        );
    }

    #[test]
    fn nan_metrics_match_no_numeric_comparison_but_ne() {
        let conn = db();
        // r3's NaN is stored as 0: neither `> 0`, `= 0`, `<= 0` nor `>= 0` may see it.
        assert_eq!(matching(&conn, "metrics.acc > 0"), ["r1", "r2"]);
        for filter in ["metrics.acc = 0", "metrics.acc <= 0", "metrics.acc < 0.1"] {
            assert!(matching(&conn, filter).is_empty(), "{filter}");
        }
        assert_eq!(matching(&conn, "metrics.acc >= 0"), ["r1", "r2"]);
        // As in MLflow's SQL store, NaN != x is true; runs without the metric still don't match.
        assert_eq!(matching(&conn, "metrics.acc != 0.9"), ["r2", "r3"]);
        assert_eq!(matching(&conn, "metrics.acc != 0"), ["r1", "r2", "r3"]);
    }

    #[test]
    fn param_operators() {
        let conn = db();
        assert_eq!(matching(&conn, "params.lr = '0.01'"), ["r1"]);
        assert_eq!(matching(&conn, "params.lr = '0.0'"), Vec::<String>::new());
        // `!=` needs the key: r3, r5 and r6 have no `lr`.
        assert_eq!(matching(&conn, "params.lr != '0.01'"), ["r2"]);
        assert_eq!(matching(&conn, "params.lr LIKE '0.%'"), ["r1", "r2"]);
        assert_eq!(matching(&conn, "params.lr LIKE '0._'"), ["r2"]);
        assert_eq!(
            matching(&conn, "params.opt LIKE 'adam'"),
            Vec::<String>::new()
        );
        assert_eq!(matching(&conn, "params.opt ILIKE 'adam'"), ["r3"]);
        assert_eq!(matching(&conn, "params.opt ILIKE 'AD%'"), ["r3"]);
        assert_eq!(matching(&conn, "params.lr IS NULL"), ["r3", "r5", "r6"]);
        assert_eq!(matching(&conn, "params.lr IS NOT NULL"), ["r1", "r2"]);
        assert_eq!(
            matching(&conn, "params.lr = '0.1' AND params.pattern = 'axbcd'"),
            ["r2"]
        );
    }

    #[test]
    fn tag_operators() {
        let conn = db();
        assert_eq!(matching(&conn, "tags.team = 'alpha'"), ["r2", "r5"]);
        assert_eq!(matching(&conn, "tags.team = 'Alpha'"), ["r1"]);
        // r3 has no `team` tag, so it does not match `!=` (as in MLflow).
        assert_eq!(matching(&conn, "tags.team != 'alpha'"), ["r1", "r6"]);
        assert_eq!(matching(&conn, "tags.team IS NULL"), ["r3"]);
        assert_eq!(
            matching(&conn, "tags.team IS NOT NULL"),
            ["r1", "r2", "r5", "r6"]
        );
        assert_eq!(matching(&conn, "tags.mlflow.user = 'alice'"), ["r1"]);
        assert_eq!(matching(&conn, "tags.`mlflow.user` = 'alice'"), ["r1"]);
        assert_eq!(matching(&conn, "tags.\"a b\" = 'spaced'"), ["r2"]);
    }

    #[test]
    fn like_is_case_sensitive_and_ilike_is_not() {
        let conn = db();
        assert_eq!(matching(&conn, "tags.team LIKE 'alpha'"), ["r2", "r5"]);
        assert_eq!(matching(&conn, "tags.team LIKE 'A%'"), ["r1"]);
        assert_eq!(
            matching(&conn, "tags.team LIKE 'ALPHA'"),
            Vec::<String>::new()
        );
        assert_eq!(
            matching(&conn, "tags.team ILIKE 'ALPHA'"),
            ["r1", "r2", "r5"]
        );
        assert_eq!(matching(&conn, "tags.team ILIKE 'a%'"), ["r1", "r2", "r5"]);
        assert_eq!(
            matching(&conn, "run_name LIKE 'beta%'"),
            Vec::<String>::new()
        );
        assert_eq!(matching(&conn, "run_name ILIKE 'beta%'"), ["r2"]);
        assert_eq!(matching(&conn, "run_name LIKE 'Beta%'"), ["r2"]);
        // Non-ASCII: LIKE matches exactly; `_` is one character, not one byte.
        assert_eq!(matching(&conn, "tags.team LIKE 'äö'"), ["r6"]);
        assert_eq!(matching(&conn, "tags.team LIKE '__'"), ["r6"]);
        assert_eq!(matching(&conn, "run_name LIKE 'ÄÖ%'"), ["r6"]);
    }

    #[test]
    fn like_patterns_are_not_globs() {
        let conn = db();
        // GLOB's own metacharacters in a LIKE pattern are literal.
        assert_eq!(matching(&conn, "params.pattern LIKE 'a*b[c]?'"), ["r1"]);
        assert_eq!(matching(&conn, "params.pattern LIKE 'a*%'"), ["r1"]);
        assert_eq!(
            matching(&conn, "params.pattern LIKE '*'"),
            Vec::<String>::new()
        );
        assert_eq!(matching(&conn, "params.pattern LIKE 'a_b%'"), ["r1", "r2"]);
        assert_eq!(
            matching(&conn, "params.pattern LIKE 'a?bcd'"),
            Vec::<String>::new()
        );
        assert_eq!(
            matching(&conn, "params.pattern LIKE 'a[x]bcd'"),
            Vec::<String>::new()
        );
        // On SQLite `\` is a plain character in LIKE and ILIKE alike, as MLflow's LIKE there has
        // no ESCAPE: it neither makes `%` and `_` literal nor stands for itself when doubled.
        assert_eq!(
            matching(&conn, "params.pattern LIKE 'a\\*%'"),
            Vec::<String>::new()
        );
        assert_eq!(
            matching(&conn, "params.lr LIKE '0\\_1'"),
            Vec::<String>::new()
        );
        assert_eq!(
            matching(&conn, "params.lr ILIKE '0\\_1'"),
            Vec::<String>::new()
        );
        assert_eq!(matching(&conn, "params.lr ILIKE '0_1'"), ["r2"]);
        assert_eq!(matching(&conn, "params.path LIKE 'C:\\dir'"), ["r2"]);
        assert_eq!(matching(&conn, "params.path LIKE 'C:\\%'"), ["r2"]);
        assert_eq!(matching(&conn, "params.path LIKE 'C:\\_ir'"), ["r2"]);
        assert_eq!(matching(&conn, "params.path ILIKE 'c:\\DIR'"), ["r2"]);
        assert_eq!(
            matching(&conn, "params.path LIKE 'C:\\\\dir'"),
            Vec::<String>::new()
        );
        assert_eq!(
            matching(&conn, "params.path ILIKE 'c:\\\\DIR'"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn attribute_operators() {
        let conn = db();
        assert_eq!(matching(&conn, "attributes.run_id = 'r2'"), ["r2"]);
        assert_eq!(matching(&conn, "run_id != 'r2'"), ["r1", "r3", "r5", "r6"]);
        assert_eq!(matching(&conn, "run_name = 'gamma'"), ["r3"]);
        assert_eq!(matching(&conn, "attributes.`Run Name` = 'gamma'"), ["r3"]);
        assert_eq!(matching(&conn, "status = 'FINISHED'"), ["r1", "r5", "r6"]);
        assert_eq!(matching(&conn, "status != 'FINISHED'"), ["r2", "r3"]);
        assert_eq!(matching(&conn, "user_id = 'alice'"), ["r1", "r3"]);
        assert_eq!(matching(&conn, "user_id ILIKE 'ALI%'"), ["r1", "r3"]);
        assert_eq!(
            matching(&conn, "artifact_uri LIKE 's3://bucket/r1'"),
            ["r1"]
        );
        assert_eq!(matching(&conn, "start_time > 1500"), ["r2", "r3", "r5"]);
        assert_eq!(matching(&conn, "start_time >= 2000"), ["r2", "r3", "r5"]);
        assert_eq!(matching(&conn, "start_time < 1000"), ["r6"]);
        assert_eq!(matching(&conn, "start_time <= 1000"), ["r1", "r6"]);
        assert_eq!(matching(&conn, "start_time = 3000"), ["r3", "r5"]);
        assert_eq!(matching(&conn, "start_time != 3000"), ["r1", "r2", "r6"]);
        assert_eq!(matching(&conn, "created > 2999.5"), ["r3", "r5"]);
        // r2 has no end time, so no comparison matches it.
        assert_eq!(matching(&conn, "end_time > 0"), ["r1", "r3", "r5", "r6"]);
        assert_eq!(matching(&conn, "end_time != 2000"), ["r3", "r5", "r6"]);
    }

    #[test]
    fn in_and_not_in_on_run_id() {
        let conn = db();
        assert_eq!(
            matching(&conn, "run_id IN ('r1', 'r3', 'nope')"),
            ["r1", "r3"]
        );
        assert_eq!(
            matching(&conn, "run_id NOT IN ('r1', 'r3')"),
            ["r2", "r5", "r6"]
        );
        assert_eq!(matching(&conn, "run_id IN ('r4')"), Vec::<String>::new());
        assert_eq!(
            matching(&conn, "run_id IN ('r1', 'r2') AND metrics.acc > 0.6"),
            ["r1"]
        );
    }

    #[test]
    fn dataset_filters() {
        let conn = db();
        assert_eq!(matching(&conn, "datasets.name = 'train-set'"), ["r1", "r3"]);
        assert_eq!(matching(&conn, "dataset.name != 'train-set'"), ["r2"]);
        assert_eq!(matching(&conn, "dataset.name LIKE 'eval%'"), ["r2"]);
        assert_eq!(
            matching(&conn, "dataset.name LIKE 'EVAL%'"),
            Vec::<String>::new()
        );
        assert_eq!(matching(&conn, "dataset.name ILIKE 'EVAL%'"), ["r2"]);
        assert_eq!(matching(&conn, "dataset.digest = 'def'"), ["r2"]);
        assert_eq!(
            matching(&conn, "dataset.digest IN ('abc', 'zzz')"),
            ["r1", "r3"]
        );
        assert_eq!(matching(&conn, "dataset.name NOT IN ('train-set')"), ["r2"]);
        assert_eq!(matching(&conn, "dataset.context = 'training'"), ["r1"]);
        assert_eq!(
            matching(&conn, "dataset.context = 'x'"),
            Vec::<String>::new()
        );
        assert_eq!(
            matching(&conn, "dataset.context IN ('training', 'eval')"),
            ["r1", "r2"]
        );
        assert_eq!(matching(&conn, "dataset.context LIKE 'eval'"), ["r2"]);
        assert_eq!(
            matching(
                &conn,
                "dataset.name = 'train-set' AND dataset.context = 'training'"
            ),
            ["r1"]
        );
    }

    #[test]
    fn order_by_metric_puts_missing_last_both_ways() {
        let conn = db();
        // Numbers, then r3's NaN, then the runs without the metric (in default order).
        assert_eq!(
            ordered(&conn, &["metrics.acc"]),
            ["r2", "r1", "r3", "r5", "r6"]
        );
        assert_eq!(
            ordered(&conn, &["metrics.acc ASC"]),
            ["r2", "r1", "r3", "r5", "r6"]
        );
        assert_eq!(
            ordered(&conn, &["metrics.acc DESC"]),
            ["r1", "r2", "r3", "r5", "r6"]
        );
        assert_eq!(
            ordered(&conn, &["metrics.loss DESC"]),
            ["r2", "r1", "r3", "r5", "r6"]
        );
    }

    #[test]
    fn filter_on_the_order_metric_reads_only_segments_it_can_match() {
        let conn = db();
        let plan = |filter: &str| {
            let filters = parse_run_filter(filter).unwrap();
            let order = [parse_run_order_by("metrics.acc DESC").unwrap()];
            run_search_sql(Dialect::Sqlite, &[1, 2], ACTIVE, &filters, &order, 100, 0)
                .unwrap()
                .segments
                .len()
        };
        // Numbers only; numbers and NaN (NaN != x); all three (another key, or none).
        assert_eq!(plan("metrics.acc > 0"), 1);
        assert_eq!(plan("metrics.acc != 0.9"), 2);
        assert_eq!(plan("metrics.loss > -5"), 3);
        assert_eq!(plan(""), 3);
        // The answers are those of the whole order filtered: r3's NaN after the numbers for
        // `!=`, and r5 and r6 (no acc) nowhere.
        let page =
            |filter: &str, order: &str| run_page(&conn, &[1, 2], ACTIVE, filter, &[order], 100, 0);
        assert_eq!(page("metrics.acc > 0", "metrics.acc DESC"), ["r1", "r2"]);
        assert_eq!(page("metrics.acc > 0", "metrics.acc ASC"), ["r2", "r1"]);
        assert_eq!(page("metrics.acc != 0.9", "metrics.acc DESC"), ["r2", "r3"]);
        assert_eq!(
            page("metrics.acc != 0.5 AND metrics.acc > 0.6", "metrics.acc"),
            ["r1"]
        );
        assert_eq!(page("metrics.loss > -5", "metrics.acc DESC"), ["r1", "r2"]);
        assert_eq!(
            page("metrics.acc > 0.4 AND metrics.loss < 0", "metrics.acc"),
            ["r1"]
        );
        assert_eq!(page("metrics.acc != 0.9", "metrics.acc"), ["r2", "r3"]);
        assert_eq!(
            page("metrics.acc != 0.9 AND metrics.acc != 0.5", "metrics.acc"),
            ["r3"]
        );
        assert!(page("metrics.acc < 0.1", "metrics.acc").is_empty());
    }

    #[test]
    fn order_by_params_tags_and_attributes() {
        let conn = db();
        assert_eq!(
            ordered(&conn, &["params.lr"]),
            ["r1", "r2", "r3", "r5", "r6"]
        );
        assert_eq!(
            ordered(&conn, &["params.lr DESC"]),
            ["r2", "r1", "r3", "r5", "r6"]
        );
        // Binary collation: 'Alpha' < 'alpha' < 'äö'; r3 has no tag.
        assert_eq!(
            ordered(&conn, &["tags.team"]),
            ["r1", "r5", "r2", "r6", "r3"]
        );
        assert_eq!(
            ordered(&conn, &["tags.team DESC"]),
            ["r6", "r5", "r2", "r1", "r3"]
        );
        assert_eq!(
            ordered(&conn, &["start_time"]),
            ["r6", "r1", "r2", "r3", "r5"]
        );
        assert_eq!(
            ordered(&conn, &["created DESC"]),
            ["r3", "r5", "r2", "r1", "r6"]
        );
        // r2 has no end time: last either way.
        assert_eq!(
            ordered(&conn, &["end_time"]),
            ["r6", "r1", "r5", "r3", "r2"]
        );
        assert_eq!(
            ordered(&conn, &["end_time DESC"]),
            ["r3", "r5", "r1", "r6", "r2"]
        );
        assert_eq!(
            ordered(&conn, &["run_name"]),
            ["r2", "r1", "r3", "r5", "r6"]
        );
        assert_eq!(
            ordered(&conn, &["run_id DESC"]),
            ["r6", "r5", "r3", "r2", "r1"]
        );
        // Several keys: status first, then the metric.
        assert_eq!(
            ordered(&conn, &["status", "metrics.acc DESC"]),
            ["r3", "r1", "r5", "r6", "r2"]
        );
    }

    #[test]
    fn filters_and_order_combine() {
        let conn = db();
        assert_eq!(
            run_page(
                &conn,
                &[1, 2],
                ACTIVE,
                "tags.team ILIKE 'alpha' AND params.lr IS NOT NULL",
                &["metrics.acc DESC"],
                100,
                0
            ),
            ["r1", "r2"]
        );
    }

    #[test]
    fn duplicate_order_by_is_rejected() {
        let order = [
            parse_run_order_by("metrics.acc").unwrap(),
            parse_run_order_by("metrics.acc DESC").unwrap(),
        ];
        let e = run_search_sql(Dialect::Sqlite, &[1], ACTIVE, &[], &order, 10, 0)
            .expect_err("duplicate order_by");
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert!(e.message.contains("duplicate"), "{}", e.message);
        let order = [
            parse_run_order_by("created").unwrap(),
            parse_run_order_by("start_time").unwrap(),
        ];
        assert!(run_search_sql(Dialect::Sqlite, &[1], ACTIVE, &[], &order, 10, 0).is_err());
    }

    #[test]
    fn paging_with_limit_and_offset() {
        let conn = db();
        let all = runs(&conn, "");
        let mut paged = Vec::new();
        for offset in (0..all.len() + 2).step_by(2) {
            let page = run_page(&conn, &[1, 2], ACTIVE, "", &[], 2, offset as u64);
            assert!(page.len() <= 2);
            paged.extend(page);
        }
        assert_eq!(paged, all);
        assert_eq!(
            run_page(&conn, &[1, 2], ACTIVE, "", &["metrics.acc DESC"], 2, 2),
            ["r3", "r5"]
        );
        // Ordered by a metric, the page is three queries (numbers, NaN, missing) one after the
        // other: every page size and offset cuts the same whole order.
        for order in [["metrics.acc DESC"], ["metrics.acc ASC"]] {
            let all = run_page(&conn, &[1, 2], ACTIVE, "", &order, 100, 0);
            assert_eq!(all.len(), 5);
            for size in 1..=4 {
                let mut paged = Vec::new();
                for offset in (0..all.len() + size).step_by(size) {
                    paged.extend(run_page(
                        &conn,
                        &[1, 2],
                        ACTIVE,
                        "",
                        &order,
                        size,
                        offset as u64,
                    ));
                }
                assert_eq!(paged, all, "{order:?} by pages of {size}");
            }
            // One experiment (its index serves the order) keeps the same order; r5 is in 2.
            let mut in_one = all.clone();
            in_one.retain(|r| r != "r5");
            assert_eq!(run_page(&conn, &[1], ACTIVE, "", &order, 100, 0), in_one);
        }
        assert!(run_page(&conn, &[1, 2], ACTIVE, "", &[], 2, 100).is_empty());
        assert!(run_page(&conn, &[1, 2], ACTIVE, "", &[], 0, 0).is_empty());
        assert_eq!(
            run_page(&conn, &[1, 2], ACTIVE, "", &[], usize::MAX, u64::MAX).len(),
            0
        );
    }

    #[test]
    fn injection_attempts_match_nothing_and_stay_out_of_the_sql() {
        let conn = db();
        // The classic attempt is one string value, `a' OR 1=1 --`, which no run has.
        assert!(runs(&conn, "params.x = 'a'' OR 1=1 --'").is_empty());
        assert!(runs(&conn, "params.x = \"a' OR 1=1 --\"").is_empty());
        // r1 and r6 have `x`, with other values.
        assert_eq!(runs(&conn, "params.x != 'a'' OR 1=1 --'"), ["r1", "r6"]);
        assert_eq!(runs(&conn, "params.x = 'a'"), ["r1"]);
        assert!(runs(&conn, "params.`x' OR '1'='1` = 'a'").is_empty());
        assert!(runs(&conn, "tags.`team\") OR 1=1 --` LIKE '%'").is_empty());
        assert!(runs(&conn, "run_id IN ('x'') OR 1=1 --')").is_empty());
        // An odd key in order_by orders nothing away.
        assert_eq!(ordered(&conn, &["params.`x' OR 1=1 --` DESC"]).len(), 5);

        let filters = parse_run_filter("params.`k'; DROP TABLE runs; --` = 'v''; --'").unwrap();
        let order = [parse_run_order_by("tags.`o'; --`").unwrap()];
        let plan = run_search_sql(Dialect::Sqlite, &[1], ACTIVE, &filters, &order, 10, 0).unwrap();
        for q in plan.segments {
            assert!(
                !q.sql.contains("DROP") && !q.sql.contains("--"),
                "{}",
                q.sql
            );
            assert_eq!(q.sql.matches('?').count(), q.params.len());
            assert!(
                SqlQuery::from(q)
                    .first_column::<String>(&conn)
                    .unwrap()
                    .is_empty()
            );
        }
        assert_eq!(runs(&conn, "").len(), 5, "the runs table is intact");
    }

    #[test]
    fn placeholders_match_parameters() {
        let filters = parse_run_filter(
            "metrics.a > 1 AND params.p LIKE 'x%' AND tags.t IS NULL AND run_id IN ('a','b') \
             AND dataset.context = 'c' AND dataset.name ILIKE 'n' AND start_time != 3",
        )
        .unwrap();
        // Ordered first by a metric the filter does not compare, so that all three segments run.
        let order: Vec<OrderBy> = ["metrics.b DESC", "params.p", "tags.t", "status"]
            .iter()
            .map(|o| parse_run_order_by(o).unwrap())
            .collect();
        let conn = db();
        let plan = run_search_sql(Dialect::Sqlite, &[1, 2], ALL, &filters, &order, 5, 10).unwrap();
        assert_eq!(plan.segments.len(), 3, "ordered first by a metric");
        for q in plan.segments {
            assert_eq!(q.sql.matches('?').count(), q.params.len(), "{}", q.sql);
            let ids: Vec<String> = SqlQuery::from(q).first_column(&conn).unwrap();
            assert!(ids.is_empty());
        }
        // PostgreSQL's placeholders carry their number and the type of their value.
        let plan =
            run_search_sql(Dialect::Postgres, &[1, 2], ALL, &filters, &order, 5, 10).unwrap();
        for q in plan.segments {
            assert!(!q.sql.contains('?'), "{}", q.sql);
            for (i, p) in q.params.iter().enumerate() {
                let placeholder = format!("${}::{}", i + 1, p.pg_type().0);
                assert!(q.sql.contains(&placeholder), "{placeholder} in {}", q.sql);
            }
            assert!(!q.sql.contains(&format!("${}", q.params.len() + 1)));
            assert!(
                q.sql.contains("= ANY($") && q.sql.contains(" ILIKE $"),
                "{}",
                q.sql
            );
        }
    }

    #[test]
    fn experiment_default_order_and_stages() {
        let conn = db();
        assert_eq!(experiments(&conn, ACTIVE, "", &[]), [2, 1]);
        assert_eq!(experiments(&conn, ALL, "", &[]), [3, 2, 1]);
        assert_eq!(experiments(&conn, &["deleted"], "", &[]), [3]);
    }

    #[test]
    fn experiment_attribute_filters() {
        let conn = db();
        assert_eq!(experiments(&conn, ACTIVE, "name = 'exp-one'", &[]), [1]);
        assert_eq!(experiments(&conn, ACTIVE, "name != 'exp-one'", &[]), [2]);
        assert_eq!(experiments(&conn, ACTIVE, "name LIKE 'exp%'", &[]), [1]);
        assert_eq!(experiments(&conn, ACTIVE, "name LIKE 'Exp%'", &[]), [2]);
        assert_eq!(experiments(&conn, ACTIVE, "name ILIKE 'EXP%'", &[]), [2, 1]);
        assert_eq!(
            experiments(&conn, ACTIVE, "attribute.name ILIKE '%two'", &[]),
            [2]
        );
        assert_eq!(experiments(&conn, ALL, "creation_time > 150", &[]), [3, 2]);
        assert_eq!(experiments(&conn, ALL, "creation_time <= 200", &[]), [2, 1]);
        assert_eq!(
            experiments(&conn, ALL, "last_update_time = 150", &[]),
            [2, 1]
        );
        assert_eq!(experiments(&conn, ALL, "last_update_time != 150", &[]), [3]);
        assert_eq!(experiments(&conn, ALL, "experiment_id = '1'", &[]), [1]);
        assert_eq!(experiments(&conn, ALL, "experiment_id != '1'", &[]), [3, 2]);
        assert_eq!(
            experiments(&conn, ALL, "experiment_id IN ('1', '3')", &[]),
            [3, 1]
        );
        assert_eq!(
            experiments(&conn, ALL, "experiment_id NOT IN ('1', '3')", &[]),
            [2]
        );
        assert!(experiments(&conn, ACTIVE, "experiment_id IN ('3')", &[]).is_empty());
    }

    #[test]
    fn experiment_tag_filters() {
        let conn = db();
        assert_eq!(experiments(&conn, ALL, "tags.team = 'alpha'", &[]), [1]);
        assert_eq!(experiments(&conn, ALL, "tags.team != 'alpha'", &[]), [2]);
        assert_eq!(
            experiments(&conn, ALL, "tags.team LIKE 'beta'", &[]),
            Vec::<i64>::new()
        );
        assert_eq!(experiments(&conn, ALL, "tags.team ILIKE 'beta'", &[]), [2]);
        assert_eq!(experiments(&conn, ALL, "tags.team IS NULL", &[]), [3]);
        assert_eq!(
            experiments(&conn, ALL, "tags.team IS NOT NULL", &[]),
            [2, 1]
        );
        assert_eq!(experiments(&conn, ALL, "tags.x LIKE 'a*b'", &[]), [1]);
        assert_eq!(
            experiments(&conn, ALL, "tags.x LIKE 'a*'", &[]),
            Vec::<i64>::new()
        );
        assert!(experiments(&conn, ALL, "tags.team = 'a'' OR 1=1 --'", &[]).is_empty());
    }

    #[test]
    fn experiment_order_and_paging() {
        let conn = db();
        // Binary collation: 'Exp-Two' < 'exp-one' < 'third'.
        assert_eq!(experiments(&conn, ALL, "", &["name"]), [2, 1, 3]);
        assert_eq!(experiments(&conn, ALL, "", &["name DESC"]), [3, 1, 2]);
        assert_eq!(experiments(&conn, ALL, "", &["experiment_id"]), [1, 2, 3]);
        assert_eq!(
            experiments(&conn, ALL, "", &["creation_time ASC"]),
            [1, 2, 3]
        );
        // Equal update times are broken by experiment_id DESC, as in MLflow.
        assert_eq!(
            experiments(&conn, ALL, "", &["last_update_time"]),
            [2, 1, 3]
        );
        assert_eq!(
            experiments(&conn, ALL, "", &["last_update_time", "experiment_id"]),
            [1, 2, 3]
        );
        assert_eq!(experiment_page(&conn, ALL, "", &[], 2, 0), [3, 2]);
        assert_eq!(experiment_page(&conn, ALL, "", &[], 2, 2), [1]);
        assert!(experiment_page(&conn, ALL, "", &[], 2, 4).is_empty());
    }

    #[test]
    fn experiment_errors() {
        let bad_id = Comparison {
            entity: Entity::Attribute,
            key: "experiment_id".into(),
            op: Op::Eq,
            value: Value::Str("abc".into()),
        };
        let e = experiment_search_sql(Dialect::Sqlite, ACTIVE, &[bad_id], &[], 10, 0)
            .expect_err("bad id");
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert!(
            e.message.contains("Invalid experiment ID 'abc'"),
            "{}",
            e.message
        );
        let tag_order = OrderBy {
            entity: Entity::Tag,
            key: "t".into(),
            ascending: true,
        };
        let e = experiment_search_sql(Dialect::Sqlite, ACTIVE, &[], &[tag_order], 10, 0)
            .expect_err("tag order");
        assert!(
            e.message.contains("Invalid order_by entity: tag"),
            "{}",
            e.message
        );
        let metric = Comparison {
            entity: Entity::Metric,
            key: "m".into(),
            op: Op::Gt,
            value: Value::Number(1.0),
        };
        assert!(experiment_search_sql(Dialect::Sqlite, ACTIVE, &[metric], &[], 10, 0).is_err());
    }
}
