//! A `.wasm` entry point for the runtime's tests: tries what the `wasi` executor's sandbox must
//! allow and refuse, and reports each outcome as a tag on its run. `spin` loops until stopped.

wit_bindgen::generate!({
    path: "../../sdk/wit",
    world: "training-program",
    generate_all,
});

use wasmflow::plugin::tracking;

fn outcome<T, E: std::fmt::Display>(result: Result<T, E>) -> String {
    match result {
        Ok(_) => "allowed".into(),
        Err(e) => format!("denied: {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("spin") {
        let mut n: u64 = 0;
        loop {
            n = n.wrapping_add(1);
            std::hint::black_box(n);
        }
    }
    let probes = [
        ("args", Ok::<String, String>(args[1..].join(" "))),
        (
            "read_project",
            std::fs::read_to_string("MLproject").map_err(|e| e.to_string()),
        ),
        (
            "write_project",
            Ok(outcome(std::fs::write("written.txt", "x"))),
        ),
        (
            "write_project_mount",
            Ok(outcome(std::fs::write("/project/written.txt", "x"))),
        ),
        ("read_etc", Ok(outcome(std::fs::read("/etc/passwd")))),
        (
            "connect",
            Ok(outcome(std::net::TcpStream::connect("127.0.0.1:9"))),
        ),
        (
            "env_home",
            Ok(std::env::var("HOME").unwrap_or_else(|_| "unset".into())),
        ),
        (
            "env_run_id",
            Ok(std::env::var("MLFLOW_RUN_ID").unwrap_or_else(|_| "unset".into())),
        ),
        (
            "write_output",
            Ok(outcome(std::fs::write("/output/probe.txt", "probed"))),
        ),
    ];
    for (key, value) in probes {
        let value = value.unwrap_or_else(|e| format!("error: {e}"));
        tracking::set_tag(&format!("probe.{key}"), value.trim()).unwrap();
    }
    tracking::log_metric("probe.metric", 1.5, 2).unwrap();
    // WASI 0.2's exit carries success or failure only: any non-zero code arrives as 1.
    std::process::exit(3);
}
