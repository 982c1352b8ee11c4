//! The CUDA padded decode attention (`nn::padded_attention`) against MLX's
//! masked attention on the same inputs, then the cost of a batch step's
//! attention both ways (and unmasked, MLX's fused kernel) per layer.
//!
//! Exits non-zero when an output differs beyond the dtype's tolerance, or
//! when the kernel does not apply (not on the CUDA backend).
//!
//! `cargo run --release -p mlx-napi-core --example padded_attention_check -- [iters]`

use std::time::Instant;

use mlx_napi_core::nn::{attention, padded_attention, AttentionMask};
use mlx_rs::{ops, random, transforms, Array, Dtype};

struct Case {
    batch: i32,
    heads: i32,
    kv_heads: i32,
    keys: i32,
    capacity: i32,
    dim: i32,
    dtype: Dtype,
}

/// Left padding per row, some rows without, one with all but its last key.
fn paddings(batch: i32, keys: i32) -> Vec<i32> {
    (0..batch)
        .map(|b| match b % 4 {
            0 => 0,
            1 => keys - 1,
            2 => (b * 7) % keys,
            _ => keys / 3,
        })
        .collect()
}

type Inputs = (Array, Array, Array, Array, Array);

fn inputs(c: &Case, seed: u64) -> Result<Inputs, Box<dyn std::error::Error>> {
    let part = |i: u64| random::key(seed * 3 + i);
    // Queries as a transposed view ([B, 1, H, D] → [B, H, 1, D]) and keys as
    // a slice of a larger buffer, as a decoder layer hands them over.
    let q = random::normal::<f32>(&[c.batch, 1, c.heads, c.dim], None, None, &part(0)?)?
        .as_dtype(c.dtype)?
        .transpose_axes(&[0, 2, 1, 3])?;
    let buffer = |i: u64| -> Result<Array, Box<dyn std::error::Error>> {
        let full = random::normal::<f32>(
            &[c.batch, c.kv_heads, c.capacity, c.dim],
            None,
            None,
            &part(i)?,
        )?
        .as_dtype(c.dtype)?;
        Ok(mlx_rs::ops::indexing::TryIndexOp::try_index(
            &full,
            (.., .., ..c.keys),
        )?)
    };
    let (k, v) = (buffer(1)?, buffer(2)?);
    let pads = paddings(c.batch, c.keys);
    let padding = Array::from_slice(&pads, &[c.batch]);
    let slots = ops::arange::<_, i32>(0, c.keys, None)?.reshape(&[1, c.keys])?;
    let mask = slots
        .ge(padding.reshape(&[c.batch, 1])?)?
        .reshape(&[c.batch, 1, 1, c.keys])?;
    transforms::eval([&q, &k, &v, &padding, &mask])?;
    Ok((q, k, v, padding, mask))
}

fn median_ms(
    mut f: impl FnMut() -> Result<(), Box<dyn std::error::Error>>,
    iters: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    f()?;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iters: usize = std::env::args().nth(1).map_or(Ok(50), |v| v.parse())?;
    mlx_napi_core::runtime::init();
    let info = mlx_napi_core::backend::backend_info()?;
    println!("backend {} ({:?})", info.backend.as_str(), info.device_name);
    let cases = [
        // Qwen2.5-0.5B: 14 heads over 2, head 64.
        Case {
            batch: 16,
            heads: 14,
            kv_heads: 2,
            keys: 200,
            capacity: 256,
            dim: 64,
            dtype: Dtype::Bfloat16,
        },
        Case {
            batch: 16,
            heads: 14,
            kv_heads: 2,
            keys: 1500,
            capacity: 1536,
            dim: 64,
            dtype: Dtype::Float16,
        },
        // Llama-3.1-8B: 32 over 8, head 128.
        Case {
            batch: 16,
            heads: 32,
            kv_heads: 8,
            keys: 200,
            capacity: 256,
            dim: 128,
            dtype: Dtype::Bfloat16,
        },
        Case {
            batch: 4,
            heads: 32,
            kv_heads: 8,
            keys: 4000,
            capacity: 4096,
            dim: 128,
            dtype: Dtype::Bfloat16,
        },
        // Gemma 3: head 256; float32 (the CPU default dtype elsewhere).
        Case {
            batch: 3,
            heads: 8,
            kv_heads: 4,
            keys: 77,
            capacity: 256,
            dim: 256,
            dtype: Dtype::Float32,
        },
        Case {
            batch: 64,
            heads: 14,
            kv_heads: 2,
            keys: 300,
            capacity: 512,
            dim: 64,
            dtype: Dtype::Bfloat16,
        },
        Case {
            batch: 1,
            heads: 4,
            kv_heads: 4,
            keys: 1,
            capacity: 256,
            dim: 96,
            dtype: Dtype::Float16,
        },
    ];
    let mut failed = false;
    println!("| B | H/Hkv | L | D | dtype | max abs diff | kernel ms | masked ms | unmasked ms |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (n, c) in cases.iter().enumerate() {
        let (q, k, v, padding, mask) = inputs(c, n as u64 + 1)?;
        if !padded_attention::applies(&q, &k) {
            println!("the kernel does not apply to case {n} (D = {})", c.dim);
            if c.dim % 32 == 0 {
                failed = true;
            }
            continue;
        }
        let scale = 1.0 / (c.dim as f32).sqrt();
        let ours = padded_attention::attention(&q, &k, &v, scale, &padding)?;
        let reference = attention(&q, &k, &v, scale, &AttentionMask::Array(mask.clone()))?;
        let diff = ours
            .as_dtype(Dtype::Float32)?
            .subtract(reference.as_dtype(Dtype::Float32)?)?
            .abs()?
            .max(None)?
            .item_cast::<f32>();
        let tolerance = match c.dtype {
            Dtype::Float32 => 1e-4,
            Dtype::Float16 => 4e-3,
            _ => 3e-2,
        };
        // NaN compares false: a NaN output fails too.
        let close = diff <= tolerance;
        if !close || ours.shape() != reference.shape() {
            failed = true;
        }
        // 24 layers' worth, evaluated together like a decode step.
        let per_step = |layer: &dyn Fn() -> mlx_napi_core::Result<Array>| {
            median_ms(
                || {
                    let outs = (0..24).map(|_| layer()).collect::<Result<Vec<_>, _>>()?;
                    transforms::eval(&outs)?;
                    Ok(())
                },
                iters,
            )
        };
        let kernel = per_step(&|| padded_attention::attention(&q, &k, &v, scale, &padding))?;
        let masked =
            per_step(&|| attention(&q, &k, &v, scale, &AttentionMask::Array(mask.clone())))?;
        let unmasked = per_step(&|| attention(&q, &k, &v, scale, &AttentionMask::None))?;
        println!(
            "| {} | {}/{} | {} | {} | {:?} | {diff:.2e}{} | {kernel:.3} | {masked:.3} | {unmasked:.3} |",
            c.batch,
            c.heads,
            c.kv_heads,
            c.keys,
            c.dim,
            c.dtype,
            if close { "" } else { " FAIL" },
        );
    }
    if failed {
        eprintln!("padded_attention_check: FAILED");
        std::process::exit(1);
    }
    println!("padded_attention_check: ok");
    Ok(())
}
