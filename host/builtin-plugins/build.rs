//! Builds the plugins in `plugins/` for wasm32-wasip2, as wasmtime's test-programs and Spin's
//! test components are built: a nested `cargo build` into its own directory beside the shared
//! target dir (the outer build holds the lock on its own directories).

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Plugins under `plugins/flavors/` shipped inside the binary, by crate name suffix.
const BUILTIN: &[&str] = &["linear", "lightgbm", "onnx", "sklearn", "xgboost"];
/// Project executors under `plugins/executors/` shipped inside the binary.
const EXECUTORS: &[&str] = &["local", "virtualenv", "wasi"];
/// Plugins under `plugins/testing/` that the runtime's tests load; never shipped.
const TESTING: &[&str] = &["hostile", "not_a_flavor", "probe_program"];

const TARGET: &str = "wasm32-wasip2";

/// zlib's best-ratio level.
const DEFLATE_LEVEL: u8 = 9;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().parent().unwrap();
    let plugins = root.join("plugins");
    for watched in [
        "sdk",
        "features",
        "skops",
        "lightgbm",
        "xgboost",
        "flavors",
        "executors",
        "testing",
        "Cargo.toml",
        "Cargo.lock",
        ".cargo",
    ] {
        println!("cargo:rerun-if-changed={}", plugins.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let target_dir = wasm_target_dir(&out_dir);
    ensure_target_installed();

    let mut cargo = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(&plugins)
        .args(["build", "--release", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    for name in BUILTIN {
        cargo.args(["-p", &format!("wasmflow-flavor-{}", name.replace('_', "-"))]);
    }
    for name in EXECUTORS {
        cargo.args(["-p", &format!("wasmflow-executor-{name}")]);
    }
    for name in TESTING {
        cargo.args([
            "-p",
            &format!("wasmflow-testing-{}", name.replace('_', "-")),
        ]);
    }
    // The outer build's flags are for the host; plugins/.cargo/config.toml sets the guests'.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cargo.env_remove(var);
    }
    let status = cargo
        .status()
        .expect("cannot run cargo to build the plugins");
    assert!(
        status.success(),
        "building the plugins in {} failed",
        plugins.display()
    );

    let built = target_dir.join(TARGET).join("release");
    let packages = package_metadata(&plugins);
    let mut code =
        String::from("/// The plugins shipped inside the binary: (file name, component bytes).\n");
    code.push_str("pub const BUILTIN: &[Component] = &[\n");
    for name in BUILTIN {
        component_entry(
            &mut code,
            &out_dir,
            name,
            &built.join(format!("wasmflow_flavor_{name}.wasm")),
            &packages,
            &format!("wasmflow-flavor-{}", name.replace('_', "-")),
        );
    }
    code.push_str(
        "];\n\n/// The project executors shipped inside the binary: (file name, bytes).\n",
    );
    code.push_str("pub const EXECUTORS: &[Component] = &[\n");
    for name in EXECUTORS {
        component_entry(
            &mut code,
            &out_dir,
            name,
            &built.join(format!("wasmflow_executor_{name}.wasm")),
            &packages,
            &format!("wasmflow-executor-{name}"),
        );
    }
    code.push_str(
        "];\n\n/// Paths of the components the runtime's tests load.\npub mod testing {\n",
    );
    for name in TESTING {
        let file = built.join(format!("wasmflow_testing_{name}.wasm"));
        writeln!(
            code,
            "    /// The `{name}` test component.\n    pub const {}: &str = {:?};",
            name.to_uppercase(),
            file.display().to_string()
        )
        .unwrap();
    }
    code.push_str("}\n");
    std::fs::write(out_dir.join("plugins.rs"), code).unwrap();
}

/// One `Component { .. }` of the generated tables, with the file's sha256 and what the
/// package's Cargo metadata says the component's `info` reports, so that the host can choose
/// a plugin for a flavor without compiling any (host/runtime's tests check the two agree).
fn component_entry(
    code: &mut String,
    out_dir: &Path,
    name: &str,
    file: &Path,
    packages: &[serde_json::Value],
    package: &str,
) {
    use sha2::Digest as _;
    let wasm =
        std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    // Shipped deflated (zlib, whose Adler-32 the inflate checks): the ONNX plugin's 17 MB of
    // wasm are 4 MB so, and a start that finds the plugin in the compile cache never inflates it.
    let deflated = out_dir.join(format!("{}.wasm.zlib", package));
    std::fs::write(
        &deflated,
        miniz_oxide::deflate::compress_to_vec_zlib(&wasm, DEFLATE_LEVEL),
    )
    .unwrap_or_else(|e| panic!("cannot write {}: {e}", deflated.display()));
    let sha256: String = sha2::Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let meta = packages
        .iter()
        .find(|p| p["name"] == package)
        .unwrap_or_else(|| panic!("`cargo metadata` in plugins/ lists no package '{package}'"));
    let version = meta["version"].as_str().unwrap_or_default();
    let wasmflow = &meta["metadata"]["wasmflow"];
    // Flavor plugins say which flavors they load; executors load none.
    let loads: Vec<&str> = wasmflow["loads"]
        .as_array()
        .map(|l| l.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let description = wasmflow["description"]
        .as_str()
        .or(meta["description"].as_str())
        .unwrap_or_default();
    writeln!(
        code,
        "    Component {{ name: {name:?}, deflated: include_bytes!({:?}), size: {}, \
         sha256: {sha256:?}, version: {version:?}, loads: &{loads:?}, \
         description: {description:?} }},",
        deflated.display().to_string(),
        wasm.len()
    )
    .unwrap();
}

/// The plugins workspace's packages, as `cargo metadata` reports them (versions inherited from
/// the workspace already resolved).
fn package_metadata(plugins: &Path) -> Vec<serde_json::Value> {
    let output = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(plugins)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .expect("cannot run `cargo metadata` in plugins/");
    assert!(
        output.status.success(),
        "`cargo metadata` in {} failed: {}",
        plugins.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("`cargo metadata` printed invalid JSON");
    match metadata["packages"].take() {
        serde_json::Value::Array(packages) => packages,
        _ => panic!("`cargo metadata` printed no packages"),
    }
}

/// `<target dir>/wasm-plugins`: shared by debug and release builds of the host, so the plugins
/// are built once.
fn wasm_target_dir(out_dir: &Path) -> PathBuf {
    let target = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        // OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out.
        None => out_dir.ancestors().nth(4).unwrap().to_path_buf(),
    };
    target.join("wasm-plugins")
}

/// rust-toolchain.toml names the target, but rustup adds targets only when it installs the
/// toolchain; a machine that already had 1.95 needs it added.
fn ensure_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if libdir.is_some_and(|dir| dir.join("libstd.rlib").exists() || has_std(&dir)) {
        return;
    }
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", TARGET]);
    if let Some(toolchain) = env::var_os("RUSTUP_TOOLCHAIN") {
        rustup.arg("--toolchain").arg(toolchain);
    }
    let status = rustup
        .status()
        .expect("cannot run rustup to add the wasm32-wasip2 target");
    assert!(status.success(), "rustup target add {TARGET} failed");
}

fn has_std(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
    })
}
