//! The bytes MLflow posts: `json.dumps({"entity", "action", "timestamp", "data"})` with Python's
//! default separators (`", "`, `": "`) and `ensure_ascii`, the timestamp as
//! `datetime.now(timezone.utc).isoformat()`, and the HMAC signature over
//! `{delivery_id}.{timestamp}.{payload}`.

use std::io;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::ser::Formatter;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use wasmflow_store::webhooks::{WebhookAction, WebhookEntity, WebhookEvent};

/// Python's `json.dumps` defaults: `", "` and `": "`, every character outside printable ASCII
/// written as `\uXXXX` (UTF-16 halves above the BMP).
struct PythonJson;

impl Formatter for PythonJson {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for c in fragment.chars() {
            if (' '..='~').contains(&c) {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// `json.dumps(value)`.
pub fn python_dumps(value: &Value) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonJson);
    value
        .serialize(&mut ser)
        .expect("serializing a JSON value to memory cannot fail");
    String::from_utf8(out).expect("the output is ASCII")
}

/// `datetime.now(timezone.utc).isoformat()`: microseconds unless they are zero, `+00:00`.
pub fn isoformat_utc(now: std::time::SystemTime) -> String {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() as i64;
    let micros = since.subsec_micros();
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = wasmflow_core::time::civil_from_days(days);
    let time = format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if micros == 0 {
        format!("{y:04}-{m:02}-{d:02}T{time}+00:00")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{time}.{micros:06}+00:00")
    }
}

/// The posted document: the event, when it was sent, and the event's data.
pub fn envelope(event: WebhookEvent, data: &Value, now: std::time::SystemTime) -> String {
    python_dumps(&json!({
        "entity": event.entity.as_str(),
        "action": event.action.as_str(),
        "timestamp": isoformat_utc(now),
        "data": data,
    }))
}

/// `X-MLflow-Signature`: `v1,` and the base64 HMAC-SHA256 of `{delivery_id}.{timestamp}.{payload}`
/// under the webhook's secret.
pub fn signature(secret: &str, delivery_id: &str, timestamp: &str, payload: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(format!("{delivery_id}.{timestamp}.{payload}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Tags as the `{key: value}` object MLflow's payloads carry (a repeated key keeps its first
/// place and its last value, as a Python dict built from them does).
pub fn tag_object<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let mut map = Map::new();
    for (k, v) in tags {
        map.insert(k.to_string(), Value::String(v.to_string()));
    }
    Value::Object(map)
}

/// MLflow's example payload of each event, which the test endpoint sends.
pub fn example(event: WebhookEvent) -> Value {
    use WebhookAction as A;
    use WebhookEntity as E;
    let tags = json!({"example_key": "example_value"});
    match (event.entity, event.action) {
        (E::RegisteredModel, _) => json!({
            "name": "example_model", "tags": tags, "description": "An example registered model",
        }),
        (E::ModelVersion, _) => json!({
            "name": "example_model", "version": "1", "source": "models:/123",
            "run_id": "abcd1234abcd5678", "tags": tags, "description": "An example model version",
        }),
        (E::ModelVersionTag, A::Set) => json!({
            "name": "example_model", "version": "1", "key": "example_key", "value": "example_value",
        }),
        (E::ModelVersionTag, _) => json!({
            "name": "example_model", "version": "1", "key": "example_key",
        }),
        (E::ModelVersionAlias, A::Created) => json!({
            "name": "example_model", "alias": "example_alias", "version": "1",
        }),
        (E::ModelVersionAlias, _) => json!({"name": "example_model", "alias": "example_alias"}),
        (E::Prompt, _) => json!({
            "name": "example_prompt", "tags": tags, "description": "An example prompt",
        }),
        (E::PromptVersion, _) => json!({
            "name": "example_prompt", "version": "1", "template": "Hello {{name}}!",
            "tags": tags, "description": "An example prompt version",
        }),
        (E::PromptTag, A::Set) => json!({
            "name": "example_prompt", "key": "example_key", "value": "example_value",
        }),
        (E::PromptTag, _) => json!({"name": "example_prompt", "key": "example_key"}),
        (E::PromptVersionTag, A::Set) => json!({
            "name": "example_prompt", "version": "1", "key": "example_key",
            "value": "example_value",
        }),
        (E::PromptVersionTag, _) => json!({
            "name": "example_prompt", "version": "1", "key": "example_key",
        }),
        (E::PromptAlias, A::Created) => json!({
            "name": "example_prompt", "alias": "example_alias", "version": "1",
        }),
        (E::PromptAlias, _) => json!({"name": "example_prompt", "alias": "example_alias"}),
        (E::BudgetPolicy, _) => json!({
            "budget_policy_id": "bp-abc123", "budget_unit": "USD", "budget_amount": 100.0,
            "current_spend": 105.5, "duration_unit": "MONTHS", "duration_value": 1,
            "target_scope": "ENDPOINT", "workspace": "default", "target_value": "ep-abc123",
            "window_start": 1_704_067_200_000_i64,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn dumps_like_python() {
        let v = json!({"name": "m\u{e9}\u{1f600}\"\n\u{7f}", "tags": {}, "n": null, "l": [1, "a"]});
        // json.dumps({"name": "mé😀\"\n\x7f", "tags": {}, "n": None, "l": [1, "a"]})
        assert_eq!(
            python_dumps(&v),
            r#"{"name": "m\u00e9\ud83d\ude00\"\n\u007f", "tags": {}, "n": null, "l": [1, "a"]}"#
        );
    }

    #[test]
    fn isoformat() {
        let t = UNIX_EPOCH + Duration::from_micros(1_754_000_000_123_456);
        assert_eq!(isoformat_utc(t), "2025-07-31T22:13:20.123456+00:00");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(isoformat_utc(t), "2000-02-29T00:00:00+00:00");
    }

    #[test]
    fn signature_matches_python_hmac() {
        // base64.b64encode(hmac.new(b"s", b"d.1.{}", hashlib.sha256).digest())
        assert_eq!(
            signature("s", "d", "1", "{}"),
            "v1,IU+2+KHu4+2P4cNMuwvd3lx0u3yUZ/KaEHscpFOsm4Y="
        );
    }
}
