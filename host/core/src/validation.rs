//! The rules of MLflow's `mlflow/utils/validation.py`, with its limits and messages.

use crate::entities::{Metric, Param, Tag};
use crate::{Error, Result};

pub const MAX_ENTITY_KEY_LENGTH: usize = 250;
pub const MAX_PARAM_VAL_LENGTH: usize = 6000;
pub const MAX_TAG_VAL_LENGTH: usize = 8000;
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
pub const MAX_EXPERIMENT_TAG_KEY_LENGTH: usize = 250;
pub const MAX_EXPERIMENT_TAG_VAL_LENGTH: usize = 20000;
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
pub const MAX_DATASET_NAME_SIZE: usize = 500;
pub const MAX_DATASET_DIGEST_SIZE: usize = 36;
pub const MAX_DATASET_SOURCE_SIZE: usize = 65535;
pub const MAX_DATASET_SCHEMA_SIZE: usize = 1_048_575;
pub const MAX_DATASET_PROFILE_SIZE: usize = 16_777_215;
pub const MAX_INPUT_TAG_KEY_SIZE: usize = 255;
pub const MAX_INPUT_TAG_VALUE_SIZE: usize = 500;
/// The most results one search page may return (MLflow's `SEARCH_MAX_RESULTS_THRESHOLD`).
pub const SEARCH_MAX_RESULTS_THRESHOLD: usize = 50000;
pub const SEARCH_MAX_RESULTS_DEFAULT: usize = 1000;

/// MLflow's `invalid_value` message.
fn invalid_value(path: &str, value: &str, suffix: &str) -> Error {
    let sep = if suffix.is_empty() { "" } else { ": " };
    Error::invalid(format!(
        "Invalid value '{value}' for parameter '{path}' supplied{sep}{suffix}"
    ))
}

fn missing_value(path: &str) -> Error {
    Error::invalid(format!("Missing value for required parameter '{path}'."))
}

pub fn exceeds_maximum_length(name: &str, limit: usize) -> Error {
    Error::invalid(format!(
        "'{name}' exceeds the maximum length of {limit} characters"
    ))
}

/// Checks a length in characters, as Python's `len` counts them.
pub fn validate_length(name: &str, limit: usize, value: &str) -> Result<()> {
    if value.len() > limit && value.chars().count() > limit {
        return Err(exceeds_maximum_length(name, limit));
    }
    Ok(())
}

/// Python's `posixpath.normpath`, which MLflow uses to decide whether a key names a path uniquely.
fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let leading = if path.starts_with("//") && !path.starts_with("///") {
        "//"
    } else if path.starts_with('/') {
        "/"
    } else {
        ""
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if !leading.is_empty() => {}
            other => parts.push(other),
        }
    }
    let joined = format!("{leading}{}", parts.join("/"));
    if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

fn path_not_unique(name: &str) -> bool {
    let norm = normpath(name);
    norm != name || norm == "." || norm.starts_with("..") || norm.starts_with('/')
}

/// Keys of metrics, params and tags: `^[/\w.\- :]*$` and no path tricks.
pub fn validate_key(path: &str, name: &str) -> Result<()> {
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | ' ' | ':');
    if !name.chars().all(allowed) {
        return Err(invalid_value(
            path,
            name,
            "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), \
             spaces ( ), colon(:) and slashes (/).",
        ));
    }
    if path_not_unique(name) {
        return Err(invalid_value(
            path,
            name,
            &format!(
                "Names may be treated as files in certain cases, and must not resolve to other \
                 names when treated as such. This name would resolve to '{}'",
                normpath(name)
            ),
        ));
    }
    Ok(())
}

fn join_path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

pub fn validate_metric(metric: &Metric, path: &str) -> Result<()> {
    validate_key(&join_path(path, "name"), &metric.key)?;
    if metric.timestamp < 0 {
        return Err(invalid_value(
            &join_path(path, "timestamp"),
            &metric.timestamp.to_string(),
            &format!(
                "metric '{}' (value={}). Timestamp must be a nonnegative long (64-bit integer) ",
                metric.key, metric.value
            ),
        ));
    }
    validate_length("Metric name", MAX_ENTITY_KEY_LENGTH, &metric.key)
}

pub fn validate_param(param: &Param, path: &str) -> Result<()> {
    validate_key(&join_path(path, "key"), &param.key)?;
    validate_length("Param key", MAX_ENTITY_KEY_LENGTH, &param.key)?;
    validate_length("Param value", MAX_PARAM_VAL_LENGTH, &param.value)
}

pub fn validate_tag(tag: &Tag, path: &str) -> Result<()> {
    validate_key(&join_path(path, "key"), &tag.key)?;
    validate_length(&join_path(path, "key"), MAX_ENTITY_KEY_LENGTH, &tag.key)?;
    validate_length(&join_path(path, "value"), MAX_TAG_VAL_LENGTH, &tag.value)
}

pub fn validate_experiment_tag(tag: &Tag) -> Result<()> {
    validate_key("key", &tag.key)?;
    validate_length("key", MAX_EXPERIMENT_TAG_KEY_LENGTH, &tag.key)?;
    validate_length("value", MAX_EXPERIMENT_TAG_VAL_LENGTH, &tag.value)
}

/// The batch limits and then every entity of a `log-batch` request.
pub fn validate_batch(metrics: &[Metric], params: &[Param], tags: &[Tag]) -> Result<()> {
    let limit = |entity: &str, limit: usize, len: usize| {
        if len > limit {
            return Err(Error::invalid(format!(
                "A batch logging request can contain at most {limit} {entity}. Got {len} \
                 {entity}. Please split up {entity} across multiple requests and try again."
            )));
        }
        Ok(())
    };
    limit("metrics", MAX_METRICS_PER_BATCH, metrics.len())?;
    limit("params", MAX_PARAMS_TAGS_PER_BATCH, params.len())?;
    limit("tags", MAX_PARAMS_TAGS_PER_BATCH, tags.len())?;
    limit(
        "metrics, params, and tags",
        MAX_ENTITIES_PER_BATCH,
        metrics.len() + params.len() + tags.len(),
    )?;
    // A batch repeats a few keys over many points: each key is checked once (and no error path
    // is formatted for a valid point).
    let mut valid_keys = std::collections::HashSet::new();
    for (i, m) in metrics.iter().enumerate() {
        if m.timestamp >= 0 && valid_keys.contains(m.key.as_str()) {
            continue;
        }
        validate_metric(m, &format!("metrics[{i}]"))?;
        valid_keys.insert(m.key.as_str());
    }
    for (i, p) in params.iter().enumerate() {
        validate_param(p, &format!("params[{i}]"))?;
    }
    for (i, t) in tags.iter().enumerate() {
        validate_tag(t, &format!("tags[{i}]"))?;
    }
    let mut seen = std::collections::HashSet::new();
    let dupes: Vec<&str> = params
        .iter()
        .filter(|p| !seen.insert(p.key.as_str()))
        .map(|p| p.key.as_str())
        .collect();
    if !dupes.is_empty() {
        return Err(Error::invalid(format!(
            "Duplicate parameter keys have been submitted: {dupes:?}. Please ensure the request \
             contains only one param value per param key."
        )));
    }
    Ok(())
}

fn matches_id(id: &str, max_tail: usize) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id.chars().count() <= max_tail + 1
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// `^[a-zA-Z0-9][\w\-]{0,255}$`
pub fn validate_run_id(run_id: &str, path: &str) -> Result<()> {
    if run_id.is_empty() {
        return Err(missing_value(path));
    }
    if !matches_id(run_id, 255) {
        return Err(invalid_value(path, run_id, ""));
    }
    Ok(())
}

/// Experiment ids are integers in MLflow's SQL store.
pub fn parse_experiment_id(id: &str) -> Result<i64> {
    if id.is_empty() {
        return Err(missing_value("experiment_id"));
    }
    id.parse().map_err(|_| {
        Error::invalid(format!(
            "Invalid experiment ID '{id}'. Experiment ID must be a valid integer."
        ))
    })
}

pub fn validate_experiment_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(format!("Invalid experiment name: '{name}'")));
    }
    validate_length("name", MAX_EXPERIMENT_NAME_LENGTH, name)
}

/// `max_results` of a search: positive and at most `threshold` (MLflow's words for each).
pub fn validate_max_results(max_results: i64, threshold: usize) -> Result<usize> {
    if max_results < 1 {
        return Err(Error::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied. It must be a \
             positive integer"
        )));
    }
    if max_results as u64 > threshold as u64 {
        return Err(Error::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied. It must be at \
             most {threshold}"
        )));
    }
    Ok(max_results as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: &str) -> Tag {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn normpath_matches_python() {
        for (input, want) in [
            ("", "."),
            ("a/b", "a/b"),
            ("a//b", "a/b"),
            ("a/./b", "a/b"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("/a/../../b", "/b"),
            ("a/", "a"),
            ("//a", "//a"),
            ("///a", "/a"),
        ] {
            assert_eq!(normpath(input), want, "normpath({input:?})");
        }
    }

    #[test]
    fn keys_follow_mlflow_rules() {
        assert!(validate_key("key", "loss/train:epoch 1.x-y").is_ok());
        assert!(validate_key("key", "ünïcödé").is_ok());
        for bad in [
            "",
            "a/../b",
            "../x",
            "/abs",
            "a//b",
            "x/",
            "a\\b",
            "semi;colon",
            ".",
        ] {
            let err = validate_key("key", bad).unwrap_err();
            assert_eq!(err.code, crate::ErrorCode::InvalidParameterValue, "{bad:?}");
        }
    }

    #[test]
    fn lengths_are_enforced() {
        assert!(validate_tag(&tag("k", &"v".repeat(8000)), "").is_ok());
        let err = validate_tag(&tag("k", &"v".repeat(8001)), "").unwrap_err();
        assert!(
            err.message.contains("maximum length of 8000"),
            "{}",
            err.message
        );
        let p = Param {
            key: "k".repeat(251),
            value: String::new(),
        };
        assert!(validate_param(&p, "").is_err());
    }

    #[test]
    fn batch_limits() {
        let metrics: Vec<Metric> = (0..1001)
            .map(|i| Metric {
                key: format!("m{i}"),
                value: 1.0,
                timestamp: 0,
                step: 0,
                model_id: None,
                dataset_name: None,
                dataset_digest: None,
                run_id: None,
            })
            .collect();
        let err = validate_batch(&metrics, &[], &[]).unwrap_err();
        assert!(err.message.contains("at most 1000 metrics"));
        let dup = vec![
            Param {
                key: "a".into(),
                value: "1".into(),
            },
            Param {
                key: "a".into(),
                value: "2".into(),
            },
        ];
        assert!(
            validate_batch(&[], &dup, &[])
                .unwrap_err()
                .message
                .contains("Duplicate")
        );
    }

    #[test]
    fn ids() {
        assert!(validate_run_id("0123abcd", "run_id").is_ok());
        assert!(validate_run_id("-bad", "run_id").is_err());
        assert!(validate_run_id("a/b", "run_id").is_err());
        assert!(validate_run_id(&"a".repeat(257), "run_id").is_err());
        assert_eq!(parse_experiment_id("12").unwrap(), 12);
        assert!(parse_experiment_id("x1").is_err());
    }
}
