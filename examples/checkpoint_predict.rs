//! Runs a saved seed network on points read from a safetensors file and writes its
//! outputs to another: the checkpoint API used from a program, and the minidl half of
//! `bench/pytorch_checkpoint.py`, which checks that minidl and PyTorch read each
//! other's checkpoints and compute the same outputs.
//!
//! `cargo run --release --example checkpoint_predict -- CHECKPOINT INPUTS OUTPUTS
//! [--logits] [--backend cpu|gpu]`: INPUTS holds an `[n, 2]` F32 tensor `"inputs"`;
//! OUTPUTS gets the `[n, 2]` tensor `"outputs"`. `--logits` builds the network without
//! its final Tanh (as `disc_gpu --loss ce` trains it).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use minidl::checkpoint;
use minidl::nn::Module;
use minidl::Ops;
use minidl::{seed, Backend, Cpu, Gpu};
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;

const USAGE: &str =
    "usage: checkpoint_predict CHECKPOINT INPUTS OUTPUTS [--logits] [--backend cpu|gpu]";

fn predict<B: Backend>(b: &B, files: &[String], logits: bool) -> Result<(), String> {
    let mut init = ChaCha8Rng::seed_from_u64(0);
    let mut model = if logits {
        seed::logit_network(b, &mut init)
    } else {
        seed::network(b, &mut init)
    }
    .map_err(|e| e.to_string())?;
    checkpoint::load(b, &model, &files[0]).map_err(|e| e.to_string())?;
    let path = Path::new(&files[1]);
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut tensors = checkpoint::parse(&bytes, path).map_err(|e| e.to_string())?;
    let inputs = tensors
        .remove("inputs")
        .ok_or_else(|| format!("{}: no tensor \"inputs\"", path.display()))?;
    let x = b.upload(&inputs).map_err(|e| e.to_string())?;
    let y = model.forward(b, &x).map_err(|e| e.to_string())?.clone();
    let outputs = b.download(&y).map_err(|e| e.to_string())?;
    let bytes = checkpoint::serialize(&BTreeMap::from([("outputs".to_string(), outputs)]))
        .map_err(|e| e.to_string())?;
    std::fs::write(&files[2], bytes).map_err(|e| format!("{}: {e}", files[2]))
}

fn main() -> ExitCode {
    let mut files = Vec::new();
    let (mut logits, mut gpu) = (false, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--logits" => logits = true,
            "--backend" => match args.next().as_deref() {
                Some("cpu") => gpu = false,
                Some("gpu") => gpu = true,
                _ => {
                    eprintln!("checkpoint_predict: --backend needs cpu or gpu\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            f if !f.starts_with("--") => files.push(a),
            other => {
                eprintln!("checkpoint_predict: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if files.len() != 3 {
        eprintln!("checkpoint_predict: expected 3 files\n{USAGE}");
        return ExitCode::from(2);
    }
    let result = if gpu {
        Gpu::new()
            .map_err(|e| e.to_string())
            .and_then(|g| predict(&g, &files, logits))
    } else {
        predict(&Cpu::new(), &files, logits)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("checkpoint_predict: {e}");
            ExitCode::from(1)
        }
    }
}
