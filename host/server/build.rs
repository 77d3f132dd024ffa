//! The web UI's files are compiled in with `include_dir!`, which stable Rust cannot tell cargo
//! about: without this, editing a UI file would not rebuild the binary.

fn main() {
    println!("cargo:rerun-if-changed=ui/assets");
}
