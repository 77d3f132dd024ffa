//! `serde_json::Value`s written as Python's `json.dumps` writes them, for the texts MLflow
//! builds with it that clients read byte for byte: its error messages (`invalid_value`,
//! compact with sorted keys) and tags such as a logged model's `mlflow.modelVersions` (the
//! default `", "` and `": "` separators), and the span attributes and trace metadata MLflow's
//! tracing dumps (`mlflow.llm.cost`, `mlflow.trace.cost`). Strings are written `ensure_ascii`, as
//! Python's default; floats as `repr(float)` ([`write_f64`], which the scoring server's writer in
//! `wasmflow-serving` shares). Also Python's `repr` of a string and of what `json.loads` makes of
//! a value, which MLflow's messages print with f-strings.

use std::fmt::Write;

use serde_json::Value;

/// Which of `json.dumps`'s layouts to write.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Style {
    /// `json.dumps(v)`: `[1, 2]`, `{"a": 1}`, keys in their order.
    Default,
    /// `json.dumps(v, sort_keys=True, separators=(",", ":"))`.
    CompactSorted,
    /// `json.dumps(v, ensure_ascii=False)`: as `Default`, non-ASCII characters written as they
    /// are (how MLflow dumps span attribute values).
    Unicode,
}

/// `value` as `json.dumps` writes it in `style`.
pub fn dumps(value: &Value, style: Style) -> String {
    let mut out = String::new();
    write_value(value, style, &mut out);
    out
}

/// [`dumps`] appended to `out`, for a writer that puts a larger text together itself.
pub fn write_value(value: &Value, style: Style, out: &mut String) {
    let (item_sep, key_sep) = match style {
        Style::Default | Style::Unicode => (", ", ": "),
        Style::CompactSorted => (",", ":"),
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_str(s, out, style != Style::Unicode),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                write_value(item, style, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            let mut entry = |i: usize, k: &str, v: &Value| {
                if i > 0 {
                    out.push_str(item_sep);
                }
                write_str(k, out, style != Style::Unicode);
                out.push_str(key_sep);
                write_value(v, style, out);
            };
            if style == Style::CompactSorted {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    entry(i, k, v);
                }
            } else {
                for (i, (k, v)) in map.iter().enumerate() {
                    entry(i, k, v);
                }
            }
            out.push('}');
        }
    }
}

/// Numbers as Python writes them: integers as they are, floats as `repr(float)` ([`write_f64`]).
fn write_number(n: &serde_json::Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
        return;
    }
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
        return;
    }
    match n.as_f64() {
        Some(x) => {
            let mut text = Vec::with_capacity(24);
            write_f64(&mut text, x);
            out.push_str(std::str::from_utf8(&text).unwrap_or_default());
        }
        // Only an arbitrary-precision number (a feature not built) has no f64.
        None => out.push_str(&n.to_string()),
    }
}

/// `x` as Python's `repr(float)` writes it ([`write_f64`]; a non-finite one as `json.dumps`
/// does), as a string: what MLflow's messages and labels show of a float.
pub fn repr_f64(x: f64) -> String {
    let mut out = Vec::new();
    write_f64(&mut out, x);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `x` as Python's `repr(float)` (and so `json.dumps`) writes it.
pub fn write_f64(out: &mut Vec<u8>, x: f64) {
    if !x.is_finite() {
        out.extend_from_slice(if x.is_nan() {
            b"NaN"
        } else if x > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        });
        return;
    }
    // ryu finds the shortest digits that read back as `x` (the same digits as Python's repr,
    // which is also the shortest round trip, nearest to `x` on ties), and lays them out as
    // Python does for -4 < exponent <= 16 except between 1e-5 and 1e-4 ("0.0000ddd" where
    // Python writes "d.ddde-05"); its exponents lack Python's sign and two digits.
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(x).as_bytes();
    match text.iter().position(|&b| b == b'e') {
        None if !text
            .strip_prefix(b"-")
            .unwrap_or(text)
            .starts_with(b"0.0000") =>
        {
            out.extend_from_slice(text);
            return;
        }
        Some(e) => {
            out.extend_from_slice(&text[..=e]);
            let exponent = &text[e + 1..];
            let digits = match exponent.split_first() {
                Some((b'-', digits)) => {
                    out.push(b'-');
                    digits
                }
                _ => {
                    out.push(b'+');
                    exponent
                }
            };
            if digits.len() < 2 {
                out.push(b'0');
            }
            out.extend_from_slice(digits);
            return;
        }
        None => {}
    }
    // The general layout from the digits (only 1e-5 <= |x| < 1e-4 comes here).
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e') {
        Some(e) => (&text[..e], parse_exponent(&text[e + 1..])),
        None => (text, 0),
    };
    // The value is 0.DIGITS × 10^point.
    let mut digits = [0u8; 24];
    let mut count = 0;
    let mut point = exponent;
    let mut seen_point = false;
    for &b in mantissa {
        match b {
            b'.' => seen_point = true,
            b'0' if count == 0 => {
                // A leading zero: before the point it is nothing, after it shifts the point.
                if seen_point {
                    point -= 1;
                }
            }
            _ => {
                if count < digits.len() {
                    digits[count] = b;
                    count += 1;
                }
                if !seen_point {
                    point += 1;
                }
            }
        }
    }
    while count > 0 && digits[count - 1] == b'0' {
        count -= 1;
    }
    if negative {
        out.push(b'-');
    }
    if count == 0 {
        out.extend_from_slice(b"0.0");
        return;
    }
    let digits = &digits[..count];
    if point <= -4 || point > 16 {
        // d.ddde±XX
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        let e = point - 1;
        out.push(b'e');
        out.push(if e < 0 { b'-' } else { b'+' });
        let e = e.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(itoa::Buffer::new().format(e).as_bytes());
    } else if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', point.unsigned_abs() as usize));
        out.extend_from_slice(digits);
    } else {
        let point = point as usize;
        if point >= digits.len() {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', point - digits.len()));
            out.extend_from_slice(b".0");
        } else {
            out.extend_from_slice(&digits[..point]);
            out.push(b'.');
            out.extend_from_slice(&digits[point..]);
        }
    }
}

fn parse_exponent(text: &[u8]) -> i32 {
    let (sign, digits) = match text.split_first() {
        Some((b'-', rest)) => (-1, rest),
        Some((b'+', rest)) => (1, rest),
        _ => (1, text),
    };
    sign * digits
        .iter()
        .fold(0i32, |acc, &d| acc * 10 + i32::from(d - b'0'))
}

/// The string `s` as `json.dumps` writes it in `style`, appended to `out`.
pub fn write_string(s: &str, style: Style, out: &mut String) {
    write_str(s, out, style != Style::Unicode);
}

fn write_str(s: &str, out: &mut String, ensure_ascii: bool) {
    out.reserve(s.len() + 2);
    out.push('"');
    // Characters written as they are go over in runs, one copy a run: most text needs no
    // escape at all (OTLP ingest writes every span attribute through here, twice).
    let mut run = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            c if c.is_ascii() && !c.is_ascii_control() => continue,
            c if !ensure_ascii && !c.is_control() => continue,
            _ => "",
        };
        out.push_str(&s[run..i]);
        run = i + c.len_utf8();
        if escape.is_empty() {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// A string as Python's `repr` shows it, which MLflow's messages quote values with.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr` of what `json.loads` makes of a JSON value.
pub fn repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) if n.is_f64() => repr_f64(n.as_f64().unwrap_or_default()),
        Value::Number(n) => n.to_string(),
        Value::String(s) => repr_str(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", repr_str(k), repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repr_as_python_prints_what_json_loads_makes() {
        assert_eq!(
            repr(&json!([1, 2.0, 1.5e-5, 1e16, null, true, "it's", {"k": "v"}])),
            r#"[1, 2.0, 1.5e-05, 1e+16, None, True, "it's", {'k': 'v'}]"#
        );
    }

    #[test]
    fn as_python_writes_it() {
        let v = json!([{"name": "m\u{e9}", "version": 1}, {"b": [1.5, null], "a": "x\"y"}]);
        assert_eq!(
            dumps(&v, Style::Default),
            r#"[{"name": "m\u00e9", "version": 1}, {"b": [1.5, null], "a": "x\"y"}]"#
        );
        assert_eq!(
            dumps(&v, Style::CompactSorted),
            r#"[{"name":"m\u00e9","version":1},{"a":"x\"y","b":[1.5,null]}]"#
        );
        assert_eq!(
            dumps(&json!(["m\u{e9}", 1.5e-7, 2e16]), Style::Unicode),
            "[\"m\u{e9}\", 1.5e-07, 2e+16]"
        );
        // Between 1e-5 and 1e-4 Python's repr is exponential too (a span's cost often is).
        assert_eq!(
            dumps(
                &json!([1.5e-5, 1e-4, 2.5e-5 + 1e-6, -0.0, 100.0]),
                Style::Default
            ),
            "[1.5e-05, 0.0001, 2.6000000000000002e-05, -0.0, 100.0]"
        );
        assert_eq!(
            dumps(&json!("\u{1F600}"), Style::Default),
            r#""\ud83d\ude00""#
        );
    }

    /// Escapes between runs of text written as it is, at the start, the end and side by side.
    #[test]
    fn escapes_in_runs() {
        let s = "\"a\\b\nc\r\td\u{8}\u{c}\u{1}é\u{1F600}z\"";
        assert_eq!(
            dumps(&json!(s), Style::Unicode),
            "\"\\\"a\\\\b\\nc\\r\\td\\b\\f\\u0001é\u{1F600}z\\\"\""
        );
        assert_eq!(
            dumps(&json!(s), Style::Default),
            r#""\"a\\b\nc\r\td\b\f\u0001\u00e9\ud83d\ude00z\"""#
        );
        assert_eq!(dumps(&json!(""), Style::Unicode), r#""""#);
        assert_eq!(
            dumps(&json!([-5, 18446744073709551615u64, 2.0]), Style::Default),
            "[-5, 18446744073709551615, 2.0]"
        );
    }
}
