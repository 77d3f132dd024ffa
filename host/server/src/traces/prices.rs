//! MLflow 3.17's price of an LLM span at ingest: a span that carries token usage
//! (`mlflow.chat.tokenUsage`) and a model (`mlflow.llm.model`, optionally `mlflow.llm.provider`)
//! but no `mlflow.llm.cost` is given one from MLflow's bundled model catalog, as
//! `mlflow.tracing.utils.calculate_cost_by_model_and_token_usage` does without litellm (through
//! `mlflow.utils.providers.cost_per_token`).
//!
//! The catalog's prices are `model_prices.tsv` (written from the installed mlflow package by
//! `scripts/gen_model_prices.py`; MLflow's data, Apache-2.0), compiled into the binary and read
//! once, on the first span that needs a price. MLflow fetches a provider's list from its release
//! page first when a provider is named (`MLFLOW_MODEL_CATALOG_URI`) and prices from the bundled
//! one when that fails or is turned off; wasmflow fetches nothing and prices from the bundled
//! list, as MLflow does offline.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

/// MLflow 3.17.2's catalog, as `scripts/gen_model_prices.py` writes it.
const DATA: &str = include_str!("model_prices.tsv");

/// Model URI prefixes MLflow never prices (`_SKIP_COST_PREFIXES`: routing names, not models).
const SKIPPED_PREFIXES: [&str; 2] = ["gateway:/", "endpoints:/"];

/// A model's prices in USD a token (`_flatten_catalog_entry`: the catalog's per-million
/// prices divided by a million), each where the catalog gives it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Prices {
    input: Option<f64>,
    output: Option<f64>,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    cache_write_1h: Option<f64>,
}

struct Catalog {
    /// Provider names in MLflow's scan order (sorted file names).
    providers: Vec<&'static str>,
    /// Each model name's entries: the provider (its index) and its prices, in scan order.
    models: HashMap<&'static str, Vec<(usize, Prices)>>,
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| parse(DATA))
}

/// The catalog from its text: a header of comments, then each provider after an empty line,
/// its name, then a model a line (name and up to five prices, tab-separated).
fn parse(text: &'static str) -> Catalog {
    let mut providers: Vec<&'static str> = Vec::new();
    let mut models: HashMap<&'static str, Vec<(usize, Prices)>> = HashMap::new();
    let mut lines = text.lines().skip_while(|l| !l.is_empty());
    while let Some(line) = lines.next() {
        if line.is_empty() {
            if let Some(name) = lines.next() {
                providers.push(name);
            }
            continue;
        }
        let Some(provider) = providers.len().checked_sub(1) else {
            continue;
        };
        let mut fields = line.split('\t');
        let name = fields.next().unwrap_or_default();
        let mut price = || {
            fields
                .next()
                .and_then(|f| f.parse::<f64>().ok())
                .map(|per_million| per_million / 1_000_000.0)
        };
        let prices = Prices {
            input: price(),
            output: price(),
            cache_read: price(),
            cache_write: price(),
            cache_write_1h: price(),
        };
        models.entry(name).or_default().push((provider, prices));
    }
    Catalog { providers, models }
}

/// `_lookup_model_info`: the part of the name after its first `/` looked up in the named
/// provider's list, or, with none named, in every provider's in turn, the first that has an
/// input price winning (else the first that has the model at all).
fn lookup(model: &str, provider: Option<&str>) -> Option<Prices> {
    let bare = model.split_once('/').map_or(model, |(_, rest)| rest);
    let catalog = catalog();
    let entries = catalog.models.get(bare)?;
    match provider {
        Some(p) => {
            let index = catalog.providers.iter().position(|name| *name == p)?;
            entries.iter().find(|(i, _)| *i == index).map(|(_, p)| *p)
        }
        None => entries
            .iter()
            .find(|(_, p)| p.input.is_some_and(|v| v != 0.0))
            .or_else(|| entries.first())
            .map(|(_, p)| *p),
    }
}

/// A token count as Python holds it: JSON integers (and booleans, Python's `int`s) exactly,
/// other numbers as floats, so that the arithmetic below is Python's.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    /// A usage value, or `None` for one Python cannot do arithmetic with (a string, `null`...).
    fn of(v: &Value) -> Option<Num> {
        match v {
            Value::Bool(b) => Some(Num::Int(i128::from(*b))),
            Value::Number(n) => Some(match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Num::Int(i128::from(i)),
                (None, Some(u)) => Num::Int(i128::from(u)),
                _ => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
            }),
            _ => None,
        }
    }

    fn f(self) -> f64 {
        match self {
            // Python's `float(int)`: the nearest float, ties to even, as `as` rounds.
            Num::Int(i) => i as f64,
            Num::Float(x) => x,
        }
    }

    fn sub(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Num::Int(a - b),
            _ => Num::Float(self.f() - other.f()),
        }
    }

    /// Python's `a < b` between numbers.
    fn lt(self, other: Num) -> bool {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a < b,
            _ => self.f() < other.f(),
        }
    }

    /// Python's `max(self, other)`: `self` unless `other` is greater.
    fn max(self, other: Num) -> Num {
        if self.lt(other) { other } else { self }
    }

    /// Python's `min(self, other)`: `self` unless `other` is less.
    fn min(self, other: Num) -> Num {
        if other.lt(self) { other } else { self }
    }

    fn is_zero(self) -> bool {
        self.f() == 0.0
    }

    /// Python's truth of the number.
    fn truthy(self) -> bool {
        !self.is_zero()
    }
}

const ZERO: Num = Num::Int(0);

/// A usage count read as `x or 0`: a false value (absent, `null`, `0`, `""`, `[]`, `{}`) is 0;
/// `Err` for a true value Python cannot count with.
fn or_zero(v: Option<&Value>) -> Result<Num, ()> {
    match v {
        None => Ok(ZERO),
        Some(v) => match Num::of(v) {
            Some(n) if n.truthy() => Ok(n),
            Some(_) => Ok(ZERO),
            None if !super::translate::truthy(v) => Ok(ZERO),
            None => Err(()),
        },
    }
}

/// `cost_per_token` with the model's prices: `(input cost, output cost)`, or `None` where
/// Python's arithmetic would raise (MLflow then prices nothing).
fn price(prices: &Prices, usage: &serde_json::Map<String, Value>) -> Option<(f64, f64)> {
    let prompt = Num::of(usage.get("input_tokens").unwrap_or(&Value::from(0)))?;
    let completion = Num::of(usage.get("output_tokens").unwrap_or(&Value::from(0)))?;
    let read = or_zero(usage.get("cache_read_input_tokens")).ok()?;
    let creation = or_zero(usage.get("cache_creation_input_tokens")).ok()?;
    let above_1h = or_zero(usage.get("cache_creation_input_tokens_above_1hr")).ok()?;

    let input_rate = prices.input.unwrap_or(0.0);
    let output_rate = prices.output.unwrap_or(0.0);
    let regular = prompt.sub(read).sub(creation).max(ZERO);
    let creation_1h = above_1h.min(creation);
    let creation_5m = creation.sub(creation_1h);
    let creation_rate = prices.cache_write.unwrap_or(input_rate);

    let mut input = regular.f() * input_rate;
    if ZERO.lt(read) {
        input += read.f() * prices.cache_read.unwrap_or(input_rate);
    }
    if ZERO.lt(creation_5m) {
        input += creation_5m.f() * creation_rate;
    }
    if ZERO.lt(creation_1h) {
        input += creation_1h.f() * prices.cache_write_1h.unwrap_or(creation_rate);
    }
    Some((input, completion.f() * output_rate))
}

/// MLflow's `mlflow.llm.cost` of a span from its model, token usage and provider attributes
/// (decoded values): `{"input_cost": .., "output_cost": .., "total_cost": ..}` in USD, or `None`
/// where MLflow gives none (no model or usage, a gateway route, no tokens, a model its catalog
/// does not list, usage Python cannot count).
pub fn span_cost(model: &Value, usage: &Value, provider: Option<&Value>) -> Option<[f64; 3]> {
    let model = model.as_str().filter(|m| !m.is_empty())?;
    let usage = usage.as_object().filter(|u| !u.is_empty())?;
    if SKIPPED_PREFIXES.iter().any(|p| model.starts_with(p)) {
        return None;
    }
    // A provider that is no string fails MLflow's `.lower()`, which then scans every list.
    let provider_given = provider.is_some_and(super::translate::truthy);
    let hint = match provider {
        Some(Value::String(p)) if provider_given => Some(p.to_lowercase()),
        _ if !provider_given
            && (model.starts_with("databricks-") || model.starts_with("databricks/")) =>
        {
            Some("databricks".to_string())
        }
        _ => None,
    };
    let zero = |k: &str| {
        usage
            .get(k)
            .map_or(Some(ZERO), Num::of)
            .is_some_and(Num::is_zero)
    };
    if zero("input_tokens") && zero("output_tokens") {
        return None;
    }
    // A model the named provider does not list is looked for in every list. (Where Python's
    // arithmetic fails, it fails alike with any prices, so it is not tried twice.)
    let prices = hint
        .as_deref()
        .and_then(|h| lookup(model, Some(h)))
        .or_else(|| lookup(model, None))?;
    let (input, output) = price(&prices, usage)?;
    Some([input, output, input + output])
}

/// The cost as the span attribute's value (an object of three floats).
pub fn cost_value([input, output, total]: [f64; 3]) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("input_cost", input),
        ("output_cost", output),
        ("total_cost", total),
    ] {
        m.insert(
            k.into(),
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        );
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wasmflow_core::pyjson::{Style, dumps};

    include!("prices_cases.rs");

    fn answer(model: &Value, usage: &Value, provider: Option<&Value>) -> String {
        span_cost(model, usage, provider)
            .map_or("None".into(), |c| dumps(&cost_value(c), Style::Unicode))
    }

    /// What MLflow's own function answers (scripts/gen_model_prices.py --cases): catalog
    /// models with and without a provider, prefixed names, cache tokens, and the rules' corners.
    #[test]
    fn costs_are_mlflows() {
        let mut wrong = Vec::new();
        for (model, usage, provider, expected) in CASES {
            let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap();
            let provider = parse(provider);
            let provider = (!provider.is_null()).then_some(provider);
            let got = answer(&parse(model), &parse(usage), provider.as_ref());
            if got != *expected {
                wrong.push(format!("{model} {usage} {provider:?}: {got} != {expected}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        assert!(CASES.len() > 500);
    }

    #[test]
    fn the_catalog_reads_whole() {
        let c = catalog();
        assert_eq!(c.providers.len(), 97);
        assert!(c.providers.windows(2).all(|w| w[0] < w[1]), "scan order");
        assert_eq!(c.models.values().map(Vec::len).sum::<usize>(), 4374);
        // Every price field holds a number (the parser would skip one that does not).
        for line in DATA.lines().skip_while(|l| !l.is_empty()) {
            for field in line.split('\t').skip(1) {
                assert!(field.is_empty() || field.parse::<f64>().is_ok(), "{line}");
            }
        }
        let gpt = lookup("gpt-4o", Some("openai")).unwrap();
        assert_eq!(gpt.input, Some(2.5 / 1_000_000.0));
        assert_eq!(lookup("openai/gpt-4o", None), lookup("gpt-4o", None));
    }

    #[test]
    fn rules() {
        let usage = json!({"input_tokens": 10, "output_tokens": 2});
        let cost =
            |m: &str, p: Option<&str>| span_cost(&json!(m), &usage, p.map(|p| json!(p)).as_ref());
        assert!(cost("gateway:/chat", None).is_none());
        assert!(cost("endpoints:/chat", None).is_none());
        assert!(cost("no-such-model", Some("openai")).is_none());
        assert!(cost("gpt-4o", None).is_some());
        // The named provider first, lowercased; a provider that lacks the model: every list.
        assert_eq!(
            cost("gpt-4o", Some("OpenAI")),
            cost("gpt-4o", Some("openai"))
        );
        assert_eq!(cost("gpt-4o", Some("nobody")), cost("gpt-4o", None));
        assert!(span_cost(&json!("gpt-4o"), &json!({"input_tokens": 0}), None).is_none());
        assert!(span_cost(&json!("gpt-4o"), &json!({}), None).is_none());
    }
}
