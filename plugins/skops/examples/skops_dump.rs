//! Prints the node tree of a skops file: `cargo run --example skops_dump -- model.skops`.

use wasmflow_skops::{Node, Value};

fn show(node: &Node, indent: usize, key: &str) {
    let pad = " ".repeat(indent);
    let what = match &node.value {
        Value::Json(j) => format!("= {j:?}"),
        Value::Array(a) => format!("array {} {:?}", a.dtype.describe(), a.shape),
        Value::ObjectArray { shape, .. } => format!("object array {shape:?}"),
        _ => String::new(),
    };
    println!("{pad}{key}{} [{}] {what}", node.qualname(), node.loader);
    match &node.value {
        Value::Object(Some(a)) => show(a, indent + 2, ""),
        Value::Reduce { args, state } => {
            show(args, indent + 2, "args: ");
            show(state, indent + 2, "state: ");
        }
        Value::Dict { entries, .. } => {
            for (k, v) in entries {
                show(v, indent + 2, &format!("{k}: "));
            }
        }
        Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::ObjectArray { items: v, .. } => {
            for (i, n) in v.iter().enumerate() {
                show(n, indent + 2, &format!("[{i}] "));
            }
        }
        _ => {}
    }
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: skops_dump FILE");
    let bytes = std::fs::read(&path).expect("read");
    match wasmflow_skops::read(&bytes) {
        Ok(f) => {
            println!("protocol {:?}, skops {:?}", f.protocol, f.skops_version);
            show(&f.root, 0, "");
        }
        Err(e) => println!("error: {e}"),
    }
}
