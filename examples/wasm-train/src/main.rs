//! Fits `y = w·x + b` to a CSV by full-batch gradient descent, logs the mean squared error of
//! every epoch on the run, and saves the model in the `linear` flavor (served by the built-in
//! `linear` plugin) to `/output/model`, whose files become the run's artifacts.
//!
//! It runs inside wasmflow's sandbox: the project directory is its working directory
//! (read-only), `/output` is the one place it can write, and there is no network; the
//! `wasmflow:plugin/tracking` import reaches the run instead.

use std::fmt::Write as _;
use std::process::ExitCode;

wit_bindgen::generate!({
    path: "../../plugins/sdk/wit",
    world: "training-program",
    generate_all,
});

use wasmflow::plugin::tracking;

struct Args {
    learning_rate: f64,
    epochs: u32,
    data: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        learning_rate: 0.1,
        epochs: 50,
        data: "data.csv".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--learning-rate" => {
                args.learning_rate = value
                    .parse()
                    .map_err(|_| format!("bad --learning-rate '{value}'"))?
            }
            "--epochs" => {
                args.epochs = value
                    .parse()
                    .map_err(|_| format!("bad --epochs '{value}'"))?
            }
            "--data" => args.data = value,
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(args)
}

/// A CSV with a header: feature columns, then the target.
struct Dataset {
    features: Vec<String>,
    xs: Vec<Vec<f64>>,
    ys: Vec<f64>,
}

fn read_csv(path: &str) -> Result<Dataset, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read '{path}': {e}"))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| format!("'{path}' is empty"))?
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    if header.len() < 2 {
        return Err(format!(
            "'{path}' needs feature columns and a target column"
        ));
    }
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for (i, line) in lines.enumerate() {
        let values: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("'{path}' line {}: not numbers: '{line}'", i + 2))?;
        if values.len() != header.len() {
            return Err(format!("'{path}' line {}: {} values", i + 2, values.len()));
        }
        ys.push(values[values.len() - 1]);
        xs.push(values[..values.len() - 1].to_vec());
    }
    let features = header[..header.len() - 1].to_vec();
    Ok(Dataset { features, xs, ys })
}

fn mse(w: &[f64], b: f64, xs: &[Vec<f64>], ys: &[f64]) -> f64 {
    let sum: f64 = xs
        .iter()
        .zip(ys)
        .map(|(x, y)| {
            let p: f64 = b + w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>();
            (p - y) * (p - y)
        })
        .sum();
    sum / xs.len() as f64
}

fn train() -> Result<(), String> {
    let args = parse_args()?;
    let Dataset { features, xs, ys } = read_csv(&args.data)?;
    let (n, d) = (xs.len() as f64, features.len());
    let (mut w, mut b) = (vec![0.0; d], 0.0);
    for epoch in 0..args.epochs {
        let mut grad_w = vec![0.0; d];
        let mut grad_b = 0.0;
        for (x, y) in xs.iter().zip(&ys) {
            let err = b + w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() - y;
            for (g, x) in grad_w.iter_mut().zip(x) {
                *g += 2.0 * err * x / n;
            }
            grad_b += 2.0 * err / n;
        }
        for (w, g) in w.iter_mut().zip(&grad_w) {
            *w -= args.learning_rate * g;
        }
        b -= args.learning_rate * grad_b;
        let loss = mse(&w, b, &xs, &ys);
        tracking::log_metric("mse", loss, i64::from(epoch))?;
        if epoch % 10 == 0 || epoch + 1 == args.epochs {
            println!("epoch {epoch}: mse {loss:.6}");
        }
    }
    let loss = mse(&w, b, &xs, &ys);
    tracking::log_metric("final_mse", loss, 0)?;
    tracking::set_tag("model.flavor", "linear")?;
    save_model(&features, &w, b)?;
    println!("w = {w:?}, b = {b:.4}, mse = {loss:.6}; model saved to /output/model");
    Ok(())
}

/// The `linear` flavor: an MLmodel naming `model.json`, which holds the coefficients.
fn save_model(features: &[String], w: &[f64], b: f64) -> Result<(), String> {
    let dir = "/output/model";
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
    let names: Vec<String> = features.iter().map(|f| format!("{f:?}")).collect();
    let coefs: Vec<String> = w.iter().map(|w| format!("{w:?}")).collect();
    let model = format!(
        "{{\"features\": [{}], \"coefficients\": [[{}]], \"intercept\": [{b:?}], \"outputs\": [\"y\"], \"link\": \"identity\"}}\n",
        names.join(", "),
        coefs.join(", ")
    );
    let mut inputs = String::from("[");
    for (i, f) in features.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        write!(
            inputs,
            "{sep}{{\"type\": \"double\", \"name\": {f:?}, \"required\": true}}"
        )
        .unwrap();
    }
    inputs.push(']');
    let mlmodel = format!(
        "artifact_path: model\nflavors:\n  linear:\n    data: model.json\nsignature:\n  inputs: '{inputs}'\n  outputs: '[{{\"type\": \"double\", \"name\": \"y\", \"required\": true}}]'\n"
    );
    for (name, text) in [("model.json", model), ("MLmodel", mlmodel)] {
        std::fs::write(format!("{dir}/{name}"), text)
            .map_err(|e| format!("cannot write {dir}/{name}: {e}"))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match train() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("train: {e}");
            ExitCode::FAILURE
        }
    }
}
