//! `plugin-bench <model dir>`: ONNX predictions inside the builtin `onnx` plugin versus the same
//! tract code (the flavor's `engine` module) run natively, and cold versus cached compiles of
//! every builtin plugin. Prints markdown tables on stdout, progress on stderr.
//!
//! `<model dir>` holds `MLmodel` and `model.onnx` with one float32 input `[N, features]` and
//! one float32 output (see `make_mlp.py`). Options: `--features N` (the input's width, default
//! 64), `--iters-1 N` (calls with 1 row, default 200), `--iters-1000 N` (calls with 1,000 rows,
//! default 50), `--compile-runs N` (per plugin and mode, default 3; 0 skips the compile table).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use wasmflow_builtin_plugins::BUILTIN;
use wasmflow_flavor_onnx::engine::{self, Batch, NamedTensor, OnnxModel};
use wasmflow_runtime::{
    Data, ModelPool, ModelSource, Runtime, RuntimeConfig, Tensor, Values, Wasm,
};

/// Largest allowed difference between the plugin's and the native outputs.
const TOLERANCE: f32 = 1e-5;

struct Options {
    model_dir: PathBuf,
    /// The model's input width.
    features: usize,
    iters_1: usize,
    iters_1000: usize,
    compile_runs: usize,
}

fn parse_args() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        model_dir: PathBuf::new(),
        features: 64,
        iters_1: 200,
        iters_1000: 50,
        compile_runs: 3,
    };
    let mut model_dir = None;
    while let Some(arg) = args.next() {
        // `least`: 1 for the prediction counts (a median of nothing is no figure); 0 for
        // `--compile-runs`, which skips the compile table (a cold compile of every plugin takes
        // minutes on a small machine).
        let mut number = |name: &str, least: usize| -> Result<usize> {
            let value = args
                .next()
                .with_context(|| format!("{name} needs a value"))?;
            let n: usize = value
                .parse()
                .with_context(|| format!("{name}: '{value}' is not a count"))?;
            ensure!(n >= least, "{name} must be at least {least}, not {n}");
            Ok(n)
        };
        match arg.as_str() {
            "--features" => options.features = number("--features", 1)?,
            "--iters-1" => options.iters_1 = number("--iters-1", 1)?,
            "--iters-1000" => options.iters_1000 = number("--iters-1000", 1)?,
            "--compile-runs" => options.compile_runs = number("--compile-runs", 0)?,
            _ if arg.starts_with("--") => bail!("unknown option {arg}"),
            _ => model_dir = Some(PathBuf::from(arg)),
        }
    }
    options.model_dir = model_dir.context(
        "usage: plugin-bench <model dir> [--features N] [--iters-1 N] [--iters-1000 N] [--compile-runs N]",
    )?;
    Ok(options)
}

fn main() -> Result<()> {
    let options = parse_args()?;
    let predictions = bench_predict(&options)?;
    let compiles = if options.compile_runs > 0 {
        bench_compile(options.compile_runs)?
    } else {
        Vec::new()
    };

    println!(
        "| ONNX MLP, {} inputs (float32) | wasm median | wasm p90 | native median | native p90 | wasm / native (median) |",
        options.features
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &predictions {
        println!(
            "| predict, {} row{} ({} calls) | {} | {} | {} | {} | {:.2}x |",
            thousands(row.rows),
            if row.rows == 1 { "" } else { "s" },
            row.wasm.len(),
            fmt(median(&row.wasm)),
            fmt(p90(&row.wasm)),
            fmt(median(&row.native)),
            fmt(p90(&row.native)),
            ratio(median(&row.wasm), median(&row.native)),
        );
    }
    if compiles.is_empty() {
        return Ok(());
    }
    println!();
    println!(
        "| plugin | size | cold compile (median of {}) | cached load (median of {}) | cold / cached |",
        options.compile_runs, options.compile_runs
    );
    println!("|---|---:|---:|---:|---:|");
    for row in &compiles {
        println!(
            "| {} | {} KiB | {} | {} | {:.0}x |",
            row.name,
            row.size >> 10,
            fmt(median(&row.cold)),
            fmt(median(&row.cached)),
            ratio(median(&row.cold), median(&row.cached)),
        );
    }
    Ok(())
}

struct PredictRow {
    rows: usize,
    wasm: Vec<Duration>,
    native: Vec<Duration>,
}

fn bench_predict(options: &Options) -> Result<Vec<PredictRow>> {
    let model_dir = options.model_dir.canonicalize().with_context(|| {
        format!(
            "no model directory at {}",
            options.model_dir.to_string_lossy()
        )
    })?;
    let onnx_path = model_dir.join("model.onnx");

    // Native: the flavor's engine on the same file.
    let started = Instant::now();
    let native = OnnxModel::load(&onnx_path).map_err(|e| anyhow::anyhow!("native load: {e}"))?;
    eprintln!("native: loaded the model in {}", fmt(started.elapsed()));

    // Wasm: the builtin plugin, compiled into a cache in a temp dir, one instance.
    let cache = tempdir("plugin-bench-cache")?;
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.clone()),
        ..RuntimeConfig::default()
    })?;
    let wasm_bytes = builtin("onnx")?;
    let started = Instant::now();
    let plugin = runtime.compile(&wasm_bytes)?;
    eprintln!(
        "wasm: compiled the onnx plugin ({} KiB) in {}",
        wasm_bytes.len() >> 10,
        fmt(started.elapsed())
    );
    let source = ModelSource {
        plugin_name: "onnx".into(),
        plugin,
        model_dir: model_dir.clone(),
        load_config: serde_json::json!({
            "flavor": "onnx",
            "section": {"data": "model.onnx", "onnx_session_options": null, "code": null},
        })
        .to_string(),
    };
    let started = Instant::now();
    let pool = ModelPool::new(runtime.clone(), source, 1).map_err(anyhow::Error::from)?;
    eprintln!(
        "wasm: instantiated the plugin and loaded the model in {}",
        fmt(started.elapsed())
    );

    let mut rows_out = Vec::new();
    for (rows, iters) in [(1, options.iters_1), (1000, options.iters_1000)] {
        let values = inputs(rows * options.features);
        let wasm_input = Data::Tensors(vec![Tensor {
            name: "input".into(),
            shape: vec![rows as i64, options.features as i64],
            values: Values::Float32(values.clone()),
        }]);
        let native_input = || {
            Batch::Tensors(vec![NamedTensor {
                name: "input".into(),
                shape: vec![rows, options.features],
                values: engine::Values::Float32(values.clone()),
            }])
        };
        let wasm_call = || -> Result<Vec<f32>> {
            let out = pool
                .predict(&wasm_input, None)
                .map_err(anyhow::Error::from)?;
            wasm_output(out)
        };
        let native_call = || -> Result<Vec<f32>> {
            let out = native
                .predict(native_input())
                .map_err(|e| anyhow::anyhow!("native predict: {e}"))?;
            native_output(out)
        };

        let (w, n) = (wasm_call()?, native_call()?);
        ensure!(
            w.len() == n.len() && !n.is_empty() && n.len().is_multiple_of(rows),
            "{rows} rows gave {} outputs in wasm and {} natively",
            w.len(),
            n.len()
        );
        let diff = w
            .iter()
            .zip(&n)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        ensure!(
            diff <= TOLERANCE,
            "{rows} rows: the plugin and native outputs differ by up to {diff:e}"
        );
        eprintln!("{rows} rows: outputs agree (largest difference {diff:e})");

        let warmup = (iters / 10).max(3);
        for _ in 0..warmup {
            wasm_call()?;
            native_call()?;
        }
        // Alternate the two so that load from elsewhere on the machine hits both alike.
        let mut row = PredictRow {
            rows,
            wasm: Vec::with_capacity(iters),
            native: Vec::with_capacity(iters),
        };
        for _ in 0..iters {
            let t = Instant::now();
            std::hint::black_box(wasm_call()?);
            row.wasm.push(t.elapsed());
            let t = Instant::now();
            std::hint::black_box(native_call()?);
            row.native.push(t.elapsed());
        }
        eprintln!(
            "{rows} rows: wasm median {}, native median {}",
            fmt(median(&row.wasm)),
            fmt(median(&row.native))
        );
        rows_out.push(row);
    }
    drop(pool);
    drop(runtime);
    let _ = std::fs::remove_dir_all(&cache);
    Ok(rows_out)
}

struct CompileRow {
    name: &'static str,
    size: usize,
    cold: Vec<Duration>,
    cached: Vec<Duration>,
}

fn bench_compile(runs: usize) -> Result<Vec<CompileRow>> {
    let uncached = Runtime::new(RuntimeConfig::default())?;
    let cache = tempdir("plugin-bench-compile-cache")?;
    let cached_rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.clone()),
        ..RuntimeConfig::default()
    })?;
    let mut out = Vec::new();
    for component in BUILTIN {
        let name = component.name;
        // As the server compiles them: inflated only when not found in the cache.
        let wasm = Wasm::Builtin(component);
        let compile = |runtime: &Runtime| runtime.compile_hashed(wasm, component.sha256, name);
        let mut row = CompileRow {
            name,
            size: component.size,
            cold: Vec::new(),
            cached: Vec::new(),
        };
        for _ in 0..runs {
            let t = Instant::now();
            let plugin = compile(&uncached)?;
            row.cold.push(t.elapsed());
            ensure!(
                !plugin.cached,
                "{name}: a runtime without a cache reported a cached load"
            );
        }
        // Fills the cache, then loads from it.
        let first = compile(&cached_rt)?;
        ensure!(
            !first.cached,
            "{name}: the fresh cache already held the plugin"
        );
        for _ in 0..runs {
            let t = Instant::now();
            let plugin = compile(&cached_rt)?;
            row.cached.push(t.elapsed());
            ensure!(
                plugin.cached,
                "{name}: the second compile did not come from the cache"
            );
        }
        eprintln!(
            "{name}: cold {}, cached {}",
            fmt(median(&row.cold)),
            fmt(median(&row.cached))
        );
        out.push(row);
    }
    drop(cached_rt);
    let _ = std::fs::remove_dir_all(&cache);
    Ok(out)
}

fn builtin(name: &str) -> Result<Vec<u8>> {
    BUILTIN
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.wasm())
        .with_context(|| format!("no builtin plugin named {name}"))
}

/// `len` deterministic values in [-1, 1).
fn inputs(len: usize) -> Vec<f32> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn wasm_output(out: Data) -> Result<Vec<f32>> {
    match out {
        Data::Tensors(mut tensors) if tensors.len() == 1 => match tensors.remove(0).values {
            Values::Float32(v) => Ok(v),
            _ => bail!("the plugin returned a tensor that is not float32"),
        },
        _ => bail!("the plugin did not return one tensor"),
    }
}

fn native_output(out: Batch) -> Result<Vec<f32>> {
    match out {
        Batch::Tensors(mut tensors) if tensors.len() == 1 => match tensors.remove(0).values {
            engine::Values::Float32(v) => Ok(v),
            _ => bail!("the engine returned a tensor that is not float32"),
        },
        _ => bail!("the engine did not return one tensor"),
    }
}

fn tempdir(prefix: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn sorted(samples: &[Duration]) -> Vec<Duration> {
    let mut s = samples.to_vec();
    s.sort();
    s
}

fn median(samples: &[Duration]) -> Duration {
    let s = sorted(samples);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2
    }
}

/// The nearest-rank 90th percentile.
fn p90(samples: &[Duration]) -> Duration {
    let s = sorted(samples);
    let rank = (s.len() * 9).div_ceil(10).max(1);
    s[rank - 1]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
