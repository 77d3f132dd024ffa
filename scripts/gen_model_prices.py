"""Writes host/server/src/traces/model_prices.tsv: the token prices of MLflow's bundled model
catalog (`mlflow/utils/model_catalog/*.json`, Apache-2.0, from the installed mlflow package), the
list MLflow's server prices spans from at ingest (`mlflow.utils.providers.cost_per_token`).

    target/e2e-venv/bin/python scripts/gen_model_prices.py > host/server/src/traces/model_prices.tsv
    target/e2e-venv/bin/python scripts/gen_model_prices.py --cases > host/server/src/traces/prices_cases.rs

Only what pricing reads is kept: each provider (a file's name, in the sorted order MLflow scans
them), each of its models (every model, priced or not: MLflow prices a model without prices at
zero), and the five per-million-token prices `_flatten_catalog_entry` reads, written as Python
reads them from the JSON (`repr` of the float, or the integer), empty where the catalog gives none.

With `--cases` it writes instead what MLflow's own `calculate_cost_by_model_and_token_usage`
answers (`json.dumps` of the cost, or None) for a sample of the catalog's models and for the corners
of its rules, the reference of prices.rs's unit tests.
"""

import importlib.metadata
import json
import os
import random
import sys
from pathlib import Path

# Prices from the bundled catalog only (MLflow fetches a provider's newer list first otherwise).
os.environ["MLFLOW_MODEL_CATALOG_URI"] = ""

import mlflow.utils.providers as providers

FIELDS = [
    "input_per_million_tokens",
    "output_per_million_tokens",
    "cache_read_per_million_tokens",
    "cache_write_per_million_tokens",
    "cache_write_1hr_per_million_tokens",
]


def number(v) -> str:
    if v is None:
        return ""
    # The JSON holds ints and floats only; bool is an int in Python but never a price.
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SystemExit(f"unexpected price {v!r}")
    return repr(v)


def main() -> None:
    catalog = Path(providers._catalog_pkg())
    version = importlib.metadata.version("mlflow")
    out = sys.stdout
    out.write(
        f"# Token prices of MLflow {version}'s bundled model catalog (mlflow/utils/model_catalog,\n"
        "# Copyright the MLflow authors, Apache License 2.0), written by scripts/gen_model_prices.py.\n"
        "# Each provider (in MLflow's scan order) after an empty line: its name on a line, then one\n"
        "# model a line: its name, then USD per million tokens for input, output, cache read, cache\n"
        "# write, 1-hour cache write (empty: not given), tab-separated.\n"
    )
    names = providers._list_provider_names()
    for provider in names:
        if not provider or "\t" in provider or "\n" in provider:
            raise SystemExit(f"unexpected provider name {provider!r}")
        data = json.loads((catalog / f"{provider}.json").read_text("utf-8"))
        out.write(f"\n{provider}\n")
        for model, entry in data.get("models", {}).items():
            if not model or "\t" in model or "\n" in model or "\r" in model:
                raise SystemExit(f"unexpected model name {model!r}")
            pricing = entry.get("pricing") or {}
            prices = [number(pricing.get(f)) for f in FIELDS]
            while prices and prices[-1] == "":
                prices.pop()
            out.write("\t".join([model, *prices]) + "\n")


def mlflow_cost(model, usage, provider) -> str:
    """What MLflow's OTLP translation stores as the span's cost (it catches any exception)."""
    from mlflow.tracing.utils import calculate_cost_by_model_and_token_usage

    try:
        cost = calculate_cost_by_model_and_token_usage(model, usage, provider)
    except Exception:
        return "None"
    return json.dumps(cost, ensure_ascii=False) if cost else "None"


def rust_str(s: str) -> str:
    return "r#\"" + s + "\"#"


def cases() -> None:
    rng = random.Random(19)
    pairs = []
    for provider in providers._list_provider_names():
        for model in providers._load_bundled_provider(provider):
            pairs.append((provider, model))
    sample = rng.sample(pairs, 150)
    # Every model with a 1-hour cache-write price (Anthropic's), where the cache rules differ.
    sample += [(p, m) for p, m in pairs
               if providers._load_bundled_provider(p)[m].get("cache_creation_input_token_cost_above_1hr")][:40]
    plain = {"input_tokens": 1234, "output_tokens": 567, "total_tokens": 1801}
    cached = {"input_tokens": 90000, "output_tokens": 3210, "cache_read_input_tokens": 50000,
              "cache_creation_input_tokens": 20000, "cache_creation_input_tokens_above_1hr": 7000}
    rows = []
    for provider, model in sample:
        rows.append((model, plain, None))
        rows.append((model, cached, provider.upper()))
        rows.append((f"{provider}/{model}", {"input_tokens": rng.randint(1, 10**6), "output_tokens": 0}, None))
    unknown = "no-such-model-19"
    rows += [
        ("gpt-4o", plain, "openai"),
        ("gpt-4o", plain, "anthropic"),  # not in that list: every list is scanned
        ("gpt-4o", plain, "no-such-provider"),
        ("gpt-4o", plain, 5),  # no string: no .lower(), a scan
        ("gpt-4o", plain, ["openai"]),
        ("gpt-4o", plain, ""),
        ("openai/gpt-4o-mini", plain, None),
        ("x/y/gpt-4o", plain, None),
        ("claude-sonnet-4-5", cached, "anthropic"),
        ("claude-sonnet-4-5", {**cached, "cache_creation_input_tokens_above_1hr": 10**6}, "anthropic"),
        ("claude-sonnet-4-5", {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100}, None),
        ("claude-sonnet-4-5", {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 0,
                               "cache_creation_input_tokens": None}, None),
        ("databricks-claude-sonnet-4-5", plain, None),
        ("databricks/databricks-claude-sonnet-4-5", plain, None),
        ("databricks-meta-llama-3-3-70b-instruct", plain, None),
        ("databricks-claude-sonnet-4-5", plain, "anthropic"),
        ("gateway:/my-route", plain, None),
        ("endpoints:/my-endpoint", plain, "openai"),
        (unknown, plain, None),
        (unknown, plain, "openai"),
        ("gpt-4o", {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}, None),
        ("gpt-4o", {"total_tokens": 7}, None),
        ("gpt-4o", {"input_tokens": 0.0, "output_tokens": False}, None),
        ("gpt-4o", {"input_tokens": 7}, None),
        ("gpt-4o", {"output_tokens": 7}, None),
        ("gpt-4o", {"input_tokens": "7", "output_tokens": 1}, None),
        ("gpt-4o", {"input_tokens": None, "output_tokens": 1}, None),
        ("gpt-4o", {"input_tokens": 7, "output_tokens": "1"}, None),
        ("gpt-4o", {"input_tokens": 7.5, "output_tokens": 1.25}, None),
        ("gpt-4o", {"input_tokens": True, "output_tokens": 3}, None),
        ("gpt-4o", {"input_tokens": -40, "output_tokens": -3}, None),
        ("gpt-4o", {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 30}, None),
        ("gpt-4o", {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": "3"}, None),
        ("gpt-4o", {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": ""}, None),
        ("gpt-4o", {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 2.5}, None),
        ("gpt-4o", {"input_tokens": 9007199254740993, "output_tokens": 2**62}, None),
        ("gpt-4o", {"input_tokens": 10, "output_tokens": 3, "cache_creation_input_tokens": 4,
                    "cache_creation_input_tokens_above_1hr": [1]}, None),
        ("gpt-4o", {}, None),
        ("gpt-4o", [1, 2], None),
        ("gpt-4o", "usage", None),
        ("", plain, None),
        (None, plain, None),
        (5, plain, None),
        ("GPT-4O", plain, None),
    ]
    # A model the catalog lists without an input price, and one in several lists.
    seen = {}
    for provider, model in pairs:
        seen.setdefault(model, []).append(provider)
    no_input = next(m for p, m in pairs if not providers._load_bundled_provider(p)[m].get("input_cost_per_token"))
    several = next(m for m, ps in seen.items() if len(ps) > 3)
    rows += [(no_input, plain, None), (several, plain, None), (several, plain, seen[several][-1])]
    out = sys.stdout
    out.write(
        "// Written by scripts/gen_model_prices.py --cases from MLflow "
        f"{importlib.metadata.version('mlflow')}: (model, usage, provider: JSON,\n"
        "// `calculate_cost_by_model_and_token_usage`'s cost as json.dumps writes it, or None).\n"
        "const CASES: &[(&str, &str, &str, &str)] = &[\n"
    )
    for model, usage, provider in rows:
        expected = mlflow_cost(model, usage, provider)
        fields = [json.dumps(model), json.dumps(usage), json.dumps(provider), expected]
        out.write("    (" + ", ".join(rust_str(f) for f in fields) + "),\n")
    out.write("];\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--cases"]:
        cases()
    else:
        main()
