//! A corpus of malformed skops files, made here, that must give errors (never panics, hangs or
//! allocations past what the file holds), and a well-formed one that must read.

use std::io::Write;

use wasmflow_skops::{ErrorKind, Limits, Value, read, read_with_limits};
use zip::write::SimpleFileOptions;

fn zip_of(entries: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = SimpleFileOptions::default().compression_method(method);
    for (name, data) in entries {
        w.start_file(*name, options).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut h =
        format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}").into_bytes();
    h.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend(h);
    out.extend_from_slice(data);
    out
}

fn json_node(content: &str, id: u64) -> String {
    format!(
        r#"{{"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "content": {}, "is_json": true, "__id__": {id}}}"#,
        serde_like_quote(content)
    )
}

fn serde_like_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn array_node(file: &str, id: u64) -> String {
    format!(
        r#"{{"__class__": "ndarray", "__module__": "numpy", "__loader__": "NdArrayNode", "type": "numpy", "file": "{file}", "__id__": {id}}}"#
    )
}

fn object(class: &str, module: &str, attrs: &[(&str, String)], id: u64) -> String {
    let entries: Vec<String> = attrs.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
    format!(
        r#"{{"__class__": "{class}", "__module__": "{module}", "__loader__": "ObjectNode", "content": {{"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {{{}}}, "key_types": {{"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": [], "__id__": {}}}, "__id__": {}}}, "__id__": {id}}}"#,
        entries.join(", "),
        id + 1_000_000,
        id + 2_000_000
    )
}

fn with_protocol(root: &str) -> String {
    // skops writes the protocol and its version into the root node.
    let trimmed = root.trim_end().trim_end_matches('}');
    format!(r#"{trimmed}, "protocol": 2, "_skops_version": "0.16.0"}}"#)
}

fn good_file(deflate: bool) -> Vec<u8> {
    let coef: Vec<u8> = [1.0f64, 2.0, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let schema = with_protocol(&object(
        "LinearRegression",
        "sklearn.linear_model._base",
        &[
            ("coef_", array_node("1.npy", 1)),
            ("intercept_", json_node("0.5", 2)),
            ("n_features_in_", json_node("3", 3)),
        ],
        10,
    ));
    zip_of(
        &[
            ("schema.json", schema.as_bytes()),
            ("1.npy", &npy("'<f8'", "(3,)", &coef)),
        ],
        deflate,
    )
}

fn schema_only(schema: &str) -> Vec<u8> {
    zip_of(&[("schema.json", schema.as_bytes())], false)
}

fn assert_invalid(bytes: &[u8], what: &str) -> String {
    match read(bytes) {
        Ok(_) => panic!("{what}: read a malformed file"),
        Err(e) => {
            eprintln!("{what}: {e}");
            e.message
        }
    }
}

#[test]
fn a_good_file_reads_stored_and_deflated() {
    for deflate in [false, true] {
        let f = read(&good_file(deflate)).unwrap();
        assert_eq!(f.protocol, Some(2));
        assert_eq!(
            f.root.qualname(),
            "sklearn.linear_model._base.LinearRegression"
        );
        assert_eq!(
            f.root.attr("coef_").unwrap().to_f64_vec().unwrap(),
            vec![1.0, 2.0, 3.0]
        );
        assert_eq!(f.root.attr("intercept_").unwrap().f64().unwrap(), 0.5);
        assert_eq!(f.root.attr("n_features_in_").unwrap().i64().unwrap(), 3);
        assert!(f.root.attr("nope").is_err());
    }
}

#[test]
fn truncated_and_non_zip_files() {
    let good = good_file(false);
    for cut in [0, 1, 10, good.len() / 2, good.len() - 1] {
        assert_invalid(&good[..cut], &format!("truncated at {cut}"));
    }
    assert_invalid(b"PK\x03\x04 this is not really a zip", "garbage");
    // Corrupt the middle of the file (the array's data and headers).
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 16] {
        *b ^= 0xff;
    }
    let _ = read(&bad); // may or may not be detected, but must not panic
}

#[test]
fn missing_schema_and_missing_array_file() {
    let m = assert_invalid(&zip_of(&[("x.npy", b"hello")], false), "no schema");
    assert!(m.contains("schema.json"));
    let schema = with_protocol(&object(
        "X",
        "sklearn.x",
        &[("a", array_node("missing.npy", 1))],
        10,
    ));
    let m = assert_invalid(&schema_only(&schema), "array file missing");
    assert!(m.contains("missing.npy"));
    assert_invalid(
        &schema_only("{\"__loader__\": \"ObjectNode\""),
        "truncated json",
    );
    assert_invalid(&schema_only("[1, 2]"), "not a node");
    assert_invalid(&schema_only("{\"__class__\": \"X\"}"), "no loader");
    assert_invalid(
        &zip_of(&[("schema.json", &[0xff, 0xfe, 0x00])], false),
        "not utf-8",
    );
}

#[test]
fn cycles_and_unknown_references() {
    // A node whose child has its own __id__: skops would resolve it to the node being built.
    let inner = object("X", "sklearn.x", &[], 7);
    let cyclic = object("X", "sklearn.x", &[("self", inner)], 7);
    let m = assert_invalid(&schema_only(&with_protocol(&cyclic)), "cycle");
    assert!(m.contains("cycle"));
    let cached =
        r#"{"__class__": "X", "__module__": "m", "__loader__": "CachedNode", "__id__": 99}"#;
    let root = with_protocol(&object("X", "sklearn.x", &[("a", cached.to_string())], 1));
    assert_invalid(&schema_only(&root), "cached node to an unknown id");
    // A repeated id stands for the first node, as skops reads it.
    let a = json_node("1", 5);
    let b = json_node("2", 5);
    let root = with_protocol(&object("X", "sklearn.x", &[("a", a), ("b", b)], 1));
    let f = read(&schema_only(&root)).unwrap();
    assert_eq!(f.root.attr("b").unwrap().i64().unwrap(), 1);
}

#[test]
fn absurd_nesting() {
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    assert_invalid(&schema_only(&deep), "10,000 nested lists");
    let mut node = json_node("1", 0);
    for i in 1..10_000u64 {
        node = format!(
            r#"{{"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": [{node}], "__id__": {i}}}"#
        );
    }
    assert_invalid(&schema_only(&node), "10,000 nested nodes");
    // 120 levels pass the JSON depth (two levels each) but not the node depth.
    let mut node = json_node("1", 0);
    for i in 1..120u64 {
        node = format!(
            r#"{{"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": [{node}], "__id__": {i}}}"#
        );
    }
    let m = assert_invalid(&schema_only(&node), "120 nested nodes");
    assert!(m.contains("nodes nested more than"), "{m}");
    // A JsonNode whose own content nests deeply.
    let content = "[".repeat(5_000) + &"]".repeat(5_000);
    assert_invalid(&schema_only(&json_node(&content, 1)), "deep json content");
}

fn with_array(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let schema = with_protocol(&object(
        "X",
        "sklearn.x",
        &[("a", array_node("1.npy", 1))],
        10,
    ));
    zip_of(
        &[
            ("schema.json", schema.as_bytes()),
            ("1.npy", &npy(descr, shape, data)),
        ],
        false,
    )
}

#[test]
fn arrays_larger_than_their_data_and_absurd_shapes() {
    let data = [0u8; 24];
    assert!(read(&with_array("'<f8'", "(3,)", &data)).is_ok());
    assert_invalid(
        &with_array("'<f8'", "(4,)", &data),
        "shape larger than data",
    );
    assert_invalid(
        &with_array("'<f8'", "(2,)", &data),
        "data larger than shape",
    );
    assert_invalid(
        &with_array("'<f8'", "(1099511627776,)", &data),
        "2^40 elements",
    );
    assert_invalid(
        &with_array("'<f8'", "(4294967296, 4294967296, 4294967296)", &data),
        "overflowing shape",
    );
    assert_invalid(&with_array("'<f8'", "(-3,)", &data), "negative size");
    assert_invalid(
        &with_array("'<U99999999999999'", "(1,)", &data),
        "absurd string size",
    );
    assert_invalid(&with_array("'<c16'", "(1,)", &data[..16]), "complex dtype");
    assert_invalid(&with_array("'|O'", "(3,)", &data), "object dtype");
    assert_invalid(&with_array("'<f3'", "(1,)", &data), "bad float size");
    assert_invalid(&with_array("'what'", "(1,)", &data), "garbage dtype");
    assert_invalid(
        &with_array("[('a', [('b', '<f8')])]", "(1,)", &data),
        "nested struct",
    );
    assert_invalid(
        &with_array("'|V0'", "(1099511627776,)", &[]),
        "zero-sized items",
    );
    assert_invalid(&with_array("'<f8'", "(3", &data), "unterminated header");
    // Bad magic / header length past the end.
    let schema = with_protocol(&object(
        "X",
        "sklearn.x",
        &[("a", array_node("1.npy", 1))],
        10,
    ));
    for bad in [
        &b"\x93NUMPY\x01\x00\xff\xff{"[..],
        b"\x93NUMPX\x01\x00\x00\x00",
        b"\x93NUMPY\x09\x00\x00\x00",
    ] {
        let z = zip_of(&[("schema.json", schema.as_bytes()), ("1.npy", bad)], false);
        assert_invalid(&z, "bad npy header");
    }
}

#[test]
fn entries_past_the_limits() {
    let big = vec![0u8; 4 << 20];
    let schema = with_protocol(&object(
        "X",
        "sklearn.x",
        &[("a", array_node("1.npy", 1))],
        10,
    ));
    let file = zip_of(
        &[
            ("schema.json", schema.as_bytes()),
            ("1.npy", &npy("'<f8'", "(524288,)", &big)),
        ],
        true,
    );
    assert!(file.len() < 100_000, "deflate should shrink zeros");
    assert!(read(&file).is_ok());
    let limits = Limits {
        max_entry_bytes: 1 << 20,
        ..Limits::default()
    };
    let e = read_with_limits(&file, &limits).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(e.message.contains("more than the limit"), "{}", e.message);
    let limits = Limits {
        max_schema_bytes: 16,
        ..Limits::default()
    };
    assert!(read_with_limits(&file, &limits).is_err());
    let limits = Limits {
        max_nodes: 3,
        ..Limits::default()
    };
    assert!(read_with_limits(&good_file(false), &limits).is_err());
}

#[test]
fn unknown_loaders_and_bad_nodes() {
    let root = with_protocol(
        r#"{"__class__": "X", "__module__": "m", "__loader__": "EvalNode", "content": "os.system('x')", "__id__": 1}"#,
    );
    let e = read(&schema_only(&root)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    let root = with_protocol(
        r#"{"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": [1], "__id__": 1}"#,
    );
    assert_invalid(&schema_only(&root), "dict with a list content");
    let root = with_protocol(
        r#"{"__class__": "ndarray", "__module__": "numpy", "__loader__": "NdArrayNode", "type": "json", "content": [], "shape": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": [{"__class__": "int", "__module__": "builtins", "__loader__": "JsonNode", "content": "1000000000000", "__id__": 3}], "__id__": 2}, "__id__": 1}"#,
    );
    assert_invalid(
        &schema_only(&root),
        "object array shape larger than its items",
    );
    let root = with_protocol(
        r#"{"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "content": "{bad json", "__id__": 1}"#,
    );
    assert_invalid(&schema_only(&root), "bad json content");
    // Opaque nodes are kept, not interpreted.
    let root = with_protocol(
        r#"{"__class__": "RandomState", "__module__": "numpy.random.mtrand", "__loader__": "RandomStateNode", "content": {"anything": 1}, "__id__": 1}"#,
    );
    assert!(matches!(
        read(&schema_only(&root)).unwrap().root.value,
        Value::Opaque
    ));
}

fn sparse_file(shape: &[i64; 2], data: &[f64], indices: &[i32], indptr: &[i32]) -> Vec<u8> {
    let bytes = |v: Vec<u8>| v;
    let npz = zip_of(
        &[
            (
                "indices.npy",
                &npy(
                    "'<i4'",
                    &format!("({},)", indices.len()),
                    &bytes(indices.iter().flat_map(|v| v.to_le_bytes()).collect()),
                ),
            ),
            (
                "indptr.npy",
                &npy(
                    "'<i4'",
                    &format!("({},)", indptr.len()),
                    &bytes(indptr.iter().flat_map(|v| v.to_le_bytes()).collect()),
                ),
            ),
            ("format.npy", &npy("'|S3'", "()", b"csr")),
            (
                "shape.npy",
                &npy(
                    "'<i8'",
                    "(2,)",
                    &bytes(shape.iter().flat_map(|v| v.to_le_bytes()).collect()),
                ),
            ),
            (
                "data.npy",
                &npy(
                    "'<f8'",
                    &format!("({},)", data.len()),
                    &bytes(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
                ),
            ),
        ],
        true,
    );
    let node = r#"{"__class__": "csr_matrix", "__module__": "scipy.sparse._csr", "__loader__": "SparseMatrixNode", "type": "scipy", "file": "1.npz", "__id__": 1}"#;
    let schema = with_protocol(&object("X", "sklearn.x", &[("m", node.to_string())], 10));
    zip_of(
        &[("schema.json", schema.as_bytes()), ("1.npz", &npz)],
        false,
    )
}

#[test]
fn sparse_matrices() {
    // [[1, 0, 2], [0, 0, 3]]
    let f = read(&sparse_file(
        &[2, 3],
        &[1.0, 2.0, 3.0],
        &[0, 2, 2],
        &[0, 2, 3],
    ))
    .unwrap();
    let m = f.root.attr("m").unwrap();
    assert_eq!(m.shape().unwrap(), vec![2, 3]);
    assert_eq!(m.to_f64_vec().unwrap(), vec![1.0, 0.0, 2.0, 0.0, 0.0, 3.0]);
    assert_invalid(
        &sparse_file(&[2, 3], &[1.0, 2.0, 3.0], &[0, 5, 2], &[0, 2, 3]),
        "column index out of range",
    );
    assert_invalid(
        &sparse_file(&[2, 3], &[1.0, 2.0, 3.0], &[0, 2, 2], &[0, 3, 2]),
        "decreasing indptr",
    );
    assert_invalid(
        &sparse_file(&[2, 3], &[1.0, 2.0, 3.0], &[0, 2, 2], &[0, 2, 9]),
        "indptr past the data",
    );
    assert_invalid(
        &sparse_file(&[2, 3], &[1.0, 2.0, 3.0], &[0, 2, 2], &[0, 2]),
        "short indptr",
    );
    assert_invalid(
        &sparse_file(&[-2, 3], &[1.0], &[0], &[0, 1]),
        "negative shape",
    );
    // A huge declared shape reads (it is sparse) but refuses to densify.
    let f = read(&sparse_file(&[1, 1 << 40], &[1.0], &[0], &[0, 1])).unwrap();
    let m = f.root.attr("m").unwrap();
    assert_eq!(m.shape().unwrap(), vec![1, 1 << 40]);
    assert!(m.to_f64_vec().is_err());
}

#[test]
fn random_damage_to_schema_and_arrays() {
    let coef: Vec<u8> = [1.0f64, 2.0, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let schema = with_protocol(&object(
        "LinearRegression",
        "sklearn.linear_model._base",
        &[
            ("coef_", array_node("1.npy", 1)),
            ("intercept_", json_node("[0.5, NaN]", 2)),
            ("n_features_in_", json_node("3", 3)),
        ],
        10,
    ));
    let array = npy("'<f8'", "(3,)", &coef);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut ok, mut err) = (0, 0);
    for _ in 0..3000 {
        let mut s = schema.clone().into_bytes();
        let mut a = array.clone();
        for _ in 0..(1 + next() % 4) {
            if next() % 2 == 0 {
                let i = (next() as usize) % s.len();
                s[i] = (next() % 256) as u8;
            } else {
                let i = (next() as usize) % a.len();
                a[i] = (next() % 256) as u8;
            }
        }
        match read(&zip_of(&[("schema.json", &s), ("1.npy", &a)], false)) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    eprintln!("damaged files: {ok} read, {err} refused");
    assert!(err > 0);
}
