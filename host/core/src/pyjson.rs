//! `serde_json::Value`s written as Python's `json.dumps` writes them, for the texts MLflow
//! builds with it that clients read byte for byte: its error messages (`invalid_value`,
//! compact with sorted keys) and tags such as a logged model's `mlflow.modelVersions` (the
//! default `", "` and `": "` separators). Strings are written `ensure_ascii`, as Python's default.
//! (Scoring responses, which need Python's float formatting, have their own writer in
//! `wasmflow-serving`.)

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

fn write_value(value: &Value, style: Style, out: &mut String) {
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
            let mut entries: Vec<_> = map.iter().collect();
            if style == Style::CompactSorted {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                write_str(k, out, style != Style::Unicode);
                out.push_str(key_sep);
                write_value(v, style, out);
            }
            out.push('}');
        }
    }
}

/// Numbers closer to how Python writes them: a float's exponent is signed with at least two
/// digits (`1e-07`, `1e+16`), where Rust writes `1e-7` and `1e16`. (Floats in [1e-5, 1e-4)
/// still differ: Python writes `1.5e-05`, Rust `0.000015`.)
fn write_number(n: &serde_json::Number, out: &mut String) {
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

fn write_str(s: &str, out: &mut String, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c if !ensure_ascii && !c.is_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
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
}
