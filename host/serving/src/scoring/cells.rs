//! One column's (or one flat tensor's) values as a request gave them, before the signature's
//! types are applied: typed buffers while the values are all floats or all integers (a
//! 1,000-row frame is then 20 `Vec<f64>`, not 20,000 JSON values), JSON values otherwise.
//!
//! A buffer holds exactly what the JSON values would: `to_json` gives back the very values a
//! `serde_json::Value` parse makes, so every cast a typed buffer does not do itself is the JSON
//! one, with its messages.

use serde_json::{Number, Value as Json};

#[derive(Debug, Clone)]
pub(crate) enum Cells {
    /// Numbers written with a fraction or an exponent (serde's `f64`s, always finite) and nulls,
    /// held as NaN: no float literal is NaN, and the NaN tokens are marked strings, kept as JSON.
    Float { values: Vec<f64>, nulls: bool },
    /// Integers that fit an `i64`.
    Int(Vec<i64>),
    /// Anything else, or a mix: the values as JSON.
    Json(Vec<Json>),
}

impl Default for Cells {
    fn default() -> Self {
        Self::Json(Vec::new())
    }
}

impl Cells {
    pub fn with_capacity(capacity: usize) -> Self {
        Self::Json(Vec::with_capacity(capacity))
    }

    /// Room for `additional` more values in whichever buffer holds them.
    pub fn reserve(&mut self, additional: usize) {
        match self {
            Self::Float { values, .. } => values.reserve(additional),
            Self::Int(values) => values.reserve(additional),
            Self::Json(values) => values.reserve(additional),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Float { values, .. } => values.len(),
            Self::Int(values) => values.len(),
            Self::Json(values) => values.len(),
        }
    }

    /// An empty buffer is JSON; it takes the type of its first value.
    fn empty_json(&mut self) -> Option<usize> {
        match self {
            Self::Json(values) if values.is_empty() => Some(values.capacity()),
            _ => None,
        }
    }

    pub fn push_f64(&mut self, x: f64) {
        match self {
            Self::Float { values, .. } => values.push(x),
            _ => {
                if let Some(capacity) = self.empty_json() {
                    let mut values = Vec::with_capacity(capacity.max(1));
                    values.push(x);
                    *self = Self::Float {
                        values,
                        nulls: false,
                    };
                } else {
                    // serde_json's own visitor: a float literal is a float `Number`.
                    self.push_json(Number::from_f64(x).map_or(Json::Null, Json::Number));
                }
            }
        }
    }

    pub fn push_i64(&mut self, x: i64) {
        match self {
            Self::Int(values) => values.push(x),
            _ => {
                if let Some(capacity) = self.empty_json() {
                    let mut values = Vec::with_capacity(capacity.max(1));
                    values.push(x);
                    *self = Self::Int(values);
                } else {
                    self.push_json(Json::from(x));
                }
            }
        }
    }

    pub fn push_u64(&mut self, x: u64) {
        match i64::try_from(x) {
            Ok(x) => self.push_i64(x),
            Err(_) => self.push_json(Json::from(x)),
        }
    }

    pub fn push_null(&mut self) {
        match self {
            Self::Float { values, nulls } => {
                values.push(f64::NAN);
                *nulls = true;
            }
            _ => {
                if let Some(capacity) = self.empty_json() {
                    let mut values = Vec::with_capacity(capacity.max(1));
                    values.push(f64::NAN);
                    *self = Self::Float {
                        values,
                        nulls: true,
                    };
                } else {
                    self.push_json(Json::Null);
                }
            }
        }
    }

    /// Any value; numbers and nulls go to the typed buffers while they can.
    pub fn push(&mut self, value: Json) {
        match &value {
            Json::Null => self.push_null(),
            Json::Number(n) if n.is_f64() => self.push_f64(n.as_f64().unwrap_or(f64::NAN)),
            Json::Number(n) if n.is_i64() => self.push_i64(n.as_i64().unwrap_or_default()),
            _ => self.push_json(value),
        }
    }

    /// A value the typed buffers cannot hold (or a number after another type): from here on
    /// the buffer is JSON.
    pub fn push_json(&mut self, value: Json) {
        if let Self::Json(values) = self {
            values.push(value);
            return;
        }
        let mut values = self.to_json();
        values.push(value);
        *self = Self::Json(values);
    }

    /// The values as a `serde_json::Value` parse of the request holds them.
    pub fn to_json(&self) -> Vec<Json> {
        match self {
            Self::Float { values, .. } => values
                .iter()
                .map(|&x| Number::from_f64(x).map_or(Json::Null, Json::Number))
                .collect(),
            Self::Int(values) => values.iter().map(|&x| Json::from(x)).collect(),
            Self::Json(values) => values.clone(),
        }
    }

    /// The value at `i`, as JSON.
    pub fn json_at(&self, i: usize) -> Json {
        match self {
            Self::Float { values, .. } => {
                Number::from_f64(values[i]).map_or(Json::Null, Json::Number)
            }
            Self::Int(values) => Json::from(values[i]),
            Self::Json(values) => values[i].clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_buffers_give_back_the_json_values() {
        let values: Vec<Json> = serde_json::from_str(
            r#"[1.5, null, 2e3, -0.0, 7, -3, 18446744073709551615, "x", true, null, 4.25]"#,
        )
        .unwrap();
        // Every prefix: a buffer holds what the JSON would, whatever it turned into.
        for end in 0..=values.len() {
            for start in 0..end {
                let mut cells = Cells::default();
                for value in &values[start..end] {
                    cells.push(value.clone());
                }
                assert_eq!(cells.to_json(), values[start..end], "{start}..{end}");
                assert_eq!(cells.len(), end - start);
                for i in 0..end - start {
                    assert_eq!(cells.json_at(i), values[start + i]);
                }
            }
        }
        let mut floats = Cells::default();
        floats.push_f64(0.5);
        floats.push_null();
        assert!(matches!(floats, Cells::Float { nulls: true, .. }));
        let mut ints = Cells::default();
        ints.push_u64(3);
        ints.push_i64(-4);
        assert!(matches!(ints, Cells::Int(ref v) if v == &[3, -4]));
        ints.push_f64(0.5);
        assert!(matches!(ints, Cells::Json(ref v) if v[2].is_f64() && v[0].is_i64()));
    }
}
