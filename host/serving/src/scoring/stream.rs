//! A JSON request body read straight into typed columns (serde visitors pushing each value into
//! its column's [`Cells`]), without a `serde_json::Value` tree: a 1,000-row frame of 20 float
//! columns is 20 `Vec<f64>`, where the tree was 20,000 boxed values and their lists.
//!
//! It takes the shapes clients send (a frame split or as records, records or nested lists for
//! `instances` / `inputs`, an object of named lists) and gives up on anything else: a row of
//! another length, a scalar where a list is usual, an empty list, a duplicate key, a nested list
//! in a column, invalid JSON. The caller then parses the body as a whole JSON value, whose code
//! words every error; what this parse returns is what that one would give.
//!
//! It counts a payload's rows as it reads them (as [`super::rows::count_json`] counts them) and
//! stops at the first past the limit: the columns never hold more than the limit's rows, so a
//! huge body costs no more memory here than one at the limit.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use super::Frame;
use super::cells::Cells;

/// A request body as read.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The `params` value, if the key is present.
    pub params: Option<Json>,
    pub payload: Payload,
}

#[derive(Debug)]
pub(crate) enum Payload {
    /// `dataframe_split` or `dataframe_records`.
    Frame(Frame),
    /// `instances` / `inputs` as a list of records.
    Records(Frame),
    /// `instances` / `inputs` as rows by position (read so only for a column schema, which
    /// names them): one column per position.
    Rows(Vec<Cells>),
    /// `instances` / `inputs` as an object of named (nested) lists.
    Named(Vec<(String, Nested)>),
    /// `instances` / `inputs` as one (nested) list.
    Tensor(Nested),
}

/// A nested list of scalars: its shape and its values in row-major order.
#[derive(Debug)]
pub(crate) struct Nested {
    pub shape: Vec<i64>,
    pub flat: Cells,
}

/// Why a typed reader did not read a body.
#[derive(Debug)]
pub(crate) enum Unread {
    /// Not a shape it takes: the caller reads the body as a JSON value.
    Other,
    /// A payload with more rows than the limit; reading stopped at the first row past it.
    TooManyRows,
}

/// The body read into columns, or why not. `rows_by_position`: the model has a column schema,
/// so a list of lists for `instances` / `inputs` is rows of its columns. `limit`: the most rows
/// a payload may have.
pub(crate) fn parse(body: &[u8], rows_by_position: bool, limit: usize) -> Result<Parsed, Unread> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = Body {
        rows_by_position,
        limit,
    }
    .deserialize(&mut deserializer)
    .map_err(|e| {
        // A visitor's own error comes back as its message and the position.
        if e.to_string().starts_with(TOO_MANY_ROWS) {
            Unread::TooManyRows
        } else {
            Unread::Other
        }
    })?;
    deserializer.end().map_err(|_| Unread::Other)?;
    Ok(parsed)
}

/// The error that makes the caller read the body as a JSON value; never shown.
fn give_up<E: de::Error>() -> E {
    E::custom("not a shape the typed parse takes")
}

const TOO_MANY_ROWS: &str = "more rows than the limit";

/// Counts one more row of a payload, or stops the parse past `limit` (never shown: the caller
/// counts the whole body for the refusal's message).
fn count_row<E: de::Error>(rows: &mut usize, limit: usize) -> Result<(), E> {
    *rows += 1;
    if *rows > limit {
        return Err(E::custom(TOO_MANY_ROWS));
    }
    Ok(())
}

struct Body {
    rows_by_position: bool,
    limit: usize,
}

impl<'de> DeserializeSeed<'de> for Body {
    type Value = Parsed;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Body {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scoring request")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut params = None;
        let mut payload = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "params" => {
                    if params.is_some() {
                        return Err(give_up());
                    }
                    params = Some(map.next_value::<Json>()?);
                }
                "dataframe_split" | "dataframe_records" | "instances" | "inputs" => {
                    if payload.is_some() {
                        return Err(give_up());
                    }
                    let limit = self.limit;
                    payload = Some(match key.as_str() {
                        "dataframe_split" => Payload::Frame(map.next_value_seed(Split { limit })?),
                        "dataframe_records" => {
                            let mut records = Records::default();
                            map.next_value_seed(RecordList {
                                records: &mut records,
                                limit,
                            })?;
                            Payload::Frame(records.into_frame()?)
                        }
                        _ => map.next_value_seed(Instances {
                            rows_by_position: self.rows_by_position,
                            limit,
                        })?,
                    });
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Parsed {
            params,
            payload: payload.ok_or_else(give_up)?,
        })
    }
}

/// One scalar into a column.
struct Scalar<'a>(&'a mut Cells);

impl<'de> DeserializeSeed<'de> for Scalar<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scalar<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push_json(Json::Bool(v));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push_i64(v);
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push_u64(v);
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push_f64(v);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_json(Json::String(v.to_owned()));
        Ok(())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.0.push_json(Json::String(v));
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.push_null();
        Ok(())
    }
}

/// A first row's scalar: a new column.
struct NewColumn<'a>(&'a mut Vec<Cells>);

impl<'de> DeserializeSeed<'de> for NewColumn<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.push(Cells::default());
        let column = self.0.last_mut().ok_or_else(give_up)?;
        Scalar(column).deserialize(d)
    }
}

/// One row of scalars by position; the first row makes the columns, the others must have as
/// many values.
struct Row<'a> {
    columns: &'a mut Vec<Cells>,
    first: bool,
}

impl<'de> DeserializeSeed<'de> for Row<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Row<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.first {
            while seq.next_element_seed(NewColumn(self.columns))?.is_some() {}
            return if self.columns.is_empty() {
                Err(give_up())
            } else {
                Ok(())
            };
        }
        let mut values = 0;
        for column in self.columns.iter_mut() {
            if seq.next_element_seed(Scalar(column))?.is_none() {
                break;
            }
            values += 1;
        }
        if values != self.columns.len() || seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(give_up());
        }
        Ok(())
    }
}

/// A list of rows, by position.
struct RowList<'a> {
    columns: &'a mut Vec<Cells>,
    rows: &'a mut usize,
    limit: usize,
}

impl<'de> DeserializeSeed<'de> for RowList<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowList<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let row = Row {
                columns: self.columns,
                first: *self.rows == 0,
            };
            if seq.next_element_seed(row)?.is_none() {
                break;
            }
            count_row(self.rows, self.limit)?;
        }
        if *self.rows == 0 {
            return Err(give_up());
        }
        Ok(())
    }
}

/// `dataframe_split`: `columns` (names, or null), `data` (rows); other keys are ignored.
struct Split {
    limit: usize,
}

impl<'de> DeserializeSeed<'de> for Split {
    type Value = Frame;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Frame, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Split {
    type Value = Frame;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a split frame")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Frame, A::Error> {
        let mut names: Option<Json> = None;
        let mut values: Option<Vec<Cells>> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "columns" if names.is_none() => names = Some(map.next_value()?),
                "data" if values.is_none() => {
                    let (mut columns, mut rows) = (Vec::new(), 0);
                    map.next_value_seed(RowList {
                        columns: &mut columns,
                        rows: &mut rows,
                        limit: self.limit,
                    })?;
                    values = Some(columns);
                }
                "columns" | "data" => return Err(give_up()),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let values = values.ok_or_else(give_up)?;
        let columns: Vec<String> = match names {
            Some(Json::Array(names)) => names.iter().map(super::json_name).collect(),
            None | Some(Json::Null) => (0..values.len()).map(|i| i.to_string()).collect(),
            Some(_) => return Err(give_up()),
        };
        if columns.len() != values.len() {
            return Err(give_up());
        }
        Ok(Frame { columns, values })
    }
}

/// Records with the same keys (in any order), read into columns.
#[derive(Default)]
struct Records {
    columns: Vec<String>,
    values: Vec<Cells>,
    rows: usize,
    /// The row that last set each column (to catch a key given twice in one record).
    set_in: Vec<usize>,
}

impl Records {
    fn into_frame<E: de::Error>(self) -> Result<Frame, E> {
        if self.rows == 0 {
            return Err(give_up());
        }
        Ok(Frame {
            columns: self.columns,
            values: self.values,
        })
    }
}

struct RecordList<'a> {
    records: &'a mut Records,
    limit: usize,
}

impl<'de> DeserializeSeed<'de> for RecordList<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordList<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut rows = 0;
        while seq.next_element_seed(Record(self.records))?.is_some() {
            count_row(&mut rows, self.limit)?;
        }
        Ok(())
    }
}

struct Record<'a>(&'a mut Records);

impl<'de> DeserializeSeed<'de> for Record<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Record<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let records = self.0;
        let row = records.rows;
        if row == 0 {
            while let Some(key) = map.next_key::<String>()? {
                if records.columns.contains(&key) {
                    return Err(give_up());
                }
                records.columns.push(key);
                records.values.push(Cells::default());
                let column = records.values.last_mut().ok_or_else(give_up)?;
                map.next_value_seed(Scalar(column))?;
            }
            if records.columns.is_empty() {
                return Err(give_up());
            }
            records.set_in = vec![0; records.columns.len()];
        } else {
            let mut given = 0;
            while let Some(index) = map.next_key_seed(KeyIndex {
                names: &records.columns,
                expected: given,
            })? {
                let index = index.ok_or_else(give_up)?;
                if records.set_in[index] == row {
                    return Err(give_up());
                }
                records.set_in[index] = row;
                given += 1;
                map.next_value_seed(Scalar(&mut records.values[index]))?;
            }
            if given != records.columns.len() {
                return Err(give_up());
            }
        }
        records.rows += 1;
        Ok(())
    }
}

/// A record's key as the index of its column (`None`: a column the first record lacked),
/// without copying it; records usually keep one order, so the `expected` one is tried first.
struct KeyIndex<'a> {
    names: &'a [String],
    expected: usize,
}

impl<'de> DeserializeSeed<'de> for KeyIndex<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIndex<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a column name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        if self.names.get(self.expected).is_some_and(|n| n == v) {
            return Ok(Some(self.expected));
        }
        Ok(self.names.iter().position(|n| n == v))
    }
}

/// A nested list being read: the length of the lists at each depth (from the first list there,
/// as the JSON path takes the shape from the first elements) and the depth of the scalars.
#[derive(Default)]
struct NestedBuilder {
    dims: Vec<Option<usize>>,
    leaf: Option<usize>,
    flat: Cells,
}

impl NestedBuilder {
    fn scalar_at<E: de::Error>(&mut self, depth: usize) -> Result<&mut Cells, E> {
        match self.leaf {
            None if depth > 0 => self.leaf = Some(depth),
            Some(leaf) if leaf == depth => {}
            _ => return Err(give_up()),
        }
        Ok(&mut self.flat)
    }

    /// A list of `length` closed at `depth`.
    fn list_at<E: de::Error>(&mut self, depth: usize, length: usize) -> Result<(), E> {
        if length == 0 {
            return Err(give_up());
        }
        if self.dims.len() <= depth {
            self.dims.resize(depth + 1, None);
        }
        match self.dims[depth] {
            None => self.dims[depth] = Some(length),
            Some(known) if known == length => {}
            Some(_) => return Err(give_up()),
        }
        Ok(())
    }

    fn finish<E: de::Error>(self) -> Result<Nested, E> {
        let shape = self
            .dims
            .iter()
            .map(|d| d.map(|d| d as i64))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(give_up)?;
        if self.leaf != Some(shape.len()) {
            return Err(give_up());
        }
        Ok(Nested {
            shape,
            flat: self.flat,
        })
    }
}

/// A value at `depth` of a nested list.
struct Level<'a> {
    builder: &'a mut NestedBuilder,
    depth: usize,
    /// The most elements the list may have at depth 0 (a named input's rows).
    limit: usize,
}

impl<'de> DeserializeSeed<'de> for Level<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a nested list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.builder.leaf.is_some_and(|leaf| self.depth >= leaf) {
            return Err(give_up());
        }
        let mut length = 0;
        let limit = if self.depth == 0 {
            self.limit
        } else {
            usize::MAX
        };
        loop {
            let item = Level {
                builder: self.builder,
                depth: self.depth + 1,
                limit: usize::MAX,
            };
            if seq.next_element_seed(item)?.is_none() {
                break;
            }
            count_row(&mut length, limit)?;
        }
        self.builder.list_at(self.depth, length)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        Scalar(self.builder.scalar_at(self.depth)?).visit_bool(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        Scalar(self.builder.scalar_at(self.depth)?).visit_i64(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        Scalar(self.builder.scalar_at(self.depth)?).visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        Scalar(self.builder.scalar_at(self.depth)?).visit_f64(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        Scalar(self.builder.scalar_at(self.depth)?).visit_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        Scalar(self.builder.scalar_at(self.depth)?).visit_string(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Scalar(self.builder.scalar_at(self.depth)?).visit_unit()
    }
}

/// A whole nested list (a scalar alone is given up on), of at most `limit` rows.
struct NestedList {
    limit: usize,
}

impl<'de> DeserializeSeed<'de> for NestedList {
    type Value = Nested;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Nested, D::Error> {
        let mut builder = NestedBuilder::default();
        Level {
            builder: &mut builder,
            depth: 0,
            limit: self.limit,
        }
        .deserialize(d)?;
        builder.finish()
    }
}

/// `instances` / `inputs`: an object of named lists, or a list of records, of rows (for a
/// column schema) or of a tensor's values.
struct Instances {
    rows_by_position: bool,
    limit: usize,
}

impl<'de> DeserializeSeed<'de> for Instances {
    type Value = Payload;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Payload, D::Error> {
        d.deserialize_any(self)
    }
}

/// What the elements of an `instances` / `inputs` list turned out to be (the first decides).
enum List {
    Start,
    Records(Records),
    Rows(Vec<Cells>, usize),
    Nested(NestedBuilder),
}

impl<'de> Visitor<'de> for Instances {
    type Value = Payload;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list or an object of lists")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload, A::Error> {
        let mut named: Vec<(String, Nested)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if named.iter().any(|(name, _)| *name == key) {
                return Err(give_up());
            }
            let value = map.next_value_seed(NestedList { limit: self.limit })?;
            named.push((key, value));
        }
        if named.is_empty() {
            return Err(give_up());
        }
        Ok(Payload::Named(named))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
        let mut list = List::Start;
        let mut length = 0;
        loop {
            let element = Element {
                list: &mut list,
                rows_by_position: self.rows_by_position,
            };
            if seq.next_element_seed(element)?.is_none() {
                break;
            }
            count_row(&mut length, self.limit)?;
        }
        match list {
            List::Start => Err(give_up()),
            List::Records(records) => Ok(Payload::Records(records.into_frame()?)),
            List::Rows(columns, _) => Ok(Payload::Rows(columns)),
            List::Nested(mut builder) => {
                builder.list_at(0, length)?;
                Ok(Payload::Tensor(builder.finish()?))
            }
        }
    }
}

/// One element of an `instances` / `inputs` list.
struct Element<'a> {
    list: &'a mut List,
    rows_by_position: bool,
}

impl<'de> DeserializeSeed<'de> for Element<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// A scalar element: a value of a 1-D tensor (never a row).
macro_rules! element_scalar {
    ($method:ident $(, $v:ident: $t:ty)?) => {
        fn $method<E: de::Error>(self $(, $v: $t)?) -> Result<(), E> {
            if matches!(self.list, List::Start) && !self.rows_by_position {
                *self.list = List::Nested(NestedBuilder::default());
            }
            match self.list {
                List::Nested(builder) => Level { builder, depth: 1, limit: usize::MAX }.$method($($v)?),
                _ => Err(give_up()),
            }
        }
    };
}

impl<'de> Visitor<'de> for Element<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record, a row or a value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        if matches!(self.list, List::Start) {
            *self.list = List::Records(Records::default());
        }
        match self.list {
            List::Records(records) => Record(records).visit_map(map),
            _ => Err(give_up()),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        if matches!(self.list, List::Start) {
            *self.list = if self.rows_by_position {
                List::Rows(Vec::new(), 0)
            } else {
                List::Nested(NestedBuilder::default())
            };
        }
        match self.list {
            List::Rows(columns, rows) => {
                Row {
                    columns,
                    first: *rows == 0,
                }
                .visit_seq(seq)?;
                *rows += 1;
                Ok(())
            }
            List::Nested(builder) => Level {
                builder,
                depth: 1,
                limit: usize::MAX,
            }
            .visit_seq(seq),
            _ => Err(give_up()),
        }
    }

    element_scalar!(visit_bool, v: bool);
    element_scalar!(visit_i64, v: i64);
    element_scalar!(visit_u64, v: u64);
    element_scalar!(visit_f64, v: f64);
    element_scalar!(visit_str, v: &str);
    element_scalar!(visit_string, v: String);
    element_scalar!(visit_unit);
}
