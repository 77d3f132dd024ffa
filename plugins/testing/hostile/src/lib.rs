//! A plugin that misbehaves in the way its model's MLmodel section asks, so the runtime's tests
//! can check that each misbehaviour fails alone and leaves the host serving.

use serde::Deserialize;
use wasmflow_plugin_sdk::tensor::Dense;
use wasmflow_plugin_sdk::{
    Column, Data, Error, Guest, GuestModel, Model, PluginInfo, Tensor, Values,
};

struct Plugin;

impl Guest for Plugin {
    type Model = Hostile;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            loads: vec!["hostile".into()],
            description: "misbehaves on request (tests only)".into(),
        }
    }
}

#[derive(Deserialize)]
struct Config {
    section: Section,
}

#[derive(Deserialize)]
struct Section {
    /// What `predict` does; `echo` behaves.
    behavior: String,
    /// Misbehave in `load` instead.
    #[serde(default)]
    on_load: bool,
}

pub struct Hostile {
    behavior: String,
}

impl GuestModel for Hostile {
    fn load(config: String) -> Result<Model, Error> {
        let config: Config =
            serde_json::from_str(&config).map_err(|e| Error::invalid_model(e.to_string()))?;
        let model = Hostile {
            behavior: config.section.behavior,
        };
        if config.section.on_load {
            model.misbehave(Data::Table(Vec::new()))?;
        }
        Ok(Model::new(model))
    }

    fn signature(&self) -> Option<String> {
        None
    }

    fn predict(&self, input: Data, _params: Option<String>) -> Result<Data, Error> {
        self.misbehave(input)
    }
}

impl Hostile {
    fn misbehave(&self, input: Data) -> Result<Data, Error> {
        match self.behavior.as_str() {
            "echo" => Ok(input),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("the hostile plugin panics on purpose"),
            "read-passwd" => match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => Ok(text_column("passwd", text)),
                Err(e) => Err(Error::invalid_input(format!(
                    "cannot read /etc/passwd: {e}"
                ))),
            },
            "escape-model-dir" => match std::fs::read_to_string("/model/../../../../etc/passwd") {
                Ok(text) => Ok(text_column("passwd", text)),
                Err(e) => Err(Error::invalid_input(format!("cannot escape /model: {e}"))),
            },
            "write-model-dir" => match std::fs::write("/model/planted.txt", b"hello") {
                Ok(()) => Ok(text_column("written", "/model/planted.txt".into())),
                Err(e) => Err(Error::invalid_input(format!("cannot write to /model: {e}"))),
            },
            "env" => Ok(text_column(
                "env",
                format!("{:?}", std::env::vars().collect::<Vec<_>>()),
            )),
            "socket" => match std::net::TcpStream::connect("127.0.0.1:22") {
                Ok(_) => Ok(text_column("socket", "connected".into())),
                Err(e) => Err(Error::invalid_input(format!("cannot connect: {e}"))),
            },
            "mismatched-columns" => Ok(Data::Table(vec![
                Column {
                    name: "a".into(),
                    values: Values::Float64(vec![1.0, 2.0]),
                },
                Column {
                    name: "b".into(),
                    values: Values::Float64(vec![1.0]),
                },
            ])),
            "bad-tensor-shape" => Ok(Data::Tensors(vec![Tensor {
                name: "t".into(),
                shape: vec![2, 3],
                values: Values::Float32(vec![1.0; 5]),
            }])),
            "negative-shape" => Ok(Data::Tensors(vec![Tensor {
                name: "t".into(),
                shape: vec![-1, 3],
                values: Values::Float32(vec![1.0; 3]),
            }])),
            "stdout" => {
                println!("a line from the plugin's stdout");
                eprintln!("a line from the plugin's stderr");
                Ok(input)
            }
            "tensor-long-product" => {
                // 8192 × 2048 by 2048 × 2048: ~34 G multiply-adds, seconds of one core, in one
                // host call; the host must stop it at the call's deadline.
                let (rows, k, n) = (8192u32, 2048u32, 2048u32);
                let layer = {
                    let weights = vec![0.5f32; (k * n) as usize];
                    Dense::create(k, n, &weights, None, true).map_err(Error::invalid_input)?
                };
                let input = vec![1.0f32; (rows * k) as usize];
                let out = layer.apply(rows, &input).map_err(Error::invalid_input)?;
                Ok(Data::Tensors(vec![Tensor {
                    name: "y".into(),
                    shape: vec![rows.into(), n.into()],
                    values: Values::Float32(out),
                }]))
            }
            "tensor-bad-shapes" => {
                // Each call lies about its sizes; every one must come back as an error.
                let mut errors = Vec::new();
                let mut note = |r: Result<(), String>| match r {
                    Ok(()) => errors.push("accepted".to_string()),
                    Err(e) => errors.push(e),
                };
                note(Dense::create(3, 4, &[1.0; 11], None, false).map(drop));
                note(Dense::create(3, 4, &[1.0; 12], Some(&[0.0; 5]), false).map(drop));
                note(Dense::create(u32::MAX, u32::MAX, &[], None, false).map(drop));
                let layer =
                    Dense::create(3, 4, &[1.0; 12], None, false).map_err(Error::internal)?;
                note(layer.apply(2, &[1.0; 5]).map(drop));
                note(layer.apply(u32::MAX, &[1.0; 3]).map(drop));
                let wide = Dense::create(0, u32::MAX, &[], None, false).map_err(Error::internal)?;
                note(wide.apply(u32::MAX, &[]).map(drop));
                Ok(text_column("errors", errors.join("\n")))
            }
            "tensor-hoard" => {
                // Layers of 4 MiB the host keeps, until it refuses one.
                let weights = vec![1.0f32; 1 << 20];
                let mut hoard = Vec::new();
                loop {
                    hoard.push(
                        Dense::create(1024, 1024, &weights, None, false)
                            .map_err(Error::invalid_input)?,
                    );
                }
            }
            other => Err(Error::unsupported(format!("unknown behavior '{other}'"))),
        }
    }
}

fn text_column(name: &str, text: String) -> Data {
    Data::Table(vec![Column {
        name: name.into(),
        values: Values::Text(vec![text]),
    }])
}

wasmflow_plugin_sdk::export_flavor!(Plugin);
