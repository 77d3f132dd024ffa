//! A plain WASI program: installing it as a plugin must be refused.

fn main() {
    println!("not a flavor plugin");
}
