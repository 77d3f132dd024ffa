//! `serde_json::Value`s written as Python's `json.dumps` writes them, for the texts MLflow
//! builds with it that clients read byte for byte: its error messages (`invalid_value`,
//! compact with sorted keys) and tags such as a logged model's `mlflow.modelVersions` (the
//! default `", "` and `": "` separators). Strings are written `ensure_ascii`, as Python's default.
//! (Scoring responses, which need Python's float formatting, have their own writer in
//! `wasmflow-serving`.) Also Python's `repr` of a string and of what `json.loads` makes of a
//! value, which MLflow's messages print with f-strings.

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

/// Numbers closer to how Python writes them: a float's exponent is signed with at least two
/// digits (`1e-07`, `1e+16`), where Rust writes `1e-7` and `1e16`. (Floats in [1e-5, 1e-4)
/// still differ: Python writes `1.5e-05`, Rust `0.000015`.)
fn write_number(n: &serde_json::Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
        return;
    }
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
        return;
    }
    let text = n.to_string();
    match text.split_once('e') {
        Some((mantissa, exp)) if n.is_f64() => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp.trim_start_matches('+')),
            };
            let _ = write!(out, "{mantissa}e{sign}{digits:0>2}");
        }
        _ => out.push_str(&text),
    }
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
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            if f.fract() == 0.0 && f.abs() < 1e16 {
                format!("{f:.1}")
            } else {
                f.to_string()
            }
        }
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
