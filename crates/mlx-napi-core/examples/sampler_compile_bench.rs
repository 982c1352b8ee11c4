//! Measures whether `mlx compile` speeds up the sampler's filter chain
//! (temperature → top-k → top-p → min-p → categorical) on the default device.
//!
//! `cargo run --release -p mlx-napi-core --example sampler_compile_bench -- [vocab] [iters]`

use std::time::Instant;

use mlx_napi_core::sampling::{apply_min_p, apply_top_k, apply_top_p};
use mlx_rs::{error::Exception, random, transforms::compile::compile, Array};

fn chain(args: &[Array]) -> Result<Vec<Array>, Exception> {
    let (logits, key) = (&args[0], &args[1]);
    let x = logits.multiply(Array::from_f32(1.0 / 0.7))?;
    let x = apply_top_k(&x, 50).map_err(|e| Exception::custom(e.to_string()))?;
    let x = apply_top_p(&x, 0.9).map_err(|e| Exception::custom(e.to_string()))?;
    let x = apply_min_p(&x, 0.05).map_err(|e| Exception::custom(e.to_string()))?;
    Ok(vec![random::categorical(&x, -1, None, key)?])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let vocab: i32 = args.first().map_or(Ok(49152), |v| v.parse())?;
    let iters: usize = args.get(1).map_or(Ok(200), |v| v.parse())?;
    let logits = random::normal::<f32>(&[1, vocab], None, None, &random::key(0)?)?
        .multiply(Array::from_f32(3.0))?;
    logits.eval()?;
    let mut key = random::key(1)?;
    let mut compiled = compile(chain, None);
    for (name, use_compiled) in [
        ("eager", false),
        ("compiled", true),
        ("eager", false),
        ("compiled", true),
    ] {
        let start = Instant::now();
        for _ in 0..iters {
            let (next, draw) = random::split(&key, 2)?;
            key = next;
            let inputs = [logits.clone(), draw];
            let out = if use_compiled {
                compiled(&inputs)?
            } else {
                chain(&inputs)?
            };
            out[0].eval()?;
        }
        println!(
            "{name:9} {:.3} ms/step (vocab {vocab})",
            start.elapsed().as_secs_f64() * 1e3 / iters as f64
        );
    }
    Ok(())
}
