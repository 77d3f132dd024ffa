//! Turning a request's columns into the model's features: which column feeds which feature, and
//! how text becomes numbers (pandas category values become their codes).

use wasmflow_features::{Naming, clip};

use crate::model::Category;

/// For each of the model's features, the index of the input column that feeds it.
///
/// A column feeds a feature when its name is the feature's name, or becomes it once spaces are
/// replaced by `_` (LightGBM renames `"my feature"` to `"my_feature"` when it trains). When no
/// column name matches any feature and there are exactly as many columns as features, the
/// columns are taken in order, as `booster.predict` takes a DataFrame's columns.
pub fn match_columns(features: &[String], names: &[&str]) -> Result<Vec<usize>, String> {
    let naming = Naming {
        spaces_as_underscores: true,
        clip_names: false,
    };
    wasmflow_features::match_columns(features, features.len(), names, naming)
}

/// The values of a text column as feature values.
///
/// For a feature trained as a pandas category, a value becomes its position in the category
/// list (an unknown value becomes NaN, as pandas gives unknown categories code -1 and LightGBM
/// turns that into NaN). Otherwise text must be a number; an empty string is NaN.
pub fn text_feature(
    values: &[String],
    categories: Option<&[Category]>,
    column: &str,
) -> Result<Vec<f64>, String> {
    values
        .iter()
        .map(|value| match categories {
            Some(categories) => Ok(category_code(categories, value)),
            None => parse_number(value).ok_or_else(|| {
                format!(
                    "column '{column}' holds '{}', which is not a number",
                    clip(value)
                )
            }),
        })
        .collect()
}

fn category_code(categories: &[Category], value: &str) -> f64 {
    let number = parse_number(value);
    categories
        .iter()
        .position(|c| match c {
            Category::Text(t) => t == value,
            Category::Number(n) => number.is_some_and(|x| x == *n),
        })
        .map_or(f64::NAN, |i| i as f64)
}

fn parse_number(value: &str) -> Option<f64> {
    let value = value.trim();
    if value.is_empty() {
        return Some(f64::NAN);
    }
    value.parse().ok()
}
