//! A hand-written reader for the commonest large bodies: numbers (and nulls) in a
//! `dataframe_split`, or in nested lists for `instances` / `inputs`. serde_json reads every
//! decimal through its arbitrary-precision float parser (the `float_roundtrip` feature, needed
//! for Python's exact values), which was a third of a 1,000-row request's CPU; here a decimal of
//! at most 19 digits and a power of ten up to 22 is one exact `f64` multiplication or division,
//! correctly rounded, so the same value.
//!
//! It gives up ([`Unread::Other`]) on anything else — params, strings or booleans among the
//! values, escapes in a name, other keys, a number it cannot read exactly, any syntax it does
//! not expect — and the caller reads the body with the serde parse ([`super::stream`]). It
//! counts rows as it reads them and stops at the first past `limit` ([`Unread::TooManyRows`]).

use super::Frame;
use super::cells::Cells;
use super::stream::{Nested, Parsed, Payload, Unread};

/// The body read, or why not. `rows_by_position` and `limit`: as in [`super::stream::parse`].
pub(crate) fn parse(body: &[u8], rows_by_position: bool, limit: usize) -> Result<Parsed, Unread> {
    let mut r = Reader {
        body,
        at: 0,
        limit,
        too_many: false,
    };
    let payload = r.body_payload(rows_by_position);
    match payload {
        _ if r.too_many => Err(Unread::TooManyRows),
        Some(payload) => Ok(Parsed {
            params: None,
            payload,
        }),
        None => Err(Unread::Other),
    }
}

struct Reader<'a> {
    body: &'a [u8],
    at: usize,
    /// The most rows a payload may have (`--max-scoring-rows`).
    limit: usize,
    /// Set when a payload had more rows than `limit`: reading stopped there.
    too_many: bool,
}

/// Exact powers of ten as `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Powers of ten as integers, for the eight-digit steps.
const POW10_INT: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The decimal digits at the start of eight bytes (read little-endian: the first byte is the
/// lowest) as a number, and how many there are, with SWAR arithmetic (the method of simdjson's
/// and fast_float's eight-digit step). A byte is flagged when it is above `'9'` (adding 0x46
/// sets its high bit) or below `'0'` (subtracting 0x30 borrows into it). Carries and borrows
/// only move towards later bytes and only start at flagged ones, so the first flag is the
/// first non-digit whatever the bytes after it are.
fn leading_digits(chunk: u64) -> (u64, usize) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let zeros = chunk.wrapping_sub(ONES * 0x30);
    let flags = (chunk.wrapping_add(ONES * 0x46) | zeros) & (ONES * 0x80);
    let n = (flags.trailing_zeros() / 8) as usize;
    if n == 0 {
        return (0, 0);
    }
    // The n digits' values (0..=9 each: nothing borrowed into them) moved to the last bytes,
    // the bytes after them shifted out: the bytes before them read as leading zeros.
    let values = zeros << (8 * (8 - n));
    // Pairs, then fours, then the eight digits (first byte most significant).
    let pairs = values.wrapping_mul(10).wrapping_add(values >> 8);
    let value = (pairs & 0x0000_00FF_0000_00FF)
        .wrapping_mul(100 + (1_000_000 << 32))
        .wrapping_add(((pairs >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32)))
        >> 32;
    (value, n)
}

/// A number as serde_json would hand it to a visitor.
#[derive(Debug, PartialEq)]
enum Number {
    Int(i64),
    Float(f64),
}

impl<'a> Reader<'a> {
    /// The whole body: one payload key, nothing after the object.
    fn body_payload(&mut self, rows_by_position: bool) -> Option<Payload> {
        self.expect(b'{')?;
        let payload = match self.key()? {
            b"dataframe_split" => Payload::Frame(self.split()?),
            b"instances" | b"inputs" => self.instances(rows_by_position)?,
            _ => return None,
        };
        self.expect(b'}')?;
        self.ws();
        (self.at == self.body.len()).then_some(payload)
    }

    /// Counts a row just read: `None` (and `too_many` set) when it is past the limit, so that
    /// reading stops there.
    fn row(&mut self, rows: &mut usize) -> Option<()> {
        *rows += 1;
        if *rows > self.limit {
            self.too_many = true;
            return None;
        }
        Some(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.body.get(self.at) {
            self.at += 1;
        }
    }

    /// The next non-space byte, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.body.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string without escapes or control characters, as UTF-8.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let body = self.body;
        let start = self.at;
        let length = memchr::memchr2(b'"', b'\\', &body[start..])?;
        let text = &body[start..start + length];
        if body[start + length] != b'"' || text.iter().any(|&b| b < 0x20) {
            return None;
        }
        std::str::from_utf8(text).ok()?;
        self.at = start + length + 1;
        Some(text)
    }

    /// An object key and its colon.
    fn key(&mut self) -> Option<&'a [u8]> {
        let key = self.string()?;
        self.expect(b':')?;
        Some(key)
    }

    /// `,` before another element or `close`: whether another element follows.
    fn more(&mut self, close: u8) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(true)
            }
            b if b == close => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// A number or null into `cells`.
    fn cell(&mut self, cells: &mut Cells) -> Option<()> {
        if self.peek()? == b'n' {
            if !self.body[self.at..].starts_with(b"null") {
                return None;
            }
            self.at += 4;
            cells.push_null();
            return Some(());
        }
        match self.number()? {
            Number::Int(i) => cells.push_i64(i),
            Number::Float(f) => cells.push_f64(f),
        }
        Some(())
    }

    /// A JSON number, read only when it is exact: an integer of at most 18 digits (not `-0`,
    /// which serde_json reads as a float), or a decimal of at most 19 digits whose value is
    /// one correctly rounded operation.
    fn number(&mut self) -> Option<Number> {
        self.ws();
        let body = self.body;
        let mut i = self.at;
        let negative = body.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        let mut mantissa: u64 = 0;
        let mut digits = 0;
        let int_start = i;
        while let Some(&b @ b'0'..=b'9') = body.get(i) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
            digits += 1;
            i += 1;
        }
        let int_digits = i - int_start;
        // JSON: at least one digit, and no leading zero before another digit.
        if int_digits == 0 || (int_digits > 1 && body[int_start] == b'0') {
            return None;
        }
        let mut fraction = 0;
        if body.get(i) == Some(&b'.') {
            i += 1;
            // Eight bytes at a time while they are there (a row's fraction is one or two loads).
            while let Some(chunk) = body.get(i..i + 8) {
                let (value, n) = leading_digits(u64::from_le_bytes(chunk.try_into().ok()?));
                if n == 0 {
                    break;
                }
                mantissa = mantissa.wrapping_mul(POW10_INT[n]).wrapping_add(value);
                digits += n as i32;
                fraction += n as i32;
                i += n;
                if n < 8 {
                    break;
                }
            }
            while let Some(&b @ b'0'..=b'9') = body.get(i) {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
                digits += 1;
                fraction += 1;
                i += 1;
            }
            if fraction == 0 {
                return None;
            }
        }
        let mut exponent: i32 = 0;
        let has_exponent = matches!(body.get(i), Some(b'e' | b'E'));
        if has_exponent {
            i += 1;
            let negative_exponent = match body.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let start = i;
            while let Some(&b @ b'0'..=b'9') = body.get(i) {
                if i - start >= 4 {
                    return None;
                }
                exponent = exponent * 10 + i32::from(b - b'0');
                i += 1;
            }
            if i == start {
                return None;
            }
            if negative_exponent {
                exponent = -exponent;
            }
        }
        self.at = i;
        if fraction == 0 && !has_exponent {
            if digits > 18 || (negative && mantissa == 0) {
                return None;
            }
            let value = mantissa as i64;
            return Some(Number::Int(if negative { -value } else { value }));
        }
        if digits > 19 || mantissa > 1 << 53 {
            return None;
        }
        let power = exponent - fraction;
        let magnitude = mantissa as f64;
        let value = match usize::try_from(power) {
            Ok(p) => magnitude * *POW10.get(p)?,
            Err(_) => magnitude / *POW10.get(power.unsigned_abs() as usize)?,
        };
        Some(Number::Float(if negative { -value } else { value }))
    }

    /// `{"columns": [names], "data": [[numbers]], "index": [numbers]}`, in any order, columns
    /// and index optional.
    fn split(&mut self) -> Option<Frame> {
        self.expect(b'{')?;
        let mut names: Option<Vec<String>> = None;
        let mut values: Option<Vec<Cells>> = None;
        let mut index = false;
        loop {
            match self.key()? {
                b"columns" if names.is_none() => names = Some(self.names()?),
                b"data" if values.is_none() => values = Some(self.rows()?),
                b"index" if !index => {
                    index = true;
                    let mut ignored = Cells::default();
                    // An index is not rows: the rows are `data`'s.
                    self.flat(&mut ignored, usize::MAX)?;
                }
                _ => return None,
            }
            if !self.more(b'}')? {
                break;
            }
        }
        let values = values?;
        let columns = names.unwrap_or_else(|| (0..values.len()).map(|i| i.to_string()).collect());
        (columns.len() == values.len()).then_some(Frame { columns, values })
    }

    fn names(&mut self) -> Option<Vec<String>> {
        self.expect(b'[')?;
        let mut names = Vec::new();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(names);
        }
        loop {
            let name = self.string()?;
            names.push(String::from_utf8(name.to_vec()).ok()?);
            if !self.more(b']')? {
                return Some(names);
            }
        }
    }

    /// A non-empty list of numbers into `cells`; its length, `None` (`too_many` set) past
    /// `limit` values.
    fn flat(&mut self, cells: &mut Cells, limit: usize) -> Option<usize> {
        self.expect(b'[')?;
        let mut length = 0;
        loop {
            self.cell(cells)?;
            length += 1;
            if length > limit {
                self.too_many = true;
                return None;
            }
            if !self.more(b']')? {
                return Some(length);
            }
        }
    }

    /// A non-empty list of rows of one length, by position.
    fn rows(&mut self) -> Option<Vec<Cells>> {
        self.expect(b'[')?;
        let mut columns: Vec<Cells> = Vec::new();
        self.expect(b'[')?;
        let first_row = self.at;
        loop {
            let mut column = Cells::default();
            self.cell(&mut column)?;
            columns.push(column);
            if !self.more(b']')? {
                break;
            }
        }
        // Rows of a body are about as long as its first: room for that many saves the columns'
        // doublings (ten copies of each at 1,000 rows). A row takes at least two bytes a value,
        // so this never reserves more than four times the rest of the body.
        let row_bytes = self.at - first_row + 2;
        let room = ((self.body.len() - self.at) / row_bytes).min(self.limit);
        for column in &mut columns {
            column.reserve(room);
        }
        let mut rows = 1;
        while self.more(b']')? {
            self.expect(b'[')?;
            for (i, column) in columns.iter_mut().enumerate() {
                if i > 0 {
                    self.expect(b',')?;
                }
                self.cell(column)?;
            }
            self.expect(b']')?;
            self.row(&mut rows)?;
        }
        Some(columns)
    }

    /// A list of numbers, or of lists of numbers of one length: rows by position for a column
    /// schema, else a tensor.
    fn instances(&mut self, rows_by_position: bool) -> Option<Payload> {
        let start = self.at;
        self.expect(b'[')?;
        let nested = self.peek()? == b'[';
        self.at = start;
        if rows_by_position {
            return nested.then(|| self.rows().map(Payload::Rows))?;
        }
        let mut flat = Cells::default();
        let shape = if nested {
            self.expect(b'[')?;
            let width = self.flat(&mut flat, usize::MAX)?;
            let mut rows = 1;
            while self.more(b']')? {
                if self.flat(&mut flat, usize::MAX)? != width {
                    return None;
                }
                self.row(&mut rows)?;
            }
            vec![rows as i64, width as i64]
        } else {
            // A list of values: each is a row.
            vec![self.flat(&mut flat, self.limit)? as i64]
        };
        Some(Payload::Tensor(Nested { shape, flat }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> Option<Number> {
        Reader {
            body: text.as_bytes(),
            at: 0,
            limit: usize::MAX,
            too_many: false,
        }
        .number()
    }

    /// What serde_json (with the crate's features) makes of a number.
    fn serde(text: &str) -> Number {
        match serde_json::from_str::<serde_json::Value>(text).unwrap() {
            serde_json::Value::Number(n) if n.is_i64() => Number::Int(n.as_i64().unwrap()),
            serde_json::Value::Number(n) => Number::Float(n.as_f64().unwrap()),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn frames_and_lists_of_numbers_are_read_as_the_serde_parse_reads_them() {
        let bodies = [
            r#"{"dataframe_split": {"columns": ["f0", "f1"], "data": [[0.123456, -1.5], [2, null]]}}"#,
            r#" { "dataframe_split" : { "index" : [0, 1], "data" : [ [1e-3, 4.0] , [5, 6] ] } } "#,
            r#"{"inputs": [[1.5, 2.5], [3.5, 4.5]]}"#,
            r#"{"instances": [1.5, -2, null]}"#,
        ];
        for (i, body) in bodies.iter().enumerate() {
            for rows in [false, true] {
                let here = parse(body.as_bytes(), rows, usize::MAX);
                let serde = super::super::stream::parse(body.as_bytes(), rows, usize::MAX);
                if i == 3 && rows {
                    // Scalars are not rows: left to the serde parse (which gives up too).
                    assert!(matches!(here, Err(Unread::Other)));
                    assert!(matches!(serde, Err(Unread::Other)));
                    continue;
                }
                let (here, serde) = (here.expect(body), serde.expect(body));
                assert_eq!(
                    format!("{:?}", here.payload),
                    format!("{:?}", serde.payload),
                    "{body}"
                );
            }
        }
        for refused in [
            r#"{"dataframe_split": {"columns": ["a"], "data": [[1]]}, "params": {}}"#,
            r#"{"dataframe_split": {"columns": ["a"], "data": [["x"]]}}"#,
            r#"{"dataframe_split": {"columns": ["a\u0041"], "data": [[1]]}}"#,
            r#"{"dataframe_split": {"columns": ["a"], "data": [[1], [2, 3]]}}"#,
            r#"{"dataframe_split": {"columns": ["a"], "data": [[1]]}} x"#,
            r#"{"dataframe_split": {"columns": ["a"], "data": [[1,]]}}"#,
            r#"{"inputs": [[1, 2], [3]]}"#,
            r#"{"inputs": [[[1]]]}"#,
        ] {
            let read = parse(refused.as_bytes(), false, usize::MAX);
            assert!(matches!(read, Err(Unread::Other)), "{refused}");
        }
    }

    #[test]
    fn eight_byte_steps_read_the_leading_digits() {
        for (bytes, want) in [
            (*b"12345678", (12_345_678, 8)),
            (*b"00000001", (1, 8)),
            (*b"9,999999", (9, 1)),
            (*b"123456]1", (123_456, 6)),
            (*b"0712e-05", (712, 4)),
            (*b"]1234567", (0, 0)),
            (*b"99/:9999", (99, 2)),
            (*b"5\xff999999", (5, 1)),
        ] {
            assert_eq!(
                leading_digits(u64::from_le_bytes(bytes)),
                want,
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn numbers_read_here_are_serde_jsons_to_the_bit() {
        let mut read = 0;
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut texts: Vec<String> = [
            "0",
            "-1",
            "7",
            "0.0",
            "-0.0",
            "1.5",
            "123456789012345678",
            "0.1",
            "0.3",
            "2.5e-3",
            "1E22",
            "1e23",
            "9007199254740993.0",
            "4.35",
            "-12.000001",
            "1e-22",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..100_000 {
            let x = next();
            let digits = 1 + (x % 19) as usize;
            let mantissa = next() % 10u64.pow(digits as u32);
            let text = format!("{mantissa:0digits$}");
            let point = (next() % (digits as u64 + 1)) as usize;
            let (int, frac) = text.split_at(point);
            let int = int.trim_start_matches('0');
            let int = if int.is_empty() { "0" } else { int };
            let sign = if x & 1 == 1 { "-" } else { "" };
            let exponent = match next() % 4 {
                0 => format!("e{}", (next() % 60) as i64 - 30),
                _ => String::new(),
            };
            let frac = if frac.is_empty() && exponent.is_empty() {
                ".5".to_string()
            } else if frac.is_empty() {
                String::new()
            } else {
                format!(".{frac}")
            };
            texts.push(format!("{sign}{int}{frac}{exponent}"));
        }
        // Followed by more bytes, as in a body, numbers take the eight-byte step; what follows
        // (digits after a non-digit, bytes above 0x7f) must not change what is read.
        let followed: Vec<String> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{t}{}", ["]0123456789", ",\u{ff}\u{80}999999", " }"][i % 3]))
            .collect();
        for (text, long) in texts.iter().zip(&followed) {
            assert_eq!(number(long), number(text), "{long}");
        }
        for text in &texts {
            if let Some(n) = number(text) {
                read += 1;
                let want = serde(text);
                match (&n, &want) {
                    (Number::Float(a), Number::Float(b)) => {
                        assert_eq!(a.to_bits(), b.to_bits(), "{text}")
                    }
                    _ => assert_eq!(n, want, "{text}"),
                }
            }
        }
        assert!(read > texts.len() / 2, "{read} of {}", texts.len());
        for refused in [
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "-0",
            "1e99999",
            "12345678901234567890",
        ] {
            assert_eq!(number(refused), None, "{refused}");
        }
    }
}
