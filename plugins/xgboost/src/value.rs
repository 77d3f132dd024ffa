//! A document tree read from XGBoost's UBJSON (`model.ubj`) or JSON (`model.json`) model files.
//!
//! XGBoost writes the same document in both encodings; the UBJSON form keeps numeric arrays as
//! typed arrays (`[$d#L<count>` then big-endian float32 values, ...), which stay compact here.
//!
//! The UBJSON reader is ours and reads untrusted bytes: every count and length is checked
//! against the bytes that remain before anything is allocated, nesting is limited to
//! [`MAX_DEPTH`], and every malformed input is an error (never a panic).

use std::fmt;

/// Deepest nesting of arrays and objects accepted (XGBoost's models nest about 8 levels).
pub const MAX_DEPTH: usize = 64;

/// A value of the document.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Value>),
    /// A typed array of float32 (UBJSON `[$d`).
    F32s(Vec<f32>),
    /// A typed array of float64 (UBJSON `[$D`).
    F64s(Vec<f64>),
    /// A typed array of integers (UBJSON `[$i`, `[$U`, `[$I`, `[$l`, `[$L`).
    Ints(Vec<i64>),
    /// An object's members in file order.
    Object(Vec<(String, Value)>),
}

/// A malformed document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn err<T>(message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(message.into()))
}

impl Value {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An integer (a float holding an integral value counts).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The number of elements of an array (typed or not).
    pub fn array_len(&self) -> Option<usize> {
        Some(match self {
            Value::Array(v) => v.len(),
            Value::F32s(v) => v.len(),
            Value::F64s(v) => v.len(),
            Value::Ints(v) => v.len(),
            _ => return None,
        })
    }

    /// An array of numbers as float32 (XGBoost stores its floats as float32; JSON writes each
    /// with the shortest decimal that reads back to the same float32).
    pub fn to_f32s(&self) -> Option<Vec<f32>> {
        Some(match self {
            Value::F32s(v) => v.clone(),
            Value::F64s(v) => v.iter().map(|&x| x as f32).collect(),
            Value::Ints(v) => v.iter().map(|&x| x as f32).collect(),
            Value::Array(v) => v
                .iter()
                .map(|x| x.as_f64().map(|f| f as f32))
                .collect::<Option<_>>()?,
            _ => return None,
        })
    }

    /// An array of integers.
    pub fn to_i64s(&self) -> Option<Vec<i64>> {
        Some(match self {
            Value::Ints(v) => v.clone(),
            Value::Array(v) => v.iter().map(Value::as_i64).collect::<Option<_>>()?,
            _ => return None,
        })
    }

    /// An array of strings.
    pub fn to_strings(&self) -> Option<Vec<String>> {
        match self {
            Value::Array(v) => v
                .iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<_>>(),
            // An empty typed array (never written for strings, but harmless).
            other if other.array_len() == Some(0) => Some(Vec::new()),
            _ => None,
        }
    }

    /// The elements of a (non-typed) array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// Reads a JSON document (XGBoost's `model.json`).
pub fn parse_json(bytes: &[u8]) -> Result<Value, ParseError> {
    // serde_json limits nesting to 128 levels and checks lengths as it reads.
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ParseError(format!("invalid json: {e}")))?;
    Ok(from_json(json))
}

fn from_json(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Str(s),
        serde_json::Value::Array(items) => Value::Array(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(members) => Value::Object(
            members
                .into_iter()
                .map(|(k, v)| (k, from_json(v)))
                .collect(),
        ),
    }
}

/// Reads a UBJSON document (XGBoost's `model.ubj`). Trailing bytes after the document are an
/// error.
pub fn parse_ubjson(bytes: &[u8]) -> Result<Value, ParseError> {
    let mut reader = Reader { bytes, pos: 0 };
    let marker = reader.byte()?;
    let value = reader.value(marker, 0)?;
    if reader.pos != bytes.len() {
        return err(format!(
            "invalid ubjson: {} unexpected bytes after the document at offset {}",
            bytes.len() - reader.pos,
            reader.pos
        ));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        if n > self.remaining() {
            return err(format!(
                "invalid ubjson: truncated at offset {} (needs {n} more bytes, {} left)",
                self.pos,
                self.remaining()
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, ParseError> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Result<u8, ParseError> {
        match self.bytes.get(self.pos) {
            Some(&b) => Ok(b),
            None => err(format!("invalid ubjson: truncated at offset {}", self.pos)),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ParseError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// An integer of the type `marker` (UBJSON integers are big-endian).
    fn int(&mut self, marker: u8) -> Result<i64, ParseError> {
        Ok(match marker {
            b'i' => i64::from(i8::from_be_bytes(self.array()?)),
            b'U' => i64::from(u8::from_be_bytes(self.array()?)),
            b'I' => i64::from(i16::from_be_bytes(self.array()?)),
            b'l' => i64::from(i32::from_be_bytes(self.array()?)),
            b'L' => i64::from_be_bytes(self.array()?),
            other => {
                return err(format!(
                    "invalid ubjson: expected an integer marker at offset {}, found {}",
                    self.pos - 1,
                    show(other)
                ));
            }
        })
    }

    /// A length or count: an integer of any type, not negative.
    fn length(&mut self) -> Result<usize, ParseError> {
        let at = self.pos;
        let marker = self.byte()?;
        let n = self.int(marker)?;
        usize::try_from(n).map_err(|_| {
            ParseError(format!(
                "invalid ubjson: negative length {n} at offset {at}"
            ))
        })
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let at = self.pos;
        let n = self.length()?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            ParseError(format!(
                "invalid ubjson: string at offset {at} is not utf-8"
            ))
        })
    }

    fn value(&mut self, marker: u8, depth: usize) -> Result<Value, ParseError> {
        Ok(match marker {
            b'Z' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'i' | b'U' | b'I' | b'l' | b'L' => Value::Int(self.int(marker)?),
            b'd' => Value::Float(f64::from(f32::from_be_bytes(self.array()?))),
            b'D' => Value::Float(f64::from_be_bytes(self.array()?)),
            b'C' => Value::Int(i64::from(self.byte()?)),
            b'S' => Value::Str(self.string()?),
            b'H' => {
                return err(format!(
                    "invalid ubjson: high-precision numbers are not supported (offset {})",
                    self.pos - 1
                ));
            }
            b'[' => self.container(depth + 1, false)?,
            b'{' => self.container(depth + 1, true)?,
            other => {
                return err(format!(
                    "invalid ubjson: unknown marker {} at offset {}",
                    show(other),
                    self.pos - 1
                ));
            }
        })
    }

    /// An array or an object, after its `[` or `{`: optional `$type`, optional `#count`.
    fn container(&mut self, depth: usize, object: bool) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return err(format!(
                "invalid ubjson: nesting deeper than {MAX_DEPTH} levels at offset {}",
                self.pos
            ));
        }
        let mut element_type = None;
        if self.peek()? == b'$' {
            self.pos += 1;
            element_type = Some(self.byte()?);
        }
        let mut count = None;
        if self.peek()? == b'#' {
            self.pos += 1;
            count = Some(self.length()?);
        } else if element_type.is_some() {
            return err(format!(
                "invalid ubjson: a typed container without a count at offset {}",
                self.pos
            ));
        }
        if let (Some(t), Some(n), false) = (element_type, count, object)
            && let Some(typed) = self.typed_array(t, n)?
        {
            return Ok(typed);
        }
        // Each element (and each key) takes at least one byte: a count larger than what is
        // left is a lie, refused before anything is allocated.
        if let Some(n) = count
            && n > self.remaining()
        {
            return err(format!(
                "invalid ubjson: a container of {n} elements at offset {} but only {} bytes left",
                self.pos,
                self.remaining()
            ));
        }
        let capacity = count.unwrap_or(0);
        let next = |reader: &mut Self| -> Result<Value, ParseError> {
            let marker = match element_type {
                Some(t) => t,
                None => reader.byte()?,
            };
            reader.value(marker, depth)
        };
        if object {
            let mut members = Vec::with_capacity(capacity);
            loop {
                match count {
                    Some(n) if members.len() == n => break,
                    None if self.peek()? == b'}' => {
                        self.pos += 1;
                        break;
                    }
                    _ => {}
                }
                let key = self.string()?;
                members.push((key, next(self)?));
            }
            Ok(Value::Object(members))
        } else {
            let mut items = Vec::with_capacity(capacity);
            loop {
                match count {
                    Some(n) if items.len() == n => break,
                    None if self.peek()? == b']' => {
                        self.pos += 1;
                        break;
                    }
                    _ => {}
                }
                items.push(next(self)?);
            }
            Ok(Value::Array(items))
        }
    }

    /// A typed array of numbers, read in one go (its size is checked first).
    fn typed_array(&mut self, element: u8, n: usize) -> Result<Option<Value>, ParseError> {
        let width = match element {
            b'i' | b'U' | b'C' => 1,
            b'I' => 2,
            b'l' | b'd' => 4,
            b'L' | b'D' => 8,
            _ => return Ok(None),
        };
        let total = n.checked_mul(width).filter(|&t| t <= self.remaining());
        let Some(total) = total else {
            return err(format!(
                "invalid ubjson: a typed array of {n} elements at offset {} but only {} bytes left",
                self.pos,
                self.remaining()
            ));
        };
        let data = self.take(total)?;
        Ok(Some(match element {
            b'd' => Value::F32s(
                data.chunks_exact(4)
                    .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            b'D' => Value::F64s(
                data.chunks_exact(8)
                    .map(|c| f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            b'i' => Value::Ints(data.iter().map(|&b| i64::from(b as i8)).collect()),
            b'U' | b'C' => Value::Ints(data.iter().map(|&b| i64::from(b)).collect()),
            b'I' => Value::Ints(
                data.chunks_exact(2)
                    .map(|c| i64::from(i16::from_be_bytes([c[0], c[1]])))
                    .collect(),
            ),
            b'l' => Value::Ints(
                data.chunks_exact(4)
                    .map(|c| i64::from(i32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
            ),
            _ => Value::Ints(
                data.chunks_exact(8)
                    .map(|c| i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
        }))
    }
}

fn show(byte: u8) -> String {
    if byte.is_ascii_graphic() {
        format!("'{}'", byte as char)
    } else {
        format!("0x{byte:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_typed_and_counted_containers() {
        // {"a": [$d#L 2 (1.5, -2.0)], "b": "xy", "c": [#i 2 (i 7, T)]}
        let mut doc = vec![b'{', b'L'];
        doc.extend(1i64.to_be_bytes());
        doc.extend(b"a[$d#L");
        doc.extend(2i64.to_be_bytes());
        doc.extend(1.5f32.to_be_bytes());
        doc.extend((-2.0f32).to_be_bytes());
        doc.extend(b"i\x01bSi\x02xy");
        doc.extend(b"i\x01c[#i\x02i\x07T}");
        let v = parse_ubjson(&doc).unwrap();
        assert_eq!(v.get("a"), Some(&Value::F32s(vec![1.5, -2.0])));
        assert_eq!(v.get("b").and_then(Value::as_str), Some("xy"));
        assert_eq!(
            v.get("c"),
            Some(&Value::Array(vec![Value::Int(7), Value::Bool(true)]))
        );
    }

    #[test]
    fn refuses_malformed_input() {
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"{".to_vec(),
            b"[".to_vec(),
            b"{L".to_vec(),
            // a key longer than the file
            [b"{L".as_slice(), &i64::MAX.to_be_bytes()].concat(),
            // a negative length
            [b"{L".as_slice(), &(-1i64).to_be_bytes()].concat(),
            // a typed array of 2^60 floats
            [b"[$d#L".as_slice(), &(1i64 << 60).to_be_bytes()].concat(),
            // a counted array of a billion elements
            [b"[#L".as_slice(), &1_000_000_000i64.to_be_bytes()].concat(),
            // a typed array without a count
            b"[$d]".to_vec(),
            // deep nesting
            vec![b'['; 100_000],
            // unknown marker, high precision
            b"X".to_vec(),
            b"HU\x011".to_vec(),
            // trailing bytes
            b"ZZ".to_vec(),
            // invalid utf-8 string
            b"SU\x01\xff".to_vec(),
        ];
        for case in cases {
            assert!(parse_ubjson(&case).is_err(), "{case:?}");
        }
    }
}
