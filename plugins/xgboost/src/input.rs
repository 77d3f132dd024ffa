//! Turning a request's columns into the booster's float32 feature rows.

use wasmflow_features::Naming;

/// For each of the model's features, the index of the input column that feeds it.
///
/// With feature names saved in the model (a model trained on a DataFrame), each feature takes
/// the column of its name. Without names (trained on an array), or when no column name matches
/// any feature, the columns are taken in order and there must be exactly `num_feature` of them.
pub fn match_columns(
    feature_names: &[String],
    num_feature: usize,
    names: &[&str],
) -> Result<Vec<usize>, String> {
    if !feature_names.is_empty() {
        let naming = Naming {
            spaces_as_underscores: false,
            clip_names: true,
        };
        return wasmflow_features::match_columns(feature_names, num_feature, names, naming);
    }
    if names.len() != num_feature {
        return Err(format!(
            "the input has {} columns; the model expects {num_feature} features",
            names.len()
        ));
    }
    Ok((0..num_feature).collect())
}

/// Row-major float32 rows from feature columns (one slice of f64 per feature, `rows` each),
/// cast as XGBoost casts its input (`static_cast<float>`).
pub fn rows_from_columns(columns: &[&[f64]], rows: usize) -> Vec<f32> {
    let width = columns.len();
    let mut out = vec![0f32; rows * width];
    for (j, column) in columns.iter().enumerate() {
        for (i, &x) in column.iter().enumerate().take(rows) {
            out[i * width + j] = x as f32;
        }
    }
    out
}

/// A text cell as a number: a number's text, or NaN for an empty cell.
pub fn parse_number(value: &str) -> Option<f64> {
    let value = value.trim();
    if value.is_empty() {
        return Some(f64::NAN);
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_by_name_then_by_position() {
        let names = vec!["a".to_string(), "b".to_string()];
        assert_eq!(match_columns(&names, 2, &["b", "x", "a"]), Ok(vec![2, 0]));
        assert_eq!(match_columns(&names, 2, &["x", "y"]), Ok(vec![0, 1]));
        assert!(match_columns(&names, 2, &["a", "y"]).is_err());
        assert_eq!(match_columns(&[], 2, &["x", "y"]), Ok(vec![0, 1]));
        assert!(match_columns(&[], 2, &["x"]).is_err());
    }
}
