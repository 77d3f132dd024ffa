//! Matching a request to a model's features: columns to feature names (or positions), feature
//! names in error messages, and the rows of a 2-D tensor. Plain functions on names and shapes, so
//! the flavor libraries (skops, lightgbm, xgboost) share them with plugins and test them natively.

/// `s` cut to its first 40 characters, for quoting a value in a message.
pub fn clip(s: &str) -> &str {
    clip_to(s, 40)
}

/// `s` cut to its first `max` characters.
pub fn clip_to(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// How feature names are matched and quoted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Naming {
    /// A column also feeds a feature when its name becomes the feature's once spaces are
    /// replaced by `_` (LightGBM renames `"my feature"` to `"my_feature"` when it trains).
    pub spaces_as_underscores: bool,
    /// Feature names in messages are clipped (see [`clip`]).
    pub clip_names: bool,
}

/// The model's features for a message: the first 20, quoted, then how many more there are.
pub fn list_features(features: &[String], naming: Naming) -> String {
    let shown: Vec<String> = features.iter().take(20).map(|f| quote(f, naming)).collect();
    if features.len() > shown.len() {
        format!(
            "{} and {} more",
            shown.join(", "),
            features.len() - shown.len()
        )
    } else {
        shown.join(", ")
    }
}

fn quote(name: &str, naming: Naming) -> String {
    if naming.clip_names {
        format!("'{}'", clip(name))
    } else {
        format!("'{name}'")
    }
}

/// For each of the model's `features`, the index of the input column (of `names`) that feeds it.
///
/// A column feeds a feature when its name is the feature's name (or, with
/// [`Naming::spaces_as_underscores`], becomes it once spaces are `_`). When no column name
/// matches any feature and there are exactly `width` columns, the columns are taken in order
/// (`0..width`), as boosters take a DataFrame's columns. Otherwise the error names the missing
/// features (at most 10) and lists the model's.
pub fn match_columns(
    features: &[String],
    width: usize,
    names: &[&str],
    naming: Naming,
) -> Result<Vec<usize>, String> {
    let find = |feature: &str| {
        names.iter().position(|n| *n == feature).or_else(|| {
            if naming.spaces_as_underscores {
                names.iter().position(|n| n.replace(' ', "_") == feature)
            } else {
                None
            }
        })
    };
    let found: Vec<Option<usize>> = features.iter().map(|f| find(f)).collect();
    if found.iter().all(Option::is_some) {
        return Ok(found.into_iter().flatten().collect());
    }
    if found.iter().all(Option::is_none) && names.len() == width {
        return Ok((0..width).collect());
    }
    let missing: Vec<String> = features
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(name, _)| quote(name, naming))
        .take(10)
        .collect();
    Err(format!(
        "missing column{} {}; the model's features are {}",
        if missing.len() == 1 { "" } else { "s" },
        missing.join(", "),
        list_features(features, naming)
    ))
}

/// The number of rows of a tensor of `shape` holding `len` values when it is read as
/// `[rows, width]` feature rows, or None when it is not that. With `allow_vector`, a 1-D tensor
/// `[n]` is also `n` rows of a one-feature model.
pub fn tensor_rows(shape: &[i64], len: usize, width: usize, allow_vector: bool) -> Option<usize> {
    match shape {
        [rows, w]
            if *rows >= 0
                && usize::try_from(*w).is_ok_and(|w| w == width)
                && len == (*rows as usize).saturating_mul(width) =>
        {
            Some(*rows as usize)
        }
        [n] if allow_vector && width == 1 && *n >= 0 && len == *n as usize => Some(*n as usize),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn clips_by_characters() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(50);
        assert_eq!(clip(&long).chars().count(), 40);
        assert_eq!(clip_to(&long, 80), long);
    }

    #[test]
    fn lists_twenty_features() {
        let many: Vec<String> = (0..25).map(|i| format!("f{i}")).collect();
        let text = list_features(&many, Naming::default());
        assert!(text.starts_with("'f0', 'f1'"));
        assert!(text.ends_with("'f19' and 5 more"));
        let long = vec!["x".repeat(50)];
        let clipped = Naming {
            clip_names: true,
            ..Naming::default()
        };
        assert_eq!(
            list_features(&long, clipped),
            format!("'{}'", "x".repeat(40))
        );
        assert_eq!(
            list_features(&long, Naming::default()),
            format!("'{}'", long[0])
        );
    }

    #[test]
    fn matches_by_name_then_by_position() {
        let features = strings(&["a", "b c", "b_c"]);
        let plain = Naming::default();
        let lgb = Naming {
            spaces_as_underscores: true,
            ..plain
        };
        assert_eq!(
            match_columns(&features, 3, &["b_c", "b c", "a"], plain),
            Ok(vec![2, 1, 0])
        );
        assert_eq!(
            match_columns(&features, 3, &["x", "b c", "a"], lgb),
            Ok(vec![2, 1, 1])
        );
        assert!(match_columns(&features, 3, &["x", "b c", "a"], plain).is_err());
        assert_eq!(
            match_columns(&features, 3, &["x", "y", "z"], plain),
            Ok(vec![0, 1, 2])
        );
        let err = match_columns(&features, 3, &["a", "y"], plain).unwrap_err();
        assert_eq!(
            err,
            "missing columns 'b c', 'b_c'; the model's features are 'a', 'b c', 'b_c'"
        );
    }

    #[test]
    fn tensor_shapes() {
        assert_eq!(tensor_rows(&[2, 3], 6, 3, false), Some(2));
        assert_eq!(tensor_rows(&[2, 3], 5, 3, false), None);
        assert_eq!(tensor_rows(&[2, -3], 6, 3, false), None);
        assert_eq!(tensor_rows(&[-2, 3], 6, 3, false), None);
        assert_eq!(tensor_rows(&[4], 4, 1, false), None);
        assert_eq!(tensor_rows(&[4], 4, 1, true), Some(4));
        assert_eq!(tensor_rows(&[4], 4, 2, true), None);
        assert_eq!(tensor_rows(&[i64::MAX, 4], 8, 4, false), None);
    }
}
