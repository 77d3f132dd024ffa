//! MLflow 3.17's translation of other OpenTelemetry conventions at OTLP ingest
//! (`mlflow.tracing.otel.translation.translate_span_when_storing`): a span an OpenTelemetry
//! GenAI, OpenInference, Traceloop/OpenLLMetry, Vercel AI, Langfuse, Laminar, VoltAgent,
//! LiveKit, Google ADK, Spring AI, Claude Code or Gemini CLI instrumentation sent is stored with
//! the MLflow attributes those conventions mean: its span type (`mlflow.spanType`, where it has
//! none or `UNKNOWN`), inputs and outputs, token usage (`mlflow.chat.tokenUsage`, which the
//! trace's `mlflow.trace.tokenUsage` sums), message format, tool definitions, model and provider.
//! MLflow's SQL store adds them to the span's stored text, so `get_trace`, `traces.json` and
//! `span.attributes.<key>` / `span.content` filters see them; its `spans.type` column keeps the
//! type the span was sent with (a `span.type` filter does not find a translated type), and so
//! does wasmflow's.
//!
//! The conventions are a table ([`CONVENTIONS`]) tried in MLflow's order, the first answer
//! winning for each attribute, as MLflow's translators are; the few irregular ones (Claude Code,
//! Gemini CLI, VoltAgent, LiveKit, Vercel's chat spans) carry a function. What MLflow adds is
//! appended to the OTLP span as attributes, so every form wasmflow answers (the stored text, the
//! `Trace` message, `traces.json`) is derived from one stored span, as for any other attribute.
//! Spans stored before this translation are typed when they are read ([`type_when_loaded`]), as
//! MLflow types them when it loads them. Last, as in MLflow, a span with token usage and a model
//! (sent or translated) but no cost is priced from MLflow's bundled price list
//! ([`super::prices`]: `mlflow.llm.cost`, which the trace's `mlflow.trace.cost` sums); that is
//! also what prices the spans the MLflow client sends, which carry no other convention.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use serde_json::{Map, Value, json};
use wasmflow_core::pyjson::{Style, dumps};

use super::prices;
use super::wire::{any_value, mlflow_trace_id, plain, sanitized};

const SPAN_TYPE: &str = "mlflow.spanType";
const INPUTS: &str = "mlflow.spanInputs";
const OUTPUTS: &str = "mlflow.spanOutputs";
const CHAT_USAGE: &str = "mlflow.chat.tokenUsage";
const MESSAGE_FORMAT: &str = "mlflow.message.format";
const CHAT_TOOLS: &str = "mlflow.chat.tools";
const MODEL: &str = "mlflow.llm.model";
const MODEL_PROVIDER: &str = "mlflow.llm.provider";
const LLM_COST: &str = "mlflow.llm.cost";
const REQUEST_ID: &str = "mlflow.traceRequestId";

/// Attribute keys (prefixes) that some convention reads: a span with none of them (and no
/// `gen_ai.*` event, no `model` in its MLflow inputs) is left as it is without further work,
/// which is every span the MLflow client sends.
const WATCHED_PREFIXES: &[&str] = &[
    "gen_ai.",
    "llm.",
    "openinference.",
    "traceloop.",
    "input",
    "output",
    "embedding.model_name",
    "langfuse.observation.",
    "ai.",
    "lmnr.span.",
    "gcp.vertex.agent.",
    "span.type",
    "entity.type",
    "usage.",
    "agent.messages",
    "lk.",
    "voltagent.",
];

/// The first bytes of [`WATCHED_PREFIXES`], so that most other keys cost one lookup.
const WATCHED_FIRST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < WATCHED_PREFIXES.len() {
        table[WATCHED_PREFIXES[i].as_bytes()[0] as usize] = true;
        i += 1;
    }
    table
};

/// The attributes of a span as MLflow's translation reads them: each value decoded from OTLP,
/// a string that holds a JSON string, object or array taken as that value (MLflow's
/// `sanitize_attributes`), a key sent twice holding its last value.
struct Attrs<'a> {
    values: Map<String, Value>,
    /// The OTLP value of each key, for attributes MLflow copies as they are.
    raw: std::collections::HashMap<&'a str, &'a AnyValue>,
}

impl<'a> Attrs<'a> {
    fn new(kvs: &'a [KeyValue]) -> Attrs<'a> {
        let mut values = Map::new();
        let mut raw = std::collections::HashMap::new();
        for kv in kvs {
            let v = kv.value.as_ref().map(sanitized).unwrap_or(Value::Null);
            values.insert(kv.key.clone(), v);
            if let Some(av) = &kv.value {
                raw.insert(kv.key.as_str(), av);
            } else {
                raw.remove(kv.key.as_str());
            }
        }
        Attrs { values, raw }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// The value of `key` if Python would call it true (`_get_and_check_attribute_value`).
    fn truthy(&self, key: &str) -> Option<&Value> {
        self.get(key).filter(|v| truthy(v))
    }

    /// `key`'s value as the OTLP value it was sent as.
    fn source(&self, key: &str) -> AnyValue {
        self.raw
            .get(key)
            .map(|v| (*v).clone())
            .unwrap_or_else(|| any_value(self.get(key).unwrap_or(&Value::Null)))
    }

    /// The first of `keys` with a true value, as it was sent.
    fn first(&self, keys: &[Key]) -> Option<AnyValue> {
        keys.iter().find_map(|k| match k {
            Key::Exact(key) => self.truthy(key).map(|_| self.source(key)),
            Key::Indexed(parts) => self
                .values
                .iter()
                .find(|(name, v)| indexed_match(name, parts) && truthy(v))
                .map(|(name, _)| self.source(name)),
        })
    }

    /// `key`'s value as a string (a span kind, an agent name).
    fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

/// Python's truth of a JSON value.
pub(super) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// An attribute key a convention reads: a name, or a pattern of names with numbers
/// (`gen_ai.prompt.<n>.content`: the parts around each number, matched from the start of the
/// key as Python's `re.match` does).
enum Key {
    Exact(&'static str),
    Indexed(&'static [&'static str]),
}

fn indexed_match(name: &str, parts: &[&str]) -> bool {
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return false;
            }
            rest = &rest[digits..];
        }
        match rest.strip_prefix(part) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    true
}

/// An integer token count as MLflow's `_parse_int_attribute` reads one: a JSON integer, or a
/// string of one.
fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let t = s.trim();
            t.strip_prefix('+').unwrap_or(t).parse().ok()
        }
        _ => None,
    }
}

/// Where a convention finds token counts: input, output, total, cache read, cache write (and
/// an older name of cache write read when the current one is absent).
struct Tokens {
    input: &'static [&'static str],
    output: &'static [&'static str],
    total: &'static [&'static str],
    cache_read: &'static [&'static str],
    cache_write: &'static [&'static str],
}

const NO_TOKENS: Tokens = Tokens {
    input: &[],
    output: &[],
    total: &[],
    cache_read: &[],
    cache_write: &[],
};

const GENAI_TOKENS: Tokens = Tokens {
    input: &["gen_ai.usage.input_tokens"],
    output: &["gen_ai.usage.output_tokens"],
    total: &[],
    cache_read: &["gen_ai.usage.cache_read.input_tokens"],
    cache_write: &[
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
    ],
};

/// A token count read from a convention's keys: the first key present (a count that does not
/// parse is none, as in MLflow, without looking further).
fn count(attrs: &Attrs, keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| attrs.get(k)).and_then(int_of)
}

/// The token counts of one convention: (input, output, total, cache read, cache write).
type Counts = [Option<i64>; 5];

fn counts_of(tokens: &Tokens, attrs: &Attrs) -> Counts {
    [
        count(attrs, tokens.input),
        count(attrs, tokens.output),
        count(attrs, tokens.total),
        count(attrs, tokens.cache_read),
        count(attrs, tokens.cache_write),
    ]
}

const GENAI_MODELS: &[Key] = &[
    Key::Exact("gen_ai.response.model"),
    Key::Exact("gen_ai.request.model"),
];
const GENAI_PROVIDER: &[Key] = &[Key::Exact("gen_ai.provider.name")];
const GENAI_TOOLS: &[Key] = &[Key::Exact("gen_ai.tool.definitions")];
const VERCEL_INPUTS: &[Key] = &[
    Key::Exact("ai.prompt"),
    Key::Exact("ai.toolCall.args"),
    Key::Exact("ai.value"),
    Key::Exact("ai.values"),
];
const VERCEL_OUTPUTS: &[Key] = &[
    Key::Exact("ai.response.text"),
    Key::Exact("ai.toolCall.result"),
    Key::Exact("ai.response.object"),
    Key::Exact("ai.embedding"),
    Key::Exact("ai.embeddings"),
];

const GENAI_KINDS: &[(&str, &str)] = &[
    ("chat", "CHAT_MODEL"),
    ("create_agent", "AGENT"),
    ("embeddings", "EMBEDDING"),
    ("execute_tool", "TOOL"),
    ("generate_content", "LLM"),
    ("invoke_agent", "AGENT"),
    ("text_completion", "LLM"),
    ("response", "LLM"),
];

/// A test of a span's attributes.
type Test = fn(&Attrs) -> bool;

/// One convention: where it finds each thing MLflow derives. A function, where there is one,
/// replaces the table's entries for that thing.
struct Convention {
    /// The attribute naming the span's kind, and MLflow's type for each kind.
    kind_key: &'static str,
    kinds: &'static [(&'static str, &'static str)],
    kind_fn: Option<fn(&Attrs) -> Option<&'static str>>,
    tokens: Tokens,
    counts_fn: Option<fn(&Attrs) -> Counts>,
    inputs: &'static [Key],
    outputs: &'static [Key],
    /// Replaces `inputs` / `outputs`: `Some(answer)` is final for this convention.
    inputs_fn: Option<fn(&Attrs) -> Option<AnyValue>>,
    outputs_fn: Option<fn(&Attrs) -> Option<AnyValue>>,
    models: &'static [Key],
    provider: &'static [Key],
    tools: &'static [Key],
    /// The message format a span gets when this convention is asked for its inputs (no
    /// convention before it had them) and the test holds (Vercel's chat calls).
    inputs_mark: Option<(Test, &'static str)>,
    /// `mlflow.message.format`: the value, when one of these keys is present.
    format: Option<(&'static str, &'static [&'static str])>,
    format_fn: Option<fn(&Attrs) -> Option<&'static str>>,
}

const BASE: Convention = Convention {
    kind_key: "",
    kinds: &[],
    kind_fn: None,
    tokens: NO_TOKENS,
    counts_fn: None,
    inputs: &[],
    outputs: &[],
    inputs_fn: None,
    outputs_fn: None,
    models: &[],
    provider: &[],
    tools: &[],
    inputs_mark: None,
    format: None,
    format_fn: None,
};

/// The GenAI semantic conventions' input and output keys.
const GENAI_INPUTS: &[Key] = &[
    Key::Exact("gen_ai.input.messages"),
    Key::Exact("gen_ai.tool.call.arguments"),
];
const GENAI_OUTPUTS: &[Key] = &[
    Key::Exact("gen_ai.output.messages"),
    Key::Exact("gen_ai.tool.call.result"),
];

/// MLflow's translators, in its order (`_TRANSLATORS`).
const CONVENTIONS: &[Convention] = &[
    // OpenInference (Arize Phoenix and its instrumentations).
    Convention {
        kind_key: "openinference.span.kind",
        kinds: &[
            ("TOOL", "TOOL"),
            ("CHAIN", "CHAIN"),
            ("LLM", "LLM"),
            ("RETRIEVER", "RETRIEVER"),
            ("EMBEDDING", "EMBEDDING"),
            ("AGENT", "AGENT"),
            ("RERANKER", "RERANKER"),
            ("UNKNOWN", "UNKNOWN"),
            ("GUARDRAIL", "GUARDRAIL"),
            ("EVALUATOR", "EVALUATOR"),
        ],
        tokens: Tokens {
            input: &["llm.token_count.prompt"],
            output: &["llm.token_count.completion"],
            total: &["llm.token_count.total"],
            cache_read: &["llm.token_count.prompt_details.cache_read"],
            cache_write: &["llm.token_count.prompt_details.cache_write"],
        },
        inputs: &[Key::Exact("input.value")],
        outputs: &[Key::Exact("output.value")],
        models: &[
            Key::Exact("llm.response.model_name"),
            Key::Exact("llm.model_name"),
            Key::Exact("llm.request.model_name"),
            Key::Exact("embedding.model_name"),
        ],
        provider: &[Key::Exact("llm.provider")],
        ..BASE
    },
    // Gemini CLI: GenAI's keys, its own operation names, inputs and outputs wrapped in the
    // Gemini SDK's shapes; only for spans of the agent `gemini-cli` (its token counts, model
    // and tools are GenAI's for every span, as in MLflow).
    Convention {
        kind_fn: Some(gemini_kind),
        tokens: GENAI_TOKENS,
        inputs_fn: Some(gemini_inputs),
        outputs_fn: Some(gemini_outputs),
        models: GENAI_MODELS,
        provider: GENAI_PROVIDER,
        tools: GENAI_TOOLS,
        format_fn: Some(gemini_format),
        ..BASE
    },
    // Claude Code (and the Claude Agent SDK).
    Convention {
        kind_fn: Some(claude_kind),
        counts_fn: Some(claude_counts),
        inputs_fn: Some(claude_inputs),
        outputs_fn: Some(claude_outputs),
        ..BASE
    },
    // OpenTelemetry's GenAI semantic conventions.
    Convention {
        kind_key: "gen_ai.operation.name",
        kinds: GENAI_KINDS,
        tokens: GENAI_TOKENS,
        inputs: GENAI_INPUTS,
        outputs: GENAI_OUTPUTS,
        models: GENAI_MODELS,
        provider: GENAI_PROVIDER,
        tools: GENAI_TOOLS,
        ..BASE
    },
    // Spring AI (GenAI's keys; its messages are events, below). Everything here GenAI's entry
    // has already answered; kept for the table to be MLflow's.
    Convention {
        kind_key: "gen_ai.operation.name",
        kinds: &[("chat", "CHAT_MODEL"), ("embeddings", "EMBEDDING")],
        tokens: Tokens {
            input: &["gen_ai.usage.input_tokens"],
            output: &["gen_ai.usage.output_tokens"],
            ..NO_TOKENS
        },
        ..BASE
    },
    // Traceloop / OpenLLMetry.
    Convention {
        kind_key: "traceloop.span.kind",
        kinds: &[
            ("workflow", "WORKFLOW"),
            ("task", "TASK"),
            ("agent", "AGENT"),
            ("tool", "TOOL"),
            ("unknown", "UNKNOWN"),
        ],
        tokens: Tokens {
            input: &["gen_ai.usage.prompt_tokens"],
            output: &["gen_ai.usage.completion_tokens"],
            total: &["llm.usage.total_tokens"],
            ..NO_TOKENS
        },
        inputs: &[
            Key::Exact("traceloop.entity.input"),
            Key::Indexed(&["gen_ai.prompt.", ".content"]),
            Key::Indexed(&["gen_ai.completion.", ".tool_calls.", ".arguments"]),
        ],
        outputs: &[
            Key::Exact("traceloop.entity.output"),
            Key::Indexed(&["gen_ai.completion.", ".content"]),
        ],
        provider: &[Key::Exact("gen_ai.system")],
        ..BASE
    },
    // Google ADK.
    Convention {
        inputs: &[
            Key::Exact("gcp.vertex.agent.llm_request"),
            Key::Exact("gcp.vertex.agent.tool_call_args"),
        ],
        outputs: &[
            Key::Exact("gcp.vertex.agent.llm_response"),
            Key::Exact("gcp.vertex.agent.tool_response"),
        ],
        ..BASE
    },
    // Vercel AI SDK.
    Convention {
        kind_key: "ai.operationId",
        kinds: &[
            ("ai.generateText", "LLM"),
            ("ai.generateText.doGenerate", "LLM"),
            ("ai.toolCall", "TOOL"),
            ("ai.streamText", "LLM"),
            ("ai.streamText.doStream", "LLM"),
            ("ai.generateObject", "LLM"),
            ("ai.generateObject.doGenerate", "LLM"),
            ("ai.streamObject", "LLM"),
            ("ai.streamObject.doStream", "LLM"),
            ("ai.embed", "EMBEDDING"),
            ("ai.embed.doEmbed", "EMBEDDING"),
            ("ai.embedMany", "EMBEDDING"),
        ],
        inputs_fn: Some(vercel_inputs),
        outputs_fn: Some(vercel_outputs),
        inputs_mark: Some((vercel_chat, "vercel_ai")),
        ..BASE
    },
    // VoltAgent.
    Convention {
        kind_fn: Some(voltagent_kind),
        tokens: Tokens {
            input: &["usage.prompt_tokens", "llm.usage.prompt_tokens"],
            output: &["usage.completion_tokens", "llm.usage.completion_tokens"],
            total: &["usage.total_tokens", "llm.usage.total_tokens"],
            ..NO_TOKENS
        },
        inputs: &[
            Key::Exact("agent.messages"),
            Key::Exact("llm.messages"),
            Key::Exact("input"),
        ],
        outputs: &[Key::Exact("output")],
        format: Some((
            "voltagent",
            &["voltagent.operation_id", "voltagent.conversation_id"],
        )),
        ..BASE
    },
    // LiveKit Agents (GenAI's keys besides its own).
    Convention {
        kind_fn: Some(livekit_kind),
        tokens: GENAI_TOKENS,
        inputs: &[
            Key::Exact("lk.user_input"),
            Key::Exact("lk.user_transcript"),
            Key::Exact("lk.chat_ctx"),
            Key::Exact("lk.input_text"),
        ],
        outputs: &[
            Key::Exact("lk.response.text"),
            Key::Exact("lk.response.function_calls"),
        ],
        models: GENAI_MODELS,
        provider: GENAI_PROVIDER,
        tools: GENAI_TOOLS,
        format_fn: Some(livekit_format),
        ..BASE
    },
    // Laminar.
    Convention {
        kind_key: "lmnr.span.type",
        kinds: &[
            ("LLM", "LLM"),
            ("TOOL", "TOOL"),
            ("DEFAULT", "CHAIN"),
            ("PIPELINE", "CHAIN"),
            ("EXECUTOR", "AGENT"),
            ("EVALUATOR", "EVALUATOR"),
            ("HUMAN_EVALUATOR", "EVALUATOR"),
            ("EVALUATION", "EVALUATOR"),
            ("CACHED", "LLM"),
        ],
        tokens: Tokens {
            input: &["gen_ai.usage.input_tokens"],
            output: &["gen_ai.usage.output_tokens"],
            ..NO_TOKENS
        },
        inputs: &[Key::Exact("lmnr.span.input")],
        outputs: &[Key::Exact("lmnr.span.output")],
        models: GENAI_MODELS,
        provider: &[Key::Exact("gen_ai.system")],
        format: Some(("openai", &["lmnr.span.type"])),
        ..BASE
    },
    // Langfuse.
    Convention {
        kind_key: "langfuse.observation.type",
        kinds: &[
            ("generation", "LLM"),
            ("embedding", "EMBEDDING"),
            ("tool", "TOOL"),
            ("retriever", "RETRIEVER"),
            ("agent", "AGENT"),
            ("chain", "CHAIN"),
            ("evaluator", "EVALUATOR"),
            ("guardrail", "GUARDRAIL"),
            ("span", "UNKNOWN"),
        ],
        inputs: &[Key::Exact("langfuse.observation.input")],
        outputs: &[Key::Exact("langfuse.observation.output")],
        ..BASE
    },
];

impl Convention {
    fn kind(&self, attrs: &Attrs) -> Option<&'static str> {
        if let Some(f) = self.kind_fn {
            return f(attrs);
        }
        if self.kind_key.is_empty() {
            return None;
        }
        let kind = attrs
            .get(self.kind_key)
            .filter(|v| !v.is_null())?
            .as_str()?;
        self.kinds.iter().find(|(k, _)| *k == kind).map(|(_, t)| *t)
    }

    fn counts(&self, attrs: &Attrs) -> Counts {
        match self.counts_fn {
            Some(f) => f(attrs),
            None => counts_of(&self.tokens, attrs),
        }
    }

    fn inputs(&self, attrs: &Attrs) -> Option<AnyValue> {
        match self.inputs_fn {
            Some(f) => f(attrs),
            None => attrs.first(self.inputs),
        }
    }

    fn outputs(&self, attrs: &Attrs) -> Option<AnyValue> {
        match self.outputs_fn {
            Some(f) => f(attrs),
            None => attrs.first(self.outputs),
        }
    }

    fn format(&self, attrs: &Attrs) -> Option<&'static str> {
        if let Some(f) = self.format_fn {
            return f(attrs);
        }
        let (format, keys) = self.format?;
        keys.iter().any(|k| attrs.has(k)).then_some(format)
    }
}

// ---- the irregular conventions ----

fn is_gemini_cli(attrs: &Attrs) -> bool {
    attrs.str("gen_ai.agent.name") == Some("gemini-cli")
}

fn gemini_kind(attrs: &Attrs) -> Option<&'static str> {
    if !is_gemini_cli(attrs) {
        return None;
    }
    match attrs.str("gen_ai.operation.name")? {
        "llm_call" => Some("LLM"),
        "tool_call" => Some("TOOL"),
        "agent_call" => Some("AGENT"),
        _ => None,
    }
}

fn gemini_format(attrs: &Attrs) -> Option<&'static str> {
    is_gemini_cli(attrs).then_some("gemini")
}

/// A value MLflow computes as `json.dumps(value)`, sent as the string it is.
fn dumped(v: &Value) -> AnyValue {
    any_value(&Value::String(dumps(v, Style::Default)))
}

/// The first of GenAI's `keys` with a true value on a Gemini CLI span.
fn gemini_key(attrs: &Attrs, keys: &[Key]) -> Option<&'static str> {
    if !is_gemini_cli(attrs) {
        return None;
    }
    keys.iter().find_map(|k| match k {
        Key::Exact(k) => attrs.truthy(k).map(|_| *k),
        Key::Indexed(_) => None,
    })
}

/// Gemini CLI's input messages as the Gemini SDK's `{"contents": [...]}`.
fn gemini_inputs(attrs: &Attrs) -> Option<AnyValue> {
    let key = gemini_key(attrs, GENAI_INPUTS)?;
    // MLflow compares the operation's JSON text with `system_prompt`, which it never equals,
    // so the role of a system prompt is left as it was sent.
    Some(match attrs.get(key)? {
        Value::Object(o) if o.contains_key("contents") => attrs.source(key),
        v @ (Value::Array(_) | Value::String(_)) => dumped(&json!({"contents": v})),
        _ => attrs.source(key),
    })
}

/// Gemini CLI's output messages as one Gemini SDK candidate with all their parts.
fn gemini_outputs(attrs: &Attrs) -> Option<AnyValue> {
    let key = gemini_key(attrs, GENAI_OUTPUTS)?;
    if let Some(Value::Array(items)) = attrs.get(key) {
        let parts: Vec<Value> = items
            .iter()
            .filter_map(|i| i.get("parts").and_then(Value::as_array))
            .flatten()
            .cloned()
            .collect();
        if !parts.is_empty() {
            return Some(dumped(
                &json!({"candidates": [{"content": {"role": "model", "parts": parts}}]}),
            ));
        }
    }
    Some(attrs.source(key))
}

/// Claude Code's span kind (`span.type`, with or without its `claude_code.` prefix).
fn claude_span(attrs: &Attrs) -> Option<&'static str> {
    let kind = attrs.str("span.type")?;
    let bare = kind.strip_prefix("claude_code.").unwrap_or(kind);
    ["interaction", "llm_request", "tool"]
        .into_iter()
        .find(|k| *k == bare)
}

fn claude_kind(attrs: &Attrs) -> Option<&'static str> {
    Some(match claude_span(attrs)? {
        "interaction" => "AGENT",
        "llm_request" => "LLM",
        _ => "TOOL",
    })
}

/// Claude's counts are bare keys on its LLM requests; its input count excludes the cached
/// tokens, which MLflow adds in.
fn claude_counts(attrs: &Attrs) -> Counts {
    if claude_span(attrs) != Some("llm_request") {
        return [None; 5];
    }
    let int = |k: &str| -> Option<i64> {
        match attrs.get(k)? {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
            v => int_of(v),
        }
    };
    let (read, write) = (int("cache_read_tokens"), int("cache_creation_tokens"));
    let input = int("input_tokens").map(|i| i + read.unwrap_or(0) + write.unwrap_or(0));
    [input, int("output_tokens"), None, read, write]
}

/// Claude Code's content attributes, unless redacted.
fn claude_content(attrs: &Attrs, key: &str) -> Option<AnyValue> {
    let v = attrs.truthy(key)?;
    (v.as_str() != Some("<REDACTED>")).then(|| attrs.source(key))
}

fn claude_inputs(attrs: &Attrs) -> Option<AnyValue> {
    match claude_span(attrs)? {
        "interaction" => {
            claude_content(attrs, "user_prompt").or_else(|| claude_content(attrs, "new_context"))
        }
        "llm_request" => claude_content(attrs, "new_context"),
        _ => claude_content(attrs, "tool_input").or_else(|| {
            let details: Map<String, Value> =
                ["full_command", "file_path", "skill_name", "subagent_type"]
                    .into_iter()
                    .filter(|k| claude_content(attrs, k).is_some())
                    .map(|k| (k.to_string(), attrs.get(k).cloned().unwrap_or(Value::Null)))
                    .collect();
            (!details.is_empty()).then(|| dumped(&Value::Object(details)))
        }),
    }
}

fn claude_outputs(attrs: &Attrs) -> Option<AnyValue> {
    match claude_span(attrs)? {
        "llm_request" => claude_content(attrs, "response.model_output"),
        "tool" => claude_content(attrs, "new_context"),
        _ => None,
    }
}

/// VoltAgent's type: a child span's `span.type`, else the root agent's `entity.type`.
fn voltagent_kind(attrs: &Attrs) -> Option<&'static str> {
    ["span.type", "entity.type"].into_iter().find_map(|k| {
        match attrs.get(k).filter(|v| truthy(v))?.as_str()? {
            "agent" => Some("AGENT"),
            "llm" => Some("LLM"),
            "tool" => Some("TOOL"),
            "memory" => Some("MEMORY"),
            _ => None,
        }
    })
}

/// LiveKit's type: an LLM call where a model is requested, GenAI's operation names, else what
/// its own attributes mark.
fn livekit_kind(attrs: &Attrs) -> Option<&'static str> {
    if attrs.has("gen_ai.request.model") {
        return Some("LLM");
    }
    if let Some(op) = attrs.get("gen_ai.operation.name").filter(|v| truthy(v)) {
        let op = match op {
            Value::String(s) => s.to_lowercase(),
            other => dumps(other, Style::Default).to_lowercase(),
        };
        if let Some((_, t)) = GENAI_KINDS.iter().find(|(k, _)| *k == op) {
            return Some(t);
        }
    }
    attrs.values.keys().find_map(|key| match key.as_str() {
        "lk.retry_count" => Some("LLM"),
        k if k.starts_with("lk.function_tool") => Some("TOOL"),
        "lk.agent_name" | "lk.instructions" | "lk.generation_id" => Some("AGENT"),
        k if k.starts_with("lk.tts") || k == "lk.input_text" => Some("UNKNOWN"),
        "lk.user_transcript" | "lk.transcript_confidence" | "lk.transcription_delay" => {
            Some("UNKNOWN")
        }
        _ => None,
    })
}

fn livekit_format(attrs: &Attrs) -> Option<&'static str> {
    attrs
        .values
        .keys()
        .any(|k| k.starts_with("lk."))
        .then_some("livekit")
}

/// Vercel's chat calls (`doGenerate` / `doStream`) spread their prompt and response over
/// `ai.prompt.*` / `ai.response.*` attributes, which MLflow gathers into one object.
fn vercel_chat(attrs: &Attrs) -> bool {
    matches!(
        attrs.str("ai.operationId"),
        Some("ai.generateText.doGenerate" | "ai.streamText.doStream")
    )
}

/// A value decoded up to twice more (MLflow's `_safe_load_json`).
fn loaded(v: &Value) -> Value {
    let mut v = v.clone();
    for _ in 0..2 {
        match &v {
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(inner) => v = inner,
                Err(_) => break,
            },
            _ => break,
        }
    }
    v
}

fn vercel_gather(attrs: &Attrs, prefix: &str) -> Option<AnyValue> {
    let mut out = Map::new();
    for (k, v) in &attrs.values {
        if let Some(suffix) = k.strip_prefix(prefix) {
            let mut v = loaded(v);
            if suffix == "tools"
                && let Value::Array(tools) = &mut v
            {
                for t in tools.iter_mut() {
                    *t = loaded(t);
                }
            }
            out.insert(suffix.to_string(), v);
        }
    }
    (!out.is_empty()).then(|| dumped(&Value::Object(out)))
}

fn vercel_inputs(attrs: &Attrs) -> Option<AnyValue> {
    if vercel_chat(attrs) {
        return vercel_gather(attrs, "ai.prompt.");
    }
    attrs.first(VERCEL_INPUTS)
}

fn vercel_outputs(attrs: &Attrs) -> Option<AnyValue> {
    if vercel_chat(attrs) {
        return vercel_gather(attrs, "ai.response.");
    }
    attrs.first(VERCEL_OUTPUTS)
}

// ---- events (Spring AI, GenAI's message events, Claude Code's tool output) ----

fn event_attr<'a>(e: &'a Event, key: &str) -> Option<&'a AnyValue> {
    e.attributes
        .iter()
        .rev()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// An event attribute's value, decoded if it is JSON text (`_decode_json_value`).
fn decoded(v: &AnyValue) -> Value {
    match plain(v) {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    }
}

/// Spring AI's prompt or completion event.
fn spring_event(events: &[Event], name: &str, key: &str) -> Option<AnyValue> {
    events
        .iter()
        .filter(|e| e.name == name)
        .find_map(|e| event_attr(e, key).filter(|v| truthy(&plain(v))).cloned())
}

/// GenAI's message events as one list of messages.
fn genai_event_messages(events: &[Event], inputs: bool) -> Option<AnyValue> {
    let mut messages = Vec::new();
    for e in events {
        let role = match (inputs, e.name.as_str()) {
            (true, "gen_ai.system.message") => json!("system"),
            (true, "gen_ai.user.message") => json!("user"),
            (true, "gen_ai.assistant.message") => json!("assistant"),
            (false, "gen_ai.choice") => event_attr(e, "role")
                .map(decoded)
                .unwrap_or(json!("assistant")),
            _ => continue,
        };
        if let Some(content) = event_attr(e, "content").filter(|v| truthy(&plain(v))) {
            messages.push(json!({"role": role, "content": decoded(content)}));
        }
    }
    (!messages.is_empty()).then(|| dumped(&Value::Array(messages)))
}

fn claude_tool_output(attrs: &Attrs, events: &[Event]) -> Option<AnyValue> {
    if claude_span(attrs) != Some("tool") {
        return None;
    }
    events
        .iter()
        .filter(|e| e.name == "tool.output")
        .find_map(|e| {
            ["output", "content", "diff"].into_iter().find_map(|k| {
                let v = decoded(event_attr(e, k)?);
                (truthy(&v) && v.as_str() != Some("<REDACTED>")).then(|| any_value(&v))
            })
        })
}

fn event_inputs(events: &[Event]) -> Option<AnyValue> {
    spring_event(events, "gen_ai.content.prompt", "gen_ai.prompt")
        .or_else(|| genai_event_messages(events, true))
}

fn event_outputs(attrs: &Attrs, events: &[Event]) -> Option<AnyValue> {
    spring_event(events, "gen_ai.content.completion", "gen_ai.completion")
        .or_else(|| genai_event_messages(events, false))
        .or_else(|| claude_tool_output(attrs, events))
}

// ---- the translation ----

/// What a span may need of the translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carries {
    /// Nothing: it is stored as it came (most spans).
    Nothing,
    /// No convention, but token usage (`mlflow.chat.tokenUsage`): at most a price
    /// ([`priced`]), what the MLflow client's LLM spans get.
    Usage,
    /// Maybe a convention: the whole translation.
    Conventions,
}

/// Whether a span may carry a convention: one of the watched attribute keys, a `gen_ai.` or
/// Claude Code event, or MLflow inputs or outputs naming a model; else whether it has token
/// usage to price. Most spans fail at the first byte of each key.
fn may_carry(span: &Span) -> Carries {
    let mut usage = false;
    for kv in &span.attributes {
        let k = kv.key.as_str();
        if k.starts_with("mlflow.") {
            if (k == INPUTS || k == OUTPUTS) && kv.value.as_ref().is_some_and(names_model) {
                return Carries::Conventions;
            }
            usage |= k == CHAT_USAGE;
        } else if WATCHED_FIRST_BYTES[usize::from(k.as_bytes().first().copied().unwrap_or(0))]
            && WATCHED_PREFIXES.iter().any(|p| k.starts_with(p))
        {
            return Carries::Conventions;
        }
    }
    if span
        .events
        .iter()
        .any(|e| e.name.starts_with("gen_ai.") || e.name == "tool.output")
    {
        Carries::Conventions
    } else if usage {
        Carries::Usage
    } else {
        Carries::Nothing
    }
}

/// Whether MLflow inputs or outputs may hold a `model` field.
fn names_model(v: &AnyValue) -> bool {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.contains("\"model\""),
        Some(any_value::Value::KvlistValue(kv)) => kv.values.iter().any(|kv| kv.key == "model"),
        _ => false,
    }
}

/// The type MLflow gives a span without one (or with `UNKNOWN`), and whether the span has the
/// attribute already (to be set in its place).
fn new_type(attrs: &Attrs) -> Option<(&'static str, bool)> {
    let present = match attrs.get(SPAN_TYPE) {
        None => false,
        Some(Value::Null) => true,
        Some(Value::String(t)) if t == "UNKNOWN" => true,
        Some(_) => return None,
    };
    Some((CONVENTIONS.iter().find_map(|c| c.kind(attrs))?, present))
}

/// MLflow's translation when it loads a stored span (`translate_loaded_span`): a span without a
/// type (or `UNKNOWN`) is answered with the type its conventions give. Spans stored now have it
/// already; this types the spans a wasmflow older than 2026-12-05 stored, in `get_trace` and
/// `traces.json` (not in their stored text, which MLflow leaves as well).
pub fn type_when_loaded(span: &mut Span) {
    if may_carry(span) != Carries::Conventions {
        return;
    }
    let Some((kind, present)) = new_type(&Attrs::new(&span.attributes)) else {
        return;
    };
    let value = Some(any_value(&json!(kind)));
    if present {
        for kv in span.attributes.iter_mut().filter(|kv| kv.key == SPAN_TYPE) {
            kv.value = value.clone();
        }
    } else {
        span.attributes.push(KeyValue {
            key: SPAN_TYPE.into(),
            value,
            ..Default::default()
        });
    }
}

/// The span with what MLflow's translation adds, or `None` when it adds nothing (the span is
/// stored as it came).
pub fn translate(span: &Span) -> Option<Span> {
    match may_carry(span) {
        Carries::Nothing => return None,
        Carries::Usage => return priced(span),
        Carries::Conventions => {}
    }
    let attrs = Attrs::new(&span.attributes);
    let mut added: Vec<(&'static str, AnyValue)> = Vec::new();
    let mut replaced_type = None;

    let first = |f: &dyn Fn(&Convention) -> Option<AnyValue>| CONVENTIONS.iter().find_map(f);

    match new_type(&attrs) {
        Some((kind, false)) => added.push((SPAN_TYPE, any_value(&json!(kind)))),
        Some((kind, true)) => replaced_type = Some(kind),
        None => {}
    }
    // Vercel's chat calls are marked while their inputs are read (when no convention before
    // Vercel's had inputs), before the inputs are added, whatever else would mark them.
    let mut mark = None;
    let mut inputs = None;
    if !attrs.has(INPUTS) {
        inputs = CONVENTIONS
            .iter()
            .find_map(|c| {
                if let Some((test, format)) = c.inputs_mark
                    && test(&attrs)
                {
                    mark = Some(format);
                }
                c.inputs(&attrs)
            })
            .or_else(|| event_inputs(&span.events));
        if let Some(format) = mark
            && !attrs.has(MESSAGE_FORMAT)
        {
            added.push((MESSAGE_FORMAT, any_value(&json!(format))));
        }
        if let Some(v) = &inputs {
            added.push((INPUTS, v.clone()));
        }
    }
    let mut outputs = None;
    if !attrs.has(OUTPUTS) {
        outputs = first(&|c| c.outputs(&attrs)).or_else(|| event_outputs(&attrs, &span.events));
        if let Some(v) = &outputs {
            added.push((OUTPUTS, v.clone()));
        }
    }
    if !attrs.has(CHAT_USAGE)
        && let Some(usage) = CONVENTIONS.iter().find_map(|c| usage(c.counts(&attrs)))
    {
        added.push((CHAT_USAGE, any_value(&usage)));
    }
    if !attrs.has(MESSAGE_FORMAT)
        && mark.is_none()
        && let Some(format) = CONVENTIONS.iter().find_map(|c| c.format(&attrs))
    {
        added.push((MESSAGE_FORMAT, any_value(&json!(format))));
    }
    if !attrs.has(CHAT_TOOLS)
        && let Some(tools) = first(&|c| attrs.first(c.tools))
    {
        added.push((CHAT_TOOLS, tools));
    }
    if !attrs.has(MODEL) {
        let model = first(&|c| attrs.first(c.models)).or_else(|| {
            let of = |own: Option<&Value>, sent: &Option<AnyValue>| -> Option<Option<AnyValue>> {
                let v = match sent {
                    Some(v) => sanitized(v),
                    None => own?.clone(),
                };
                let model = v.as_object()?.get("model").filter(|m| truthy(m))?;
                Some(model.as_str().map(|m| any_value(&json!(m))))
            };
            // A `model` that is no string ends the search, as in MLflow.
            of(attrs.get(INPUTS), &inputs)
                .or_else(|| of(attrs.get(OUTPUTS), &outputs))
                .flatten()
        });
        if let Some(m) = model {
            added.push((MODEL, m));
        }
    }
    if !attrs.has(MODEL_PROVIDER)
        && let Some(p) = first(&|c| attrs.first(c.provider))
    {
        added.push((MODEL_PROVIDER, p));
    }

    // Last, the price of a span with token usage and a model (sent or just translated).
    if !attrs.has(LLM_COST) {
        let value = |key: &str| -> Option<Value> {
            match added.iter().rev().find(|(k, _)| *k == key) {
                Some((_, v)) => Some(sanitized(v)),
                None => attrs.get(key).cloned(),
            }
        };
        if let (Some(usage), Some(model)) = (value(CHAT_USAGE), value(MODEL))
            && let Some(cost) = prices::span_cost(&model, &usage, value(MODEL_PROVIDER).as_ref())
        {
            added.push((LLM_COST, any_value(&prices::cost_value(cost))));
        }
    }

    if added.is_empty() && replaced_type.is_none() {
        return None;
    }
    let mut out = span.clone();
    if let Some(kind) = replaced_type {
        for kv in out.attributes.iter_mut().filter(|kv| kv.key == SPAN_TYPE) {
            kv.value = Some(any_value(&json!(kind)));
        }
    }
    append(&mut out, attrs.has(REQUEST_ID), added);
    Some(out)
}

/// `span` with what the translation adds appended, after the trace's id where the span has
/// none: MLflow's stored span has it before what the translation adds.
fn append(span: &mut Span, has_request_id: bool, added: Vec<(&'static str, AnyValue)>) {
    if added.is_empty() {
        return;
    }
    if !has_request_id {
        let id = any_value(&json!(mlflow_trace_id(&span.trace_id)));
        span.attributes.push(KeyValue {
            key: REQUEST_ID.into(),
            value: Some(id),
            ..Default::default()
        });
    }
    span.attributes
        .extend(added.into_iter().map(|(key, value)| KeyValue {
            key: key.into(),
            value: Some(value),
            ..Default::default()
        }));
}

/// The translation of a span that carries token usage but no convention (the MLflow client's
/// LLM spans): only its price, where it has a model and no cost. Only the four attributes
/// that matter are decoded.
fn priced(span: &Span) -> Option<Span> {
    let last = |key: &str| span.attributes.iter().rev().find(|kv| kv.key == key);
    if last(LLM_COST).is_some() {
        return None;
    }
    let decoded = |kv: &KeyValue| kv.value.as_ref().map_or(Value::Null, sanitized);
    let model = decoded(last(MODEL)?);
    let usage = decoded(last(CHAT_USAGE)?);
    let provider = last(MODEL_PROVIDER).map(decoded);
    let cost = prices::span_cost(&model, &usage, provider.as_ref())?;
    let mut out = span.clone();
    let has_request_id = last(REQUEST_ID).is_some();
    append(
        &mut out,
        has_request_id,
        vec![(LLM_COST, any_value(&prices::cost_value(cost)))],
    );
    Some(out)
}

/// MLflow's `mlflow.chat.tokenUsage` from one convention's counts, if it has any: the total
/// is input + output where not given.
fn usage([input, output, total, read, write]: Counts) -> Option<Value> {
    let total = total.or_else(|| input?.checked_add(output?));
    if input.is_none() && output.is_none() && total.is_none() {
        return None;
    }
    let mut m = Map::new();
    for (k, v) in [
        ("input_tokens", input),
        ("output_tokens", output),
        ("total_tokens", total),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if let Some(r) = read {
        m.insert("cache_read_input_tokens".into(), json!(r));
    }
    if let Some(w) = write {
        m.insert("cache_creation_input_tokens".into(), json!(w));
    }
    Some(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(attrs: &[(&str, Value)]) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "s".into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| KeyValue {
                    key: (*k).into(),
                    value: Some(any_value(v)),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// The attributes a translated span ends with, decoded.
    fn added(s: &Span) -> Vec<(String, Value)> {
        let out = translate(s).expect("translated");
        out.attributes[s.attributes.len()..]
            .iter()
            .map(|kv| (kv.key.clone(), sanitized(kv.value.as_ref().unwrap())))
            .collect()
    }

    #[test]
    fn spans_without_a_convention_are_left_alone() {
        // What the MLflow client sends (and the ingest benchmark): no work past the keys.
        let s = span(&[
            ("mlflow.spanType", json!("LLM")),
            ("mlflow.spanInputs", json!("{\"q\": \"hello\"}")),
            ("mlflow.traceTag.group", json!("3")),
            ("tier", json!("m3")),
        ]);
        assert_eq!(may_carry(&s), Carries::Nothing);
        assert!(translate(&s).is_none());
        // A watched key whose convention says nothing adds nothing either.
        assert!(translate(&span(&[("input_tokens", json!(3))])).is_none());
    }

    #[test]
    fn genai_chat_span() {
        let s = span(&[
            ("gen_ai.operation.name", json!("chat")),
            ("gen_ai.usage.input_tokens", json!(12)),
            ("gen_ai.usage.output_tokens", json!("5")),
            ("gen_ai.request.model", json!("m-1")),
            ("gen_ai.provider.name", json!("acme")),
            (
                "gen_ai.input.messages",
                json!("[{\"role\":\"user\",\"content\":\"hi\"}]"),
            ),
        ]);
        assert_eq!(
            added(&s),
            vec![
                (
                    "mlflow.traceRequestId".into(),
                    json!(mlflow_trace_id(&[1; 16]))
                ),
                ("mlflow.spanType".into(), json!("CHAT_MODEL")),
                (
                    "mlflow.spanInputs".into(),
                    json!([{"role": "user", "content": "hi"}])
                ),
                (
                    "mlflow.chat.tokenUsage".into(),
                    json!({"input_tokens": 12, "output_tokens": 5, "total_tokens": 17})
                ),
                ("mlflow.llm.model".into(), json!("m-1")),
                ("mlflow.llm.provider".into(), json!("acme")),
            ]
        );
    }

    #[test]
    fn a_span_with_usage_and_a_model_is_priced() {
        // What the MLflow client sends: JSON-encoded values, no other convention.
        let client = span(&[
            ("mlflow.traceRequestId", json!("\"tr-0101\"")),
            ("mlflow.spanType", json!("\"LLM\"")),
            ("mlflow.llm.model", json!("\"gpt-4o\"")),
            (
                "mlflow.chat.tokenUsage",
                json!("{\"input_tokens\": 1000, \"output_tokens\": 10}"),
            ),
        ]);
        assert_eq!(may_carry(&client), Carries::Usage);
        let cost = json!({"input_cost": 0.0025, "output_cost": 0.0001, "total_cost": 0.0026});
        assert_eq!(
            added(&client),
            vec![("mlflow.llm.cost".into(), cost.clone())]
        );
        // A cost already there (even null), or no model: nothing.
        let mut costed = client.clone();
        costed.attributes.push(KeyValue {
            key: "mlflow.llm.cost".into(),
            ..Default::default()
        });
        assert!(translate(&costed).is_none());
        let mut no_model = client.clone();
        no_model.attributes.remove(2);
        assert!(translate(&no_model).is_none());
        // A translated model and usage are priced too, with the provider hint.
        let genai = span(&[
            ("gen_ai.usage.input_tokens", json!(1000)),
            ("gen_ai.usage.output_tokens", json!(10)),
            ("gen_ai.request.model", json!("gpt-4o")),
            ("gen_ai.provider.name", json!("openai")),
        ]);
        let out = added(&genai);
        assert_eq!(out.last().unwrap(), &("mlflow.llm.cost".to_string(), cost));
        assert_eq!(out[0].0, "mlflow.traceRequestId");
    }

    #[test]
    fn an_unknown_type_is_replaced_in_place_and_a_set_one_kept() {
        let s = span(&[
            ("mlflow.spanType", json!("UNKNOWN")),
            ("openinference.span.kind", json!("RETRIEVER")),
        ]);
        let out = translate(&s).unwrap();
        assert_eq!(out.attributes.len(), 2);
        assert_eq!(
            sanitized(out.attributes[0].value.as_ref().unwrap()),
            json!("RETRIEVER")
        );
        let typed = span(&[
            ("mlflow.spanType", json!("TOOL")),
            ("openinference.span.kind", json!("RETRIEVER")),
        ]);
        assert!(translate(&typed).is_none());
    }

    #[test]
    fn a_stored_span_without_a_type_is_typed_when_loaded() {
        let mut old = span(&[("traceloop.span.kind", json!("workflow"))]);
        type_when_loaded(&mut old);
        assert_eq!(old.attributes[1].key, "mlflow.spanType");
        assert_eq!(
            sanitized(old.attributes[1].value.as_ref().unwrap()),
            json!("WORKFLOW")
        );
        let mut typed = span(&[
            ("mlflow.spanType", json!("LLM")),
            ("lmnr.span.type", json!("TOOL")),
        ]);
        type_when_loaded(&mut typed);
        assert_eq!(typed.attributes.len(), 2);
    }

    #[test]
    fn numbered_keys_and_counts() {
        assert!(indexed_match(
            "gen_ai.prompt.0.content",
            &["gen_ai.prompt.", ".content"]
        ));
        assert!(indexed_match(
            "gen_ai.prompt.12.content_x",
            &["gen_ai.prompt.", ".content"]
        ));
        assert!(!indexed_match(
            "gen_ai.prompt.x.content",
            &["gen_ai.prompt.", ".content"]
        ));
        let s = span(&[
            ("gen_ai.prompt.0.role", json!("user")),
            ("gen_ai.prompt.0.content", json!("hello")),
            ("gen_ai.usage.prompt_tokens", json!(4)),
            ("llm.usage.total_tokens", json!(9)),
        ]);
        let got = added(&s);
        assert!(got.contains(&("mlflow.spanInputs".into(), json!("hello"))));
        assert!(got.contains(&(
            "mlflow.chat.tokenUsage".into(),
            json!({"input_tokens": 4, "total_tokens": 9})
        )));
    }
}
