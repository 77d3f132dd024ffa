//! Plugins written to misbehave: each failure is reported naming the plugin, the instance is
//! replaced, and the next call on the same pool works.

use std::sync::Arc;
use std::time::Duration;

use wasmflow_builtin_plugins::testing;
use wasmflow_runtime::{
    Column, Data, ModelPool, ModelSource, PluginErrorKind, Runtime, RuntimeConfig, Values,
};

fn runtime(cache: Option<&std::path::Path>) -> Arc<Runtime> {
    Runtime::new(RuntimeConfig {
        cache_dir: cache.map(|c| c.to_path_buf()),
        memory_limit: 64 << 20,
        call_timeout: Duration::from_millis(500),
        ..RuntimeConfig::default()
    })
    .unwrap()
}

/// A pool of the hostile plugin told to `behavior` on predict (or on load).
fn hostile(
    runtime: &Arc<Runtime>,
    behavior: &str,
    on_load: bool,
) -> (
    tempfile::TempDir,
    Result<ModelPool, wasmflow_runtime::PluginError>,
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.txt"), "model data").unwrap();
    let wasm = std::fs::read(testing::HOSTILE).unwrap();
    let plugin = runtime.compile(&wasm).unwrap();
    let source = ModelSource {
        plugin_name: "hostile".into(),
        plugin,
        model_dir: dir.path().to_path_buf(),
        load_config: serde_json::json!({"flavor": "hostile", "section": {"behavior": behavior, "on_load": on_load}}).to_string(),
    };
    let pool = ModelPool::new(runtime.clone(), source, 2);
    (dir, pool)
}

fn input() -> Data {
    Data::Table(vec![Column {
        name: "x".into(),
        values: Values::Float64(vec![1.0, 2.0]),
    }])
}

fn fails_with(behavior: &str, kind: PluginErrorKind, needle: &str) {
    let rt = runtime(None);
    let (_dir, pool) = hostile(&rt, behavior, false);
    let pool = pool.unwrap();
    let error = pool.predict(&input(), None).unwrap_err();
    assert_eq!(error.kind, kind, "{behavior}: {error}");
    let message = error.to_string();
    assert!(message.starts_with("plugin 'hostile': "), "{message}");
    assert!(
        message.contains(needle),
        "{behavior}: '{message}' lacks '{needle}'"
    );
    assert!(!message.contains("wasm backtrace"), "{message}");
}

#[test]
fn an_endless_loop_is_stopped_at_the_deadline() {
    fails_with("loop", PluginErrorKind::Timeout, "deadline");
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    fails_with(
        "alloc",
        PluginErrorKind::OutOfMemory,
        "beyond the limit of 64 MiB",
    );
}

#[test]
fn a_panic_is_a_trap() {
    fails_with("panic", PluginErrorKind::Trapped, "trapped");
}

#[test]
fn files_outside_the_model_directory_are_not_there() {
    fails_with(
        "read-passwd",
        PluginErrorKind::InvalidInput,
        "cannot read /etc/passwd",
    );
    fails_with(
        "escape-model-dir",
        PluginErrorKind::InvalidInput,
        "cannot escape /model",
    );
    fails_with(
        "write-model-dir",
        PluginErrorKind::InvalidInput,
        "cannot write to /model",
    );
}

#[test]
fn sockets_are_refused() {
    fails_with("socket", PluginErrorKind::InvalidInput, "cannot connect");
}

#[test]
fn the_environment_is_empty() {
    let rt = runtime(None);
    let (_dir, pool) = hostile(&rt, "env", false);
    let output = pool.unwrap().predict(&input(), None).unwrap();
    assert_eq!(
        output,
        Data::Table(vec![Column {
            name: "env".into(),
            values: Values::Text(vec!["[]".into()])
        }])
    );
}

#[test]
fn malformed_output_is_refused() {
    fails_with(
        "mismatched-columns",
        PluginErrorKind::MalformedOutput,
        "columns of different lengths",
    );
    fails_with(
        "bad-tensor-shape",
        PluginErrorKind::MalformedOutput,
        "of shape [2, 3] with 5 values",
    );
    fails_with(
        "negative-shape",
        PluginErrorKind::MalformedOutput,
        "negative dimension",
    );
}

#[test]
fn a_host_product_past_the_deadline_is_stopped_there() {
    // Room for the product's operands (~150 MiB), so that only time can stop it: ~34 G
    // multiply-adds in one `tensor` call, seconds of one core, with a 200 ms budget.
    let rt = Runtime::new(RuntimeConfig {
        memory_limit: 512 << 20,
        call_timeout: Duration::from_millis(200),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let (_dir, pool) = hostile(&rt, "tensor-long-product", false);
    let pool = pool.unwrap();
    let started = std::time::Instant::now();
    let error = pool.predict(&input(), None).unwrap_err();
    let took = started.elapsed();
    assert_eq!(error.kind, PluginErrorKind::Timeout, "{error}");
    assert!(error.to_string().contains("deadline"), "{error}");
    // The host checks the deadline every ~16 M multiply-adds: it returns a few ms after it, not
    // when the product would end.
    assert!(took < Duration::from_millis(900), "the call took {took:?}");
    assert_eq!(pool.instances(), 0, "the timed-out instance is dropped");
    assert_eq!(pool.memory(), 0, "with what the host held for it");
}

#[test]
fn host_tensor_calls_with_lying_sizes_get_errors_not_crashes() {
    let rt = runtime(None);
    let (_dir, pool) = hostile(&rt, "tensor-bad-shapes", false);
    let pool = pool.unwrap();
    let output = pool.predict(&input(), None).unwrap();
    let Data::Table(columns) = output else {
        panic!("expected a table, got {output:?}")
    };
    let Values::Text(text) = &columns[0].values else {
        panic!("expected text, got {columns:?}")
    };
    let errors: Vec<&str> = text[0].split('\n').collect();
    assert_eq!(
        errors,
        [
            "a layer of 3 inputs by 4 outputs needs 12 weights, not 11",
            "a layer of 4 outputs needs 4 bias values, not 5",
            "a layer of 4294967295 inputs by 4294967295 outputs needs 18446744065119617025 \
             weights, not 0",
            "2 rows of 3 values need 6 values, not 5",
            "4294967295 rows of 4 outputs would not fit the instance's memory limit of 64 MiB",
            "4294967295 rows of 4294967295 outputs would not fit the instance's memory limit of \
             64 MiB",
        ]
    );
    // The instance carries on.
    assert_eq!(pool.instances(), 1);
    pool.predict(&input(), None).unwrap();
}

#[test]
fn what_the_host_holds_for_a_plugin_counts_against_its_memory_limit() {
    let rt = runtime(None);
    let (_dir, pool) = hostile(&rt, "tensor-hoard", false);
    let pool = pool.unwrap();
    let error = pool.predict(&input(), None).unwrap_err();
    assert_eq!(error.kind, PluginErrorKind::InvalidInput, "{error}");
    assert!(
        error
            .to_string()
            .contains("a layer of 1024 by 1024 (4 MiB) would take the instance past its memory limit of 64 MiB"),
        "{error}"
    );
    // The plugin's error dropped its layers: the host freed them.
    assert!(pool.memory() < 32 << 20, "{} bytes held", pool.memory());
}

#[test]
fn a_failing_load_is_reported() {
    let rt = runtime(None);
    let (_dir, pool) = hostile(&rt, "panic", true);
    let error = pool.err().expect("load should fail");
    assert_eq!(error.kind, PluginErrorKind::Trapped, "{error}");
}

#[test]
fn the_pool_replaces_instances_that_trapped_and_frees_their_memory() {
    let rt = runtime(None);
    // The plugin echoes by default; a trap on one call must not break the next.
    let (_dir, pool) = hostile(&rt, "echo", false);
    let pool = pool.unwrap();
    assert_eq!(pool.predict(&input(), None).unwrap(), input());
    let (_dir2, bomb) = hostile(&rt, "alloc", false);
    let bomb = bomb.unwrap();
    assert!(bomb.memory() > 0, "a loaded instance holds linear memory");
    let before = resident_kib();
    for _ in 0..5 {
        assert_eq!(
            bomb.predict(&input(), None).unwrap_err().kind,
            PluginErrorKind::OutOfMemory
        );
        // The echoing model beside it keeps answering.
        assert_eq!(pool.predict(&input(), None).unwrap(), input());
    }
    assert_eq!(bomb.instances(), 0, "trapped instances are dropped");
    assert_eq!(bomb.memory(), 0, "their memory is no longer counted");
    let after = resident_kib();
    // Five 64 MiB bombs: if instances leaked, RSS would grow by ~320 MiB.
    assert!(
        after < before + 96 * 1024,
        "resident memory grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn a_filled_pool_holds_every_instance_and_counts_their_memory() {
    let rt = runtime(None);
    let (_dir, pool) = hostile(&rt, "echo", false);
    let pool = pool.unwrap();
    let one = pool.memory();
    pool.fill().unwrap();
    assert_eq!(pool.instances(), 2);
    assert_eq!(pool.memory(), 2 * one);
    assert_eq!(pool.predict(&input(), None).unwrap(), input());
    assert_eq!(
        pool.instances(),
        2,
        "a free instance is used, not a new one made"
    );
}

#[test]
fn output_to_stdout_does_not_break_the_call() {
    let rt = runtime(None);
    let (_dir, pool) = hostile(&rt, "stdout", false);
    assert_eq!(pool.unwrap().predict(&input(), None).unwrap(), input());
}

#[test]
fn a_component_that_is_not_a_flavor_plugin_is_refused_with_what_is_missing() {
    let rt = runtime(None);
    let wasm = std::fs::read(testing::NOT_A_FLAVOR).unwrap();
    let error = format!("{:#}", rt.compile(&wasm).err().expect("not a flavor"));
    assert!(
        error.contains("does not export 'wasmflow:plugin/flavor@0.1.0'"),
        "{error}"
    );
    assert!(error.contains("wasi:cli/run"), "{error}");
    let error = format!(
        "{:#}",
        rt.compile(b"not wasm at all").err().expect("not wasm")
    );
    assert!(error.contains("not a WebAssembly file"), "{error}");
    let error = format!(
        "{:#}",
        rt.compile(b"\0asm\x01\0\0\0").err().expect("a core module")
    );
    assert!(
        error.contains("this is a core wasm module; build a component for wasm32-wasip2"),
        "{error}"
    );
}

#[test]
fn compiled_code_is_cached_on_disk() {
    let cache = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(testing::HOSTILE).unwrap();
    let first = runtime(Some(cache.path())).compile(&wasm).unwrap();
    assert!(!first.cached);
    let second = runtime(Some(cache.path())).compile(&wasm).unwrap();
    assert!(second.cached);
    assert_eq!(first.sha256, second.sha256);
    // The cached code is mapped: it may be replaced only once nothing uses it.
    drop((first, second));
    // A damaged cache entry is recompiled, not trusted.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let third = runtime(Some(cache.path())).compile(&wasm).unwrap();
    assert!(!third.cached);
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The servers call a short predict straight on the tokio worker that received the request:
/// every WASI call a plugin makes there (stdout and stderr, the message of its own panic, the
/// file system, a socket) must answer what it answers on a plain thread, never panic the
/// worker (wasmtime-wasi's synchronous calls `block_on` the current runtime, which panics on a
/// worker thread, and a write to stderr once took the request down that way).
#[test]
fn wasi_calls_answer_alike_on_an_async_worker_thread() {
    let rt = runtime(None);
    let workers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for behavior in [
        "stdout",
        "panic",
        "escape-model-dir",
        "write-model-dir",
        "read-passwd",
        "socket",
        "echo",
    ] {
        let (_dir, pool) = hostile(&rt, behavior, false);
        let pool = Arc::new(pool.unwrap());
        let plain = format!("{:?}", pool.predict(&input(), None));
        for _ in 0..2 {
            let pool = pool.clone();
            let on_worker = workers
                .block_on(
                    workers.spawn(async move { format!("{:?}", pool.predict(&input(), None)) }),
                )
                .unwrap_or_else(|e| panic!("{behavior}: the worker panicked: {e}"));
            assert_eq!(on_worker, plain, "{behavior}");
        }
    }
}
