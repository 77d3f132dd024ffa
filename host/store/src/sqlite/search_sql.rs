//! Compiles parsed searches into SQLite queries. Every value and key is a bound parameter; only
//! fixed column names and operators are written into the SQL text.

use rusqlite::types::Value as SqlValue;
use wasmflow_core::search::{Comparison, Entity, Op, OrderBy, Value};
use wasmflow_core::{Error, Result};

use super::sql_err;
use super::tracking::json_list;

pub(crate) struct SqlQuery {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

impl SqlQuery {
    /// Runs the query and collects its first column.
    pub fn first_column<T: rusqlite::types::FromSql>(
        &self,
        conn: &rusqlite::Connection,
    ) -> Result<Vec<T>> {
        let mut stmt = conn.prepare_cached(&self.sql).map_err(sql_err)?;
        stmt.query_map(rusqlite::params_from_iter(self.params.iter()), |r| r.get(0))
            .map_err(sql_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql_err)
    }
}

/// SQL for comparing `column` with a bound value. LIKE is case-sensitive in MLflow but not in
/// SQLite, so it becomes a GLOB with the pattern translated; ILIKE is SQLite's LIKE.
pub(crate) fn compare(
    column: &str,
    op: Op,
    value: &Value,
    params: &mut Vec<SqlValue>,
) -> Result<String> {
    let bound = match (op, value) {
        (Op::IsNull, _) => return Ok(format!("{column} IS NULL")),
        (Op::IsNotNull, _) => return Ok(format!("{column} IS NOT NULL")),
        (Op::In | Op::NotIn, Value::List(items)) => {
            params.push(json_list(items));
            let not = if op == Op::NotIn { "NOT " } else { "" };
            return Ok(format!("{column} {not}IN (SELECT value FROM json_each(?))"));
        }
        (Op::Like, Value::Str(s)) => {
            params.push(SqlValue::Text(like_to_glob(s)));
            return Ok(format!("{column} GLOB ?"));
        }
        (Op::ILike, Value::Str(s)) => {
            params.push(SqlValue::Text(s.clone()));
            return Ok(format!("{column} LIKE ? ESCAPE '\\'"));
        }
        (_, Value::Str(s)) => SqlValue::Text(s.clone()),
        (_, Value::Number(n)) => SqlValue::Real(*n),
        (_, Value::List(_) | Value::None) => {
            return Err(Error::invalid(format!(
                "the comparator '{}' does not take this kind of value",
                op.as_str()
            )));
        }
    };
    params.push(bound);
    Ok(format!("{column} {} ?", op.as_str()))
}

/// Translates an SQL LIKE pattern (`%`, `_`, `\` escapes) into a GLOB pattern, escaping GLOB's
/// own metacharacters as one-character classes.
pub(crate) fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '\\' => {
                if let Some(escaped) = chars.next() {
                    push_literal(&mut out, escaped);
                }
            }
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

fn run_condition(c: &Comparison, params: &mut Vec<SqlValue>) -> Result<String> {
    let key_bound = |params: &mut Vec<SqlValue>| params.push(SqlValue::Text(c.key.clone()));
    match c.entity {
        Entity::Attribute => compare(run_attribute_column(&c.key)?, c.op, &c.value, params),
        Entity::Metric => {
            key_bound(params);
            let cond = compare("m.value", c.op, &c.value, params)?;
            // NaN points are stored as 0 with a flag; they match no numeric comparison.
            Ok(format!(
                "EXISTS (SELECT 1 FROM latest_metrics m WHERE m.run_uuid = r.run_uuid \
                 AND m.key = ? AND m.is_nan = 0 AND {cond})"
            ))
        }
        Entity::Param | Entity::Tag => {
            let table = if c.entity == Entity::Param {
                "params"
            } else {
                "tags"
            };
            match c.op {
                Op::IsNull | Op::IsNotNull => {
                    key_bound(params);
                    let not = if c.op == Op::IsNull { "NOT " } else { "" };
                    Ok(format!(
                        "{not}EXISTS (SELECT 1 FROM {table} x WHERE x.run_uuid = r.run_uuid \
                         AND x.key = ?)"
                    ))
                }
                _ => {
                    key_bound(params);
                    let cond = compare("x.value", c.op, &c.value, params)?;
                    Ok(format!(
                        "EXISTS (SELECT 1 FROM {table} x WHERE x.run_uuid = r.run_uuid \
                         AND x.key = ? AND {cond})"
                    ))
                }
            }
        }
        Entity::Dataset => {
            let cond = match c.key.as_str() {
                "name" => compare("d.name", c.op, &c.value, params)?,
                "digest" => compare("d.digest", c.op, &c.value, params)?,
                "context" => {
                    let inner = compare("t.value ->> '$.value'", c.op, &c.value, params)?;
                    format!(
                        "EXISTS (SELECT 1 FROM json_each(i.tags) t \
                         WHERE t.value ->> '$.key' = 'mlflow.data.context' AND {inner})"
                    )
                }
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

/// The value a run sorts by for one `order_by` item, joined in as `o{i}`.
fn run_order(
    i: usize,
    o: &OrderBy,
    joins: &mut String,
    join_params: &mut Vec<SqlValue>,
) -> Result<String> {
    let dir = if o.ascending { "ASC" } else { "DESC" };
    let table = match o.entity {
        Entity::Attribute => {
            let column = run_attribute_column(&o.key)?;
            return Ok(format!("{column} IS NULL, {column} {dir}"));
        }
        Entity::Metric => "latest_metrics",
        Entity::Param => "params",
        Entity::Tag => "tags",
        Entity::Dataset => return Err(Error::invalid("datasets cannot order runs")),
    };
    joins.push_str(&format!(
        " LEFT JOIN {table} o{i} ON o{i}.run_uuid = r.run_uuid AND o{i}.key = ?"
    ));
    join_params.push(SqlValue::Text(o.key.clone()));
    if o.entity == Entity::Metric {
        // As in MLflow, either way: numbers first, then NaN, then runs without the metric.
        Ok(format!(
            "o{i}.value IS NULL, o{i}.is_nan ASC, o{i}.value {dir}"
        ))
    } else {
        Ok(format!("o{i}.value IS NULL, o{i}.value {dir}"))
    }
}

pub(crate) fn run_search_sql(
    experiment_ids: &[i64],
    stages: &[&str],
    filters: &[Comparison],
    order_by: &[OrderBy],
    limit: usize,
    offset: u64,
) -> Result<SqlQuery> {
    let mut joins = String::new();
    let mut join_params = Vec::new();
    let mut order = Vec::new();
    for (i, o) in order_by.iter().enumerate() {
        order.push(run_order(i, o, &mut joins, &mut join_params)?);
    }
    order.push("r.start_time DESC".into());
    order.push("r.run_uuid ASC".into());

    let mut params = join_params;
    params.push(json_list(experiment_ids));
    params.push(json_list(stages));
    let mut conditions = vec![
        "r.experiment_id IN (SELECT value FROM json_each(?))".to_string(),
        "r.lifecycle_stage IN (SELECT value FROM json_each(?))".to_string(),
    ];
    for c in filters {
        conditions.push(run_condition(c, &mut params)?);
    }
    params.push(SqlValue::Integer(limit as i64));
    params.push(SqlValue::Integer(offset as i64));
    Ok(SqlQuery {
        sql: format!(
            "SELECT r.run_uuid FROM runs r{joins} WHERE {} ORDER BY {} LIMIT ? OFFSET ?",
            conditions.join(" AND "),
            order.join(", ")
        ),
        params,
    })
}

fn experiment_attribute_column(key: &str) -> Result<&'static str> {
    Ok(match key {
        "name" => "e.name",
        "experiment_id" => "e.experiment_id",
        "creation_time" => "e.creation_time",
        "last_update_time" => "e.last_update_time",
        other => return Err(Error::invalid(format!("Invalid attribute key '{other}'"))),
    })
}

pub(crate) fn experiment_search_sql(
    stages: &[&str],
    filters: &[Comparison],
    order_by: &[OrderBy],
    limit: usize,
    offset: u64,
) -> Result<SqlQuery> {
    let mut params = vec![json_list(stages)];
    let mut conditions = vec!["e.lifecycle_stage IN (SELECT value FROM json_each(?))".to_string()];
    for c in filters {
        conditions.push(match c.entity {
            Entity::Attribute => compare(
                experiment_attribute_column(&c.key)?,
                c.op,
                &c.value,
                &mut params,
            )?,
            Entity::Tag => {
                params.push(SqlValue::Text(c.key.clone()));
                match c.op {
                    Op::IsNull | Op::IsNotNull => format!(
                        "{}EXISTS (SELECT 1 FROM experiment_tags t \
                         WHERE t.experiment_id = e.experiment_id AND t.key = ?)",
                        if c.op == Op::IsNull { "NOT " } else { "" }
                    ),
                    _ => {
                        let cond = compare("t.value", c.op, &c.value, &mut params)?;
                        format!(
                            "EXISTS (SELECT 1 FROM experiment_tags t \
                             WHERE t.experiment_id = e.experiment_id AND t.key = ? AND {cond})"
                        )
                    }
                }
            }
            other => {
                return Err(Error::invalid(format!(
                    "Invalid entity type '{other:?}' for experiments"
                )));
            }
        });
    }
    let mut order = Vec::new();
    for o in order_by {
        if o.entity != Entity::Attribute {
            return Err(Error::invalid(format!(
                "Invalid order_by key '{}' for experiments",
                o.key
            )));
        }
        let dir = if o.ascending { "ASC" } else { "DESC" };
        order.push(format!("{} {dir}", experiment_attribute_column(&o.key)?));
    }
    // MLflow's default is newest first, then by id; an explicit order gets an id tie-breaker.
    if order.is_empty() {
        order.push("e.creation_time DESC".into());
        order.push("e.experiment_id ASC".into());
    } else if !order_by.iter().any(|o| o.key == "experiment_id") {
        order.push("e.experiment_id DESC".into());
    }
    params.push(SqlValue::Integer(limit as i64));
    params.push(SqlValue::Integer(offset as i64));
    Ok(SqlQuery {
        sql: format!(
            "SELECT e.experiment_id FROM experiments e WHERE {} ORDER BY {} LIMIT ? OFFSET ?",
            conditions.join(" AND "),
            order.join(", ")
        ),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_become_globs() {
        assert_eq!(like_to_glob("a%b_c"), "a*b?c");
        assert_eq!(like_to_glob("x*y?[z]"), "x[*]y[?][[]z[]]");
        assert_eq!(like_to_glob("100\\%"), "100%");
    }
}
