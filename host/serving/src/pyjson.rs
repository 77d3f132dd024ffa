//! JSON as Python's `json` module writes and reads it, where it differs from strict JSON:
//!
//! - writing: `float.__repr__` for floats (`1e-05`, `1e+16`, `100.0`, `-0.0`), the tokens
//!   `NaN`, `Infinity` and `-Infinity`, and `ensure_ascii` strings (`\uXXXX`, surrogate pairs);
//! - reading: those three tokens as numbers, which `json.dumps` (and so `requests`) sends and
//!   MLflow's scoring server accepts. serde_json refuses them, so a body that holds one is
//!   rewritten first (see [`rewrite_nonfinite`]); a body without them is parsed as it is.

use std::cell::Cell;

use base64::Engine as _;
pub use wasmflow_core::pyjson::{repr_f64, write_f64};

/// Appends a float32 as Python writes `float(np.float32(x))`: the float64 of the same value.
pub fn write_f32(out: &mut Vec<u8>, x: f32) {
    write_f64(out, f64::from(x));
}

pub fn write_i64(out: &mut Vec<u8>, x: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(x).as_bytes());
}

/// Appends `s` as a JSON string the way `json.dumps` (`ensure_ascii=True`) writes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            continue;
        }
        if b >= 0x80 {
            // Non-ASCII: handled by characters below, from the first one on.
            out.extend_from_slice(&bytes[start..i]);
            write_escaped_tail(out, &s[i..]);
            out.push(b'"');
            return;
        }
        out.extend_from_slice(&bytes[start..i]);
        write_ascii_escape(out, b);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_ascii_escape(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => write_unit(out, u16::from(b)),
    }
}

fn write_escaped_tail(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        if c.is_ascii() {
            let b = c as u8;
            if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
                out.push(b);
            } else {
                write_ascii_escape(out, b);
            }
        } else {
            let mut units = [0u16; 2];
            for &unit in c.encode_utf16(&mut units).iter() {
                write_unit(out, unit);
            }
        }
    }
}

/// `\uXXXX` in lowercase hex, as Python writes it.
fn write_unit(out: &mut Vec<u8>, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 0xf)]);
    }
}

/// Bytes as MLflow's `NumpyEncoder` writes them: `base64.encodebytes`, which ends every line
/// of 76 characters (57 bytes) and the last one with a newline.
pub fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let engine = base64::engine::general_purpose::STANDARD;
    for chunk in bytes.chunks(57) {
        out.extend_from_slice(engine.encode(chunk).as_bytes());
        out.extend_from_slice(b"\\n");
    }
    out.push(b'"');
}

thread_local! {
    /// While a request is parsed: how many NUL characters open the strings that stand for
    /// `NaN`, `Infinity` and `-Infinity` (0: none do).
    static MARKER: Cell<usize> = const { Cell::new(0) };
}

/// Keeps the marker set while a rewritten body's values are read; clears it when dropped.
pub struct MarkerGuard(());

impl MarkerGuard {
    /// Sets the marker width (0 for a body that was not rewritten).
    pub fn set(width: usize) -> Self {
        MARKER.with(|m| m.set(width));
        Self(())
    }
}

impl Drop for MarkerGuard {
    fn drop(&mut self) {
        MARKER.with(|m| m.set(0));
    }
}

/// The number a string stands for when [`rewrite_nonfinite`] wrote it for a token.
pub fn nonfinite(s: &str) -> Option<f64> {
    let width = MARKER.with(Cell::get);
    if width == 0 || s.len() <= width {
        return None;
    }
    let (marker, token) = s.as_bytes().split_at(width);
    if marker.iter().any(|&b| b != 0) {
        return None;
    }
    match token {
        b"NaN" => Some(f64::NAN),
        b"Infinity" => Some(f64::INFINITY),
        b"-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// A body whose `NaN`, `Infinity` and `-Infinity` tokens (outside strings) are written as
/// strings serde_json reads, and the marker width to give [`MarkerGuard::set`]; `None` when the
/// body has no such token (the usual case, decided by two fast substring searches).
///
/// Each token becomes a string of `width` NUL characters followed by the token's name, where
/// `width` is one more than the most NULs any string of the body starts with: no string the
/// client sent can be mistaken for a number. String contents are copied untouched.
pub fn rewrite_nonfinite(body: &[u8]) -> Option<(Vec<u8>, usize)> {
    if memchr::memmem::find(body, b"NaN").is_none()
        && memchr::memmem::find(body, b"Infinity").is_none()
    {
        return None;
    }
    // The first pass measures the strings' leading NULs and finds the tokens; the second writes.
    let mut width = 1;
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                let start = i + 1;
                let mut nuls = 0;
                while body[start + 6 * nuls..].starts_with(b"\\u0000") {
                    nuls += 1;
                }
                width = width.max(nuls + 1);
                i = start;
                while i < body.len() && body[i] != b'"' {
                    i += if body[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'N' if body[i..].starts_with(b"NaN") => {
                tokens.push((i, 3));
                i += 3;
            }
            b'I' if body[i..].starts_with(b"Infinity") => {
                tokens.push((i, 8));
                i += 8;
            }
            b'-' if body[i..].starts_with(b"-Infinity") => {
                tokens.push((i, 9));
                i += 9;
            }
            _ => i += 1,
        }
    }
    if tokens.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + tokens.len() * (6 * width + 2));
    let mut copied = 0;
    for (at, len) in tokens {
        out.extend_from_slice(&body[copied..at]);
        out.push(b'"');
        for _ in 0..width {
            out.extend_from_slice(b"\\u0000");
        }
        out.extend_from_slice(&body[at..at + len]);
        out.push(b'"');
        copied = at + len;
    }
    out.extend_from_slice(&body[copied..]);
    Some((out, width))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written by Python 3.11 (the e2e venv's) with scripts/gen_pyjson_table.py: `repr(x)` for
    // float64 values given by their bits, `json.dumps(float(np.float32(x)))` for float32
    // values, and `json.dumps(s)`.
    include!("pyjson_table.rs");

    fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_are_written_as_python_repr() {
        for &(bits, expected) in F64_REPR {
            let x = f64::from_bits(bits);
            assert_eq!(text(|o| write_f64(o, x)), expected, "{x:e}");
        }
        for &(bits, expected) in F32_REPR {
            let x = f32::from_bits(bits);
            assert_eq!(text(|o| write_f32(o, x)), expected, "{x:e}");
        }
        assert_eq!(text(|o| write_f64(o, f64::NAN)), "NaN");
        assert_eq!(text(|o| write_f64(o, f64::INFINITY)), "Infinity");
        assert_eq!(text(|o| write_f64(o, f64::NEG_INFINITY)), "-Infinity");
    }

    #[test]
    fn strings_are_written_as_json_dumps() {
        for &(s, expected) in STRINGS {
            assert_eq!(text(|o| write_str(o, s)), expected, "{s:?}");
        }
    }

    #[test]
    fn bytes_are_base64_lines() {
        assert_eq!(text(|o| write_bytes(o, b"")), r#""""#);
        assert_eq!(text(|o| write_bytes(o, b"abc")), r#""YWJj\n""#);
        let long = text(|o| write_bytes(o, &[7u8; 60]));
        assert_eq!(long.matches("\\n").count(), 2);
        assert!(long.starts_with(&format!("\"{}\\n", "BwcH".repeat(19))));
    }

    #[test]
    fn nonfinite_tokens_become_marked_strings_outside_strings_only() {
        assert!(rewrite_nonfinite(br#"{"a": [1, 2.5, null]}"#).is_none());
        assert!(rewrite_nonfinite(br#"{"a": ["NaN", "x Infinity"]}"#).is_none());
        let (body, width) =
            rewrite_nonfinite(br#"{"NaN": [NaN, Infinity, -Infinity, "-Infinity", 1]}"#).unwrap();
        assert_eq!(width, 1);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let _guard = MarkerGuard::set(width);
        let items = value["NaN"].as_array().unwrap();
        assert!(nonfinite(items[0].as_str().unwrap()).unwrap().is_nan());
        assert_eq!(nonfinite(items[1].as_str().unwrap()), Some(f64::INFINITY));
        assert_eq!(
            nonfinite(items[2].as_str().unwrap()),
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(nonfinite(items[3].as_str().unwrap()), None);
    }

    #[test]
    fn a_client_string_is_never_read_as_a_token() {
        let body = br#"["\u0000NaN", "\u0000\u0000Infinity", NaN, "esc\"NaN\\", "\\"]"#;
        let (body, width) = rewrite_nonfinite(body).unwrap();
        assert_eq!(width, 3);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let _guard = MarkerGuard::set(width);
        let read: Vec<Option<f64>> = value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| nonfinite(v.as_str().unwrap()))
            .collect();
        assert_eq!(read[0], None);
        assert_eq!(read[1], None);
        assert!(read[2].unwrap().is_nan());
        assert_eq!(read[3], None);
        assert_eq!(value[3], "esc\"NaN\\");
        drop(_guard);
        assert_eq!(nonfinite("\u{0}\u{0}\u{0}NaN"), None);
    }

    #[test]
    fn truncated_bodies_do_not_panic() {
        for body in [&b"\"NaN"[..], b"[NaN, \"\\", b"\"\\u00", b"NaN\""] {
            let _ = rewrite_nonfinite(body);
        }
    }
}
