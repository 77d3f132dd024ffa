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
    let mut code =
        String::from("/// The plugins shipped inside the binary: (file name, component bytes).\n");
    code.push_str("pub const BUILTIN: &[Component] = &[\n");
    for name in BUILTIN {
        component_entry(
            &mut code,
            name,
            &built.join(format!("wasmflow_flavor_{name}.wasm")),
        );
    }
    code.push_str(
        "];\n\n/// The project executors shipped inside the binary: (file name, bytes).\n",
    );
    code.push_str("pub const EXECUTORS: &[Component] = &[\n");
    for name in EXECUTORS {
        component_entry(
            &mut code,
            name,
            &built.join(format!("wasmflow_executor_{name}.wasm")),
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

/// One `Component { .. }` of the generated tables, with the file's sha256.
fn component_entry(code: &mut String, name: &str, file: &Path) {
    use sha2::Digest as _;
    let wasm =
        std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let sha256: String = sha2::Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    writeln!(
        code,
        "    Component {{ name: {name:?}, wasm: include_bytes!({:?}), sha256: {sha256:?} }},",
        file.display().to_string()
    )
    .unwrap();
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
