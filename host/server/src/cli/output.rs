//! What the CLI's subcommands print: tables, cells and timestamps.

use serde_json::Value;

pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn time(v: &Value) -> String {
    millis(v).map_or(String::new(), |ms| {
        let (date, clock, _) = utc(ms);
        format!("{date} {clock}")
    })
}

/// Milliseconds since the epoch as pandas prints a UTC datetime:
/// `2024-05-01 12:00:00.123000+00:00`.
pub fn pandas_time(v: &Value) -> String {
    millis(v).map_or(String::new(), |ms| {
        let (date, clock, millis) = utc(ms);
        format!("{date} {clock}.{millis:03}000+00:00")
    })
}

/// A JSON number, or a string holding one (protobuf's JSON form of int64).
fn millis(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// (`YYYY-MM-DD`, `HH:MM:SS`, milliseconds) of a millisecond timestamp, in UTC.
fn utc(ms: i64) -> (String, String, i64) {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = wasmflow_core::time::civil_from_days(days);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
        ms.rem_euclid(1000),
    )
}

/// Writes rows under a header, each column as wide as its widest cell.
pub fn table(
    out: &mut impl std::io::Write,
    header: &[&str],
    rows: Vec<Vec<String>>,
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in &rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    if rows.is_empty() {
        writeln!(out, "(none)")?;
    }
    Ok(())
}
