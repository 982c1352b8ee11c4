//! Per-step cost of each sampler stage, eager and under `mlx compile`, on the
//! default device: argmax, temperature + categorical, and each truncation filter
//! added on top (top-k 50, top-p 0.9, min-p 0.05). Each step is evaluated on its
//! own (as in the decode loop), so the numbers include launch overhead.
//!
//! `cargo run --release -p mlx-napi-core --example sampler_compile_bench -- [vocab] [iters]`

use std::time::Instant;

use mlx_napi_core::sampling::{apply_min_p, apply_top_k, apply_top_p, Sampler, SamplerConfig};
use mlx_rs::{error::Exception, ops, random, transforms::compile::compile, Array};

type Stage = fn(&[Array]) -> Result<Vec<Array>, Exception>;

fn wrap(e: mlx_napi_core::Error) -> Exception {
    Exception::custom(e.to_string())
}

fn scaled(args: &[Array]) -> Result<Array, Exception> {
    args[0].multiply(Array::from_f32(1.0 / 0.7))
}

fn argmax(args: &[Array]) -> Result<Vec<Array>, Exception> {
    Ok(vec![ops::indexing::argmax_axis(&args[0], -1, false)?])
}

fn categorical(args: &[Array]) -> Result<Vec<Array>, Exception> {
    Ok(vec![random::categorical(
        &scaled(args)?,
        -1,
        None,
        &args[1],
    )?])
}

fn top_k(args: &[Array]) -> Result<Vec<Array>, Exception> {
    let x = apply_top_k(&scaled(args)?, 50).map_err(wrap)?;
    Ok(vec![random::categorical(&x, -1, None, &args[1])?])
}

fn top_p(args: &[Array]) -> Result<Vec<Array>, Exception> {
    let x = apply_top_p(&scaled(args)?, 0.9).map_err(wrap)?;
    Ok(vec![random::categorical(&x, -1, None, &args[1])?])
}

fn min_p(args: &[Array]) -> Result<Vec<Array>, Exception> {
    let x = apply_min_p(&scaled(args)?, 0.05).map_err(wrap)?;
    Ok(vec![random::categorical(&x, -1, None, &args[1])?])
}

fn all(args: &[Array]) -> Result<Vec<Array>, Exception> {
    let x = apply_top_k(&scaled(args)?, 50).map_err(wrap)?;
    let x = apply_top_p(&x, 0.9).map_err(wrap)?;
    let x = apply_min_p(&x, 0.05).map_err(wrap)?;
    Ok(vec![random::categorical(&x, -1, None, &args[1])?])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let vocab: i32 = args.first().map_or(Ok(49152), |v| v.parse())?;
    let iters: usize = args.get(1).map_or(Ok(200), |v| v.parse())?;
    let logits = random::normal::<f32>(&[1, vocab], None, None, &random::key(0)?)?
        .multiply(Array::from_f32(3.0))?;
    logits.eval()?;
    let stages: [(&str, Stage); 6] = [
        ("argmax", argmax),
        ("temp+categorical", categorical),
        ("+top-k 50", top_k),
        ("+top-p 0.9", top_p),
        ("+min-p 0.05", min_p),
        ("all filters", all),
    ];
    println!("vocab {vocab}, {iters} steps each; ms/step (eager | compiled)");
    for (name, stage) in stages {
        let mut compiled = compile(stage, None);
        let mut key = random::key(1)?;
        let mut time = |use_compiled: bool| -> Result<f64, Exception> {
            // Round 0 warms up (kernel compilation); round 1 is timed.
            let mut elapsed = 0.0;
            for round in 0..2 {
                let start = Instant::now();
                for _ in 0..iters {
                    let (next, draw) = random::split(&key, 2)?;
                    key = next;
                    let inputs = [logits.clone(), draw];
                    let out = if use_compiled {
                        compiled(&inputs)?
                    } else {
                        stage(&inputs)?
                    };
                    out[0].eval()?;
                }
                if round == 1 {
                    elapsed = start.elapsed().as_secs_f64() * 1e3 / iters as f64;
                }
            }
            Ok(elapsed)
        };
        let eager = time(false)?;
        let fused = time(true)?;
        println!("{name:18} {eager:8.4} | {fused:8.4}");
    }

    // The sampler exactly as the decode loop calls it (top-k gathers the k best
    // before the other filters and the draw).
    println!("Sampler::sample, ms/step");
    let base = SamplerConfig {
        temperature: 0.7,
        seed: Some(1),
        ..SamplerConfig::default()
    };
    let configs = [
        (
            "greedy",
            SamplerConfig {
                temperature: 0.0,
                ..base.clone()
            },
        ),
        ("temp 0.7", base.clone()),
        (
            "+top-p 0.9",
            SamplerConfig {
                top_p: Some(0.9),
                ..base.clone()
            },
        ),
        (
            "+top-k 50",
            SamplerConfig {
                top_k: Some(50),
                ..base.clone()
            },
        ),
        (
            "all filters",
            SamplerConfig {
                top_p: Some(0.9),
                top_k: Some(50),
                min_p: Some(0.05),
                repetition_penalty: Some(1.1),
                ..base.clone()
            },
        ),
    ];
    for (name, config) in configs {
        let mut sampler = Sampler::new(config, vocab as usize, 1, &[])?;
        let mut per_step = 0.0;
        for round in 0..2 {
            let start = Instant::now();
            for _ in 0..iters {
                sampler.sample(&logits)?.eval()?;
            }
            if round == 1 {
                per_step = start.elapsed().as_secs_f64() * 1e3 / iters as f64;
            }
        }
        println!("{name:18} {per_step:8.4}");
    }
    Ok(())
}
