//! numpy's `.npy` format, as `np.save(..., allow_pickle=False)` writes it.
//!
//! A file is the magic `\x93NUMPY`, a version (1.0: a 2-byte header length; 2.0 and 3.0: 4
//! bytes), a header that is a Python dict literal
//! (`{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }`) and the raw data. `descr` is a
//! type string (`<f8`, `|u1`, `<U5`, ...) or, for a structured dtype, a list of
//! `(name, type)` tuples; padding fields have an empty name and a `V` type. Arrays saved in
//! Fortran order are reordered to C (row-major) order when read.

use wasmflow_features::clip;

use crate::Error;

/// The largest header we accept (numpy writes a few hundred bytes; it caps headers at 64 KiB
/// for version 1.0).
const MAX_HEADER: usize = 1 << 20;
/// The most dimensions numpy allows.
const MAX_DIMS: usize = 64;
/// The most fields we accept in a structured dtype.
const MAX_FIELDS: usize = 4096;

/// The kind of a scalar type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `b1`
    Bool,
    /// `i1` .. `i8`
    Int,
    /// `u1` .. `u8`
    UInt,
    /// `f2`, `f4`, `f8`
    Float,
    /// `U<n>`: UTF-32 code units, `n` characters.
    Unicode,
    /// `S<n>`: bytes.
    Bytes,
    /// `V<n>`: raw bytes (padding in structured dtypes).
    Void,
    /// `O`: Python objects. Never read from a `.npy` file (skops stores object arrays as
    /// JSON); only the dtype of a `DTypeNode` of an object array.
    Object,
}

/// A scalar type: its kind, its size in bytes and its byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scalar {
    pub kind: Kind,
    /// Bytes per item (for `U<n>`, 4·n).
    pub size: usize,
    pub big_endian: bool,
}

/// One field of a structured dtype.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub offset: usize,
    pub ty: Scalar,
}

/// An array's element type.
#[derive(Clone, Debug, PartialEq)]
pub enum DType {
    Scalar(Scalar),
    /// A structured (record) dtype: fields at offsets within an item of `itemsize` bytes.
    Struct {
        fields: Vec<Field>,
        itemsize: usize,
    },
}

impl DType {
    /// Bytes per element.
    pub fn itemsize(&self) -> usize {
        match self {
            DType::Scalar(s) => s.size,
            DType::Struct { itemsize, .. } => *itemsize,
        }
    }

    /// numpy's spelling of the type, for messages (`<f8`, `[('a', '<i8'), ...]`).
    pub fn describe(&self) -> String {
        match self {
            DType::Scalar(s) => s.describe(),
            DType::Struct { fields, .. } => {
                let f: Vec<String> = fields
                    .iter()
                    .map(|f| format!("('{}', '{}')", f.name, f.ty.describe()))
                    .collect();
                format!("[{}]", f.join(", "))
            }
        }
    }
}

impl Scalar {
    pub fn describe(&self) -> String {
        let order = if (self.size == 1 && !matches!(self.kind, Kind::Unicode))
            || matches!(self.kind, Kind::Void | Kind::Bytes)
        {
            '|'
        } else if self.big_endian {
            '>'
        } else {
            '<'
        };
        if self.kind == Kind::Object {
            return "|O".into();
        }
        let (c, n) = match self.kind {
            Kind::Bool => ('b', self.size),
            Kind::Int => ('i', self.size),
            Kind::UInt => ('u', self.size),
            Kind::Float => ('f', self.size),
            Kind::Unicode => ('U', self.size / 4),
            Kind::Bytes => ('S', self.size),
            Kind::Void => ('V', self.size),
            Kind::Object => ('O', 0),
        };
        format!("{order}{c}{n}")
    }

    /// Parses a numpy type string such as `<f8`, `|u1`, `>i4`, `<U12`, `|S3`, `|V7`, `|b1`.
    pub fn parse(s: &str) -> Result<Scalar, Error> {
        let bad = || Error::unsupported(format!("unsupported numpy dtype '{}'", clip(s)));
        let (big_endian, rest) = match s.as_bytes().first() {
            Some(b'<') => (false, &s[1..]),
            Some(b'>') => (true, &s[1..]),
            Some(b'|' | b'=') => (cfg!(target_endian = "big"), &s[1..]),
            _ => (false, s),
        };
        let mut chars = rest.chars();
        let c = chars.next().ok_or_else(bad)?;
        let n: usize = chars.as_str().parse().map_err(|_| bad())?;
        let (kind, size) = match (c, n) {
            ('b', 1) | ('?', 1) => (Kind::Bool, 1),
            ('i', 1 | 2 | 4 | 8) => (Kind::Int, n),
            ('u', 1 | 2 | 4 | 8) => (Kind::UInt, n),
            ('f', 2 | 4 | 8) => (Kind::Float, n),
            ('U', _) => (Kind::Unicode, n.checked_mul(4).ok_or_else(bad)?),
            ('S', _) => (Kind::Bytes, n),
            ('V', _) => (Kind::Void, n),
            _ => return Err(bad()),
        };
        if size > MAX_HEADER * 64 {
            return Err(bad());
        }
        Ok(Scalar {
            kind,
            size,
            big_endian,
        })
    }

    fn bytes<const N: usize>(&self, b: &[u8]) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&b[..N]);
        if self.big_endian {
            a.reverse();
        }
        a
    }

    /// The item in `b` (at least `size` bytes) as f64, for numeric kinds.
    fn f64_at(&self, b: &[u8]) -> Option<f64> {
        Some(match (self.kind, self.size) {
            (Kind::Bool, 1) => f64::from(u8::from(b[0] != 0)),
            (Kind::Float, 8) => f64::from_le_bytes(self.bytes(b)),
            (Kind::Float, 4) => f64::from(f32::from_le_bytes(self.bytes(b))),
            (Kind::Float, 2) => half_to_f64(u16::from_le_bytes(self.bytes(b))),
            (Kind::Int, _) => self.i128_at(b)? as f64,
            (Kind::UInt, _) => self.i128_at(b)? as f64,
            _ => return None,
        })
    }

    /// The item as an integer, for bool/int/uint kinds.
    fn i128_at(&self, b: &[u8]) -> Option<i128> {
        Some(match (self.kind, self.size) {
            (Kind::Bool, 1) => i128::from(b[0] != 0),
            (Kind::Int, 1) => i128::from(b[0] as i8),
            (Kind::Int, 2) => i128::from(i16::from_le_bytes(self.bytes(b))),
            (Kind::Int, 4) => i128::from(i32::from_le_bytes(self.bytes(b))),
            (Kind::Int, 8) => i128::from(i64::from_le_bytes(self.bytes(b))),
            (Kind::UInt, 1) => i128::from(b[0]),
            (Kind::UInt, 2) => i128::from(u16::from_le_bytes(self.bytes(b))),
            (Kind::UInt, 4) => i128::from(u32::from_le_bytes(self.bytes(b))),
            (Kind::UInt, 8) => i128::from(u64::from_le_bytes(self.bytes(b))),
            _ => return None,
        })
    }

    fn string_at(&self, b: &[u8]) -> Option<String> {
        let b = &b[..self.size];
        match self.kind {
            Kind::Unicode => {
                let mut s = String::with_capacity(self.size / 4);
                for c in b.chunks_exact(4) {
                    let u = if self.big_endian {
                        u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                    } else {
                        u32::from_le_bytes([c[0], c[1], c[2], c[3]])
                    };
                    if u == 0 {
                        break;
                    }
                    s.push(char::from_u32(u).unwrap_or('\u{FFFD}'));
                }
                Some(s)
            }
            Kind::Bytes => {
                let end = b.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
                Some(String::from_utf8_lossy(&b[..end]).into_owned())
            }
            _ => None,
        }
    }
}

fn half_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// An n-dimensional array read from a `.npy` file, in C (row-major) order.
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    /// The size of each dimension; `[]` for a 0-d array (a numpy scalar).
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// `shape.iter().product() * dtype.itemsize()` bytes.
    pub data: Vec<u8>,
}

impl NdArray {
    /// Reads a `.npy` file. Every size is checked against the bytes present before anything
    /// is allocated; the data must be exactly as long as the header declares.
    pub fn parse(bytes: &[u8]) -> Result<NdArray, Error> {
        if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
            return Err(Error::invalid("not a .npy file (bad magic)"));
        }
        let (header_len, start): (usize, usize) = match bytes[6] {
            1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
            2 | 3 => {
                if bytes.len() < 12 {
                    return Err(Error::invalid("truncated .npy header"));
                }
                let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
                (n as usize, 12)
            }
            v => {
                return Err(Error::unsupported(format!(
                    ".npy format version {v} is not supported"
                )));
            }
        };
        if header_len > MAX_HEADER {
            return Err(Error::invalid(format!(
                ".npy header of {header_len} bytes is too large"
            )));
        }
        let end = start
            .checked_add(header_len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| Error::invalid("truncated .npy header"))?;
        let header = String::from_utf8_lossy(&bytes[start..end]);
        let header = Literal::parse(&header)?;
        let descr = header
            .get("descr")
            .ok_or_else(|| Error::invalid(".npy header has no 'descr'"))?;
        let fortran = match header.get("fortran_order") {
            Some(Literal::Bool(b)) => *b,
            _ => return Err(Error::invalid(".npy header has no boolean 'fortran_order'")),
        };
        let shape: Vec<usize> = match header.get("shape") {
            Some(Literal::Tuple(dims)) => dims
                .iter()
                .map(|d| match d {
                    Literal::Int(n) => usize::try_from(*n)
                        .map_err(|_| Error::invalid(format!(".npy shape has a bad size {n}"))),
                    _ => Err(Error::invalid(".npy shape is not a tuple of integers")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(Error::invalid(".npy header has no tuple 'shape'")),
        };
        if shape.len() > MAX_DIMS {
            return Err(Error::invalid(".npy shape has too many dimensions"));
        }
        let dtype = dtype_of(descr)?;
        if dtype.itemsize() == 0 {
            return Err(Error::unsupported(format!(
                ".npy arrays of zero-sized dtype {} are not supported",
                dtype.describe()
            )));
        }
        let count = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::invalid(format!(".npy shape {shape:?} is too large")))?;
        let size = count
            .checked_mul(dtype.itemsize())
            .ok_or_else(|| Error::invalid(format!(".npy shape {shape:?} is too large")))?;
        let data = &bytes[end..];
        if data.len() != size {
            return Err(Error::invalid(format!(
                ".npy array of shape {shape:?} and dtype {} needs {size} bytes of data but the file has {}",
                dtype.describe(),
                data.len()
            )));
        }
        let data = if fortran && shape.len() > 1 {
            to_c_order(data, &shape, dtype.itemsize())
        } else {
            data.to_vec()
        };
        Ok(NdArray { shape, dtype, data })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The scalar type, or an error for a structured array.
    pub fn scalar(&self) -> Result<Scalar, Error> {
        match &self.dtype {
            DType::Scalar(s) => Ok(*s),
            DType::Struct { .. } => Err(Error::invalid(format!(
                "expected an array of scalars, got a structured array {}",
                self.dtype.describe()
            ))),
        }
    }

    fn items(&self) -> impl Iterator<Item = &[u8]> {
        let n = self.dtype.itemsize().max(1);
        self.data.chunks_exact(n).take(self.len())
    }

    /// Every element as f64 (bool, int, uint and float arrays).
    pub fn to_f64(&self) -> Result<Vec<f64>, Error> {
        let s = self.scalar()?;
        if s.size == 0 {
            return Err(self.not("numbers"));
        }
        self.items()
            .map(|b| s.f64_at(b).ok_or_else(|| self.not("numbers")))
            .collect()
    }

    /// Every element as i64 (bool, int and uint arrays; a uint64 above i64::MAX is an error).
    pub fn to_i64(&self) -> Result<Vec<i64>, Error> {
        let s = self.scalar()?;
        if s.size == 0 {
            return Err(self.not("integers"));
        }
        self.items()
            .map(|b| {
                let v = s.i128_at(b).ok_or_else(|| self.not("integers"))?;
                i64::try_from(v).map_err(|_| Error::invalid(format!("integer {v} is out of range")))
            })
            .collect()
    }

    /// Every element as a bool (nonzero is true), for bool, int and uint arrays.
    pub fn to_bool(&self) -> Result<Vec<bool>, Error> {
        Ok(self.to_i64()?.into_iter().map(|v| v != 0).collect())
    }

    /// Every element as a string, for `U` (unicode) and `S` (bytes) arrays; trailing NULs,
    /// which numpy pads with, are dropped.
    pub fn to_strings(&self) -> Result<Vec<String>, Error> {
        let s = self.scalar()?;
        if !matches!(s.kind, Kind::Unicode | Kind::Bytes) {
            return Err(self.not("strings"));
        }
        if s.size == 0 {
            return Ok(vec![String::new(); self.len()]);
        }
        self.items()
            .map(|b| s.string_at(b).ok_or_else(|| self.not("strings")))
            .collect()
    }

    /// The single value of a 0-d or one-element array as f64.
    pub fn scalar_f64(&self) -> Result<f64, Error> {
        match self.to_f64()?.as_slice() {
            [v] => Ok(*v),
            _ => Err(Error::invalid(format!(
                "expected one value, got an array of shape {:?}",
                self.shape
            ))),
        }
    }

    /// The single value of a 0-d or one-element array as i64.
    pub fn scalar_i64(&self) -> Result<i64, Error> {
        match self.to_i64()?.as_slice() {
            [v] => Ok(*v),
            _ => Err(Error::invalid(format!(
                "expected one value, got an array of shape {:?}",
                self.shape
            ))),
        }
    }

    /// The names of a structured array's fields (padding excluded).
    pub fn field_names(&self) -> Vec<&str> {
        match &self.dtype {
            DType::Struct { fields, .. } => fields
                .iter()
                .filter(|f| !f.name.is_empty())
                .map(|f| f.name.as_str())
                .collect(),
            DType::Scalar(_) => Vec::new(),
        }
    }

    fn field(&self, name: &str) -> Result<&Field, Error> {
        match &self.dtype {
            DType::Struct { fields, .. } => {
                fields.iter().find(|f| f.name == name).ok_or_else(|| {
                    Error::invalid(format!(
                        "structured array {} has no field '{name}'",
                        self.dtype.describe()
                    ))
                })
            }
            DType::Scalar(_) => Err(Error::invalid(format!(
                "expected a structured array with field '{name}', got {}",
                self.dtype.describe()
            ))),
        }
    }

    /// One field of every record of a structured array, as f64.
    pub fn field_f64(&self, name: &str) -> Result<Vec<f64>, Error> {
        let f = self.field(name)?;
        self.items()
            .map(|b| {
                f.ty.f64_at(&b[f.offset..])
                    .ok_or_else(|| Error::invalid(format!("field '{name}' is not numeric")))
            })
            .collect()
    }

    /// One field of every record of a structured array, as i64.
    pub fn field_i64(&self, name: &str) -> Result<Vec<i64>, Error> {
        let f = self.field(name)?;
        self.items()
            .map(|b| {
                let v = f
                    .ty
                    .i128_at(&b[f.offset..])
                    .ok_or_else(|| Error::invalid(format!("field '{name}' is not an integer")))?;
                i64::try_from(v).map_err(|_| Error::invalid(format!("integer {v} is out of range")))
            })
            .collect()
    }

    fn not(&self, what: &str) -> Error {
        Error::invalid(format!(
            "expected an array of {what}, got dtype {}",
            self.dtype.describe()
        ))
    }
}

/// Reorders Fortran-ordered data (first index fastest) to C order (last index fastest).
fn to_c_order(data: &[u8], shape: &[usize], item: usize) -> Vec<u8> {
    let count: usize = shape.iter().product();
    let mut out = vec![0u8; data.len()];
    let mut index = vec![0usize; shape.len()];
    // Strides of the Fortran layout, in items.
    let mut fstride = vec![1usize; shape.len()];
    for d in 1..shape.len() {
        fstride[d] = fstride[d - 1] * shape[d - 1];
    }
    for c in 0..count {
        let f: usize = index.iter().zip(&fstride).map(|(i, s)| i * s).sum();
        out[c * item..(c + 1) * item].copy_from_slice(&data[f * item..(f + 1) * item]);
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

fn dtype_of(descr: &Literal) -> Result<DType, Error> {
    match descr {
        Literal::Str(s) => Ok(DType::Scalar(Scalar::parse(s)?)),
        Literal::List(items) => {
            if items.len() > MAX_FIELDS {
                return Err(Error::invalid("structured dtype has too many fields"));
            }
            let mut fields = Vec::with_capacity(items.len());
            let mut offset = 0usize;
            for item in items {
                let (name, ty) = match item {
                    Literal::Tuple(t) if t.len() == 2 => match (&t[0], &t[1]) {
                        (Literal::Str(n), Literal::Str(ty)) => (n.clone(), Scalar::parse(ty)?),
                        (_, Literal::List(_)) => {
                            return Err(Error::unsupported(
                                "nested structured dtypes are not supported",
                            ));
                        }
                        _ => return Err(Error::invalid("bad structured dtype field")),
                    },
                    Literal::Tuple(t) if t.len() == 3 => {
                        return Err(Error::unsupported(
                            "structured dtype fields with sub-arrays are not supported",
                        ));
                    }
                    _ => return Err(Error::invalid("bad structured dtype field")),
                };
                fields.push(Field { name, offset, ty });
                offset = offset
                    .checked_add(ty.size)
                    .ok_or_else(|| Error::invalid("structured dtype is too large"))?;
            }
            Ok(DType::Struct {
                fields,
                itemsize: offset,
            })
        }
        _ => Err(Error::invalid(
            ".npy 'descr' is neither a string nor a list",
        )),
    }
}

/// The subset of Python literals a `.npy` header uses.
#[derive(Debug)]
enum Literal {
    Str(String),
    Int(i128),
    Bool(bool),
    Tuple(Vec<Literal>),
    List(Vec<Literal>),
    Dict(Vec<(String, Literal)>),
}

impl Literal {
    fn get(&self, key: &str) -> Option<&Literal> {
        match self {
            Literal::Dict(e) => e.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Literal, Error> {
        let mut p = LitParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(Error::invalid("bad .npy header: trailing characters"));
        }
        match v {
            Literal::Dict(_) => Ok(v),
            _ => Err(Error::invalid("bad .npy header: not a dict")),
        }
    }
}

struct LitParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl LitParser<'_> {
    fn err(&self) -> Error {
        Error::invalid(format!("bad .npy header at byte {}", self.i))
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn seq(&mut self, close: u8, depth: usize) -> Result<Vec<Literal>, Error> {
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.s.get(self.i) == Some(&close) {
                self.i += 1;
                return Ok(items);
            }
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(&c) if c == close => {}
                _ => return Err(self.err()),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Literal, Error> {
        if depth > 8 {
            return Err(self.err());
        }
        self.ws();
        let c = *self.s.get(self.i).ok_or_else(|| self.err())?;
        match c {
            b'{' => {
                self.i += 1;
                let mut entries = Vec::new();
                loop {
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Literal::Dict(entries));
                    }
                    let Literal::Str(key) = self.value(depth + 1)? else {
                        return Err(self.err());
                    };
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return Err(self.err());
                    }
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    entries.push((key, v));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {}
                        _ => return Err(self.err()),
                    }
                }
            }
            b'(' => {
                self.i += 1;
                Ok(Literal::Tuple(self.seq(b')', depth)?))
            }
            b'[' => {
                self.i += 1;
                Ok(Literal::List(self.seq(b']', depth)?))
            }
            b'\'' | b'"' => {
                self.i += 1;
                let start = self.i;
                while self.s.get(self.i).is_some_and(|&b| b != c) {
                    if self.s[self.i] == b'\\' {
                        return Err(self.err());
                    }
                    self.i += 1;
                }
                if self.i >= self.s.len() {
                    return Err(self.err());
                }
                let s = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Ok(Literal::Str(s))
            }
            b'T' if self.s[self.i..].starts_with(b"True") => {
                self.i += 4;
                Ok(Literal::Bool(true))
            }
            b'F' if self.s[self.i..].starts_with(b"False") => {
                self.i += 5;
                Ok(Literal::Bool(false))
            }
            b'0'..=b'9' | b'-' => {
                let start = self.i;
                self.i += 1;
                while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                }
                // Python 2 era headers may write `3L`.
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i])
                    .map_err(|_| self.err())?
                    .trim_end_matches('L');
                text.parse::<i128>().map(Literal::Int).map_err(|_| {
                    Error::invalid(format!(".npy shape has a bad size {}", clip(text)))
                })
            }
            _ => Err(self.err()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.as_bytes().to_vec();
        h.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend(h);
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn scalars_and_orders() {
        let mut d = Vec::new();
        for v in [1.5f64, -2.0, 3.25, 4.0, 5.0, 6.0] {
            d.extend_from_slice(&v.to_be_bytes());
        }
        // Fortran order, big endian, shape (2, 3): memory holds column-major values.
        let a = NdArray::parse(&npy(
            "{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }",
            &d,
        ))
        .unwrap();
        assert_eq!(a.to_f64().unwrap(), vec![1.5, 3.25, 5.0, -2.0, 4.0, 6.0]);
        let s = NdArray::parse(&npy(
            "{'descr': '<U2', 'fortran_order': False, 'shape': (2,), }",
            &[b'a', 0, 0, 0, b'b', 0, 0, 0, 0xe9, 0, 0, 0, 0, 0, 0, 0],
        ))
        .unwrap();
        assert_eq!(s.to_strings().unwrap(), vec!["ab", "é"]);
    }

    #[test]
    fn structured() {
        let mut d = Vec::new();
        for (l, t) in [(1i64, 0.5f64), (-1, 2.0)] {
            d.extend_from_slice(&l.to_le_bytes());
            d.extend_from_slice(&t.to_le_bytes());
            d.extend_from_slice(&[1, 0, 0, 0]);
        }
        let a = NdArray::parse(&npy(
            "{'descr': [('left_child', '<i8'), ('threshold', '<f8'), ('m', '|u1'), ('', '|V3')], 'fortran_order': False, 'shape': (2,), }",
            &d,
        ))
        .unwrap();
        assert_eq!(a.field_i64("left_child").unwrap(), vec![1, -1]);
        assert_eq!(a.field_f64("threshold").unwrap(), vec![0.5, 2.0]);
        assert_eq!(a.field_i64("m").unwrap(), vec![1, 1]);
        assert!(a.field_f64("nope").is_err());
        assert_eq!(a.field_names(), vec!["left_child", "threshold", "m"]);
    }

    #[test]
    fn bad_files() {
        let h = |s: &str| {
            npy(
                &format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {s}, }}"),
                &[0; 16],
            )
        };
        assert!(NdArray::parse(&h("(2,)")).is_ok());
        assert!(NdArray::parse(&h("(3,)")).is_err());
        assert!(NdArray::parse(&h("(1099511627776,)")).is_err());
        assert!(NdArray::parse(&h("(4294967296, 4294967296, 4294967296)")).is_err());
        assert!(NdArray::parse(&h("(-1,)")).is_err());
        assert!(NdArray::parse(&h("(99999999999999999999999999999999999999999,)")).is_err());
        assert!(
            NdArray::parse(&npy(
                "{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }",
                &[0; 16]
            ))
            .is_err()
        );
        assert!(
            NdArray::parse(&npy(
                "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
                &[0; 8]
            ))
            .is_err()
        );
        assert!(NdArray::parse(b"\x93NUMPY\x01\x00\xff\xff{").is_err());
        assert!(NdArray::parse(b"garbage").is_err());
    }
}
