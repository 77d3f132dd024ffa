//! The row limit: a JSON body's rows counted in one pass that allocates nothing, before the body
//! is parsed. Parsing holds many times the body's size (a 1,000,000-row, 8 MB body took 575 MB
//! as JSON values), so a request past the limit must be refused before it is parsed, not after.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserializer as _;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The default of `--max-scoring-rows` (`WASMFLOW_MAX_SCORING_ROWS`).
pub const DEFAULT_MAX_ROWS: usize = 100_000;

static MAX_ROWS: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_ROWS);

/// Sets the most rows one request may hold, for the whole process (a server's flag).
pub fn set_max_rows(rows: usize) {
    MAX_ROWS.store(rows.max(1), Ordering::Relaxed);
}

pub(crate) fn max_rows() -> usize {
    MAX_ROWS.load(Ordering::Relaxed)
}

/// The refusal of a request past `limit`, with its number of rows when it was counted.
pub(crate) fn too_many(rows: Option<usize>, limit: usize) -> String {
    let holds = match rows {
        Some(rows) => format!("{rows} rows, more than"),
        None => "more rows than".into(),
    };
    format!(
        "the request holds {holds} this server's limit of {limit} (--max-scoring-rows or \
         WASMFLOW_MAX_SCORING_ROWS); send it in smaller batches"
    )
}

/// The rows of a JSON scoring body: the length of `dataframe_split.data`, of
/// `dataframe_records`, or of `instances`/`inputs` (a list, or the longest list of a dict of
/// named inputs). 0 when the body is not in such a shape: the parser then words the error.
pub(crate) fn count_json(body: &[u8]) -> usize {
    let mut de = serde_json::Deserializer::from_slice(body);
    (&mut de).deserialize_any(Top).unwrap_or(0)
}

/// A visitor that accepts any JSON value and answers `Self::Value` from what it finds.
macro_rules! any_scalar_is_zero {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<usize, E> {
            Ok(0)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<usize, E> {
            Ok(0)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<usize, E> {
            Ok(0)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<usize, E> {
            Ok(0)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<usize, E> {
            Ok(0)
        }
        fn visit_unit<E: de::Error>(self) -> Result<usize, E> {
            Ok(0)
        }
    };
}

/// The top-level object: the largest count of the input fields it has.
struct Top;

impl<'de> Visitor<'de> for Top {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    any_scalar_is_zero!();

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut rows = 0;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let found = match key.as_ref() {
                "dataframe_split" => map.next_value_seed(Field(Split))?,
                "dataframe_records" => map.next_value_seed(Field(Length))?,
                "instances" | "inputs" => map.next_value_seed(Field(Inputs))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    0
                }
            };
            rows = rows.max(found);
        }
        Ok(rows)
    }
}

/// A visitor used as a seed for a map's value.
struct Field<V>(V);

impl<'de, V: Visitor<'de, Value = usize>> de::DeserializeSeed<'de> for Field<V> {
    type Value = usize;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self.0)
    }
}

/// A list's length (0 for anything else).
struct Length;

impl<'de> Visitor<'de> for Length {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    any_scalar_is_zero!();

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(0)
    }
}

/// `dataframe_split`: the length of its `data`.
struct Split;

impl<'de> Visitor<'de> for Split {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    any_scalar_is_zero!();

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<usize, A::Error> {
        Length.visit_seq(seq).map(|_| 0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut rows = 0;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "data" {
                rows = map.next_value_seed(Field(Length))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(rows)
    }
}

/// `instances` or `inputs`: a list's length, or the longest list of a dict of named inputs.
struct Inputs;

impl<'de> Visitor<'de> for Inputs {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    any_scalar_is_zero!();

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<usize, A::Error> {
        Length.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut rows = 0;
        while map.next_key::<IgnoredAny>()?.is_some() {
            rows = rows.max(map.next_value_seed(Field(Length))?);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_input_form() {
        let count = |s: &str| count_json(s.as_bytes());
        assert_eq!(
            count(r#"{"dataframe_split": {"columns": ["a"], "data": [[1], [2], [3]]}}"#),
            3
        );
        assert_eq!(
            count(r#"{"dataframe_split": {"data": [[1], [2]], "columns": ["a"]}}"#),
            2
        );
        assert_eq!(count(r#"{"dataframe_records": [{"a": 1}, {"a": 2}]}"#), 2);
        assert_eq!(count(r#"{"instances": [1, 2, 3, 4]}"#), 4);
        assert_eq!(
            count(r#"{"inputs": {"a": [1, 2], "b": [1, 2, 3]}, "params": {"k": [1,2,3,4,5]}}"#),
            3
        );
        assert_eq!(count(r#"{"instances": [[1, 2, 3]]}"#), 1);
    }

    #[test]
    fn other_shapes_count_zero_and_are_left_to_the_parser() {
        for body in [
            "",
            "[1, 2, 3]",
            "{\"instances\": 5}",
            "{\"dataframe_split\": [1, 2]}",
            "{\"other\": [1, 2, 3]}",
            "{\"instances\": [1, 2",
            "nonsense",
        ] {
            assert_eq!(count_json(body.as_bytes()), 0, "{body}");
        }
    }
}
