//! The CUDA allowed-token kernel (`sampling::AllowedTokens`) against the
//! same mask built from MLX ops, then what one constrained sampling step
//! costs each way (upload the bit words, mask the logits, argmax, wait), with
//! the kernel reading the words in place from pinned host memory
//! (`sampling::MaskWords`, what decoding does with
//! `MLX_NAPI_MASK_KERNEL=mapped`), and with the kernel on words
//! already on the device (no upload: the floor).
//!
//! Exits non-zero when an output differs (all must agree bit for bit: each
//! writes the logit's float32 value or −∞), when the pinned words cannot be
//! made, or when not on the CUDA backend.
//!
//! `MLX_NAPI_MASK_KERNEL=mapped cargo run --release -p mlx-napi-core --example allowed_mask_check -- [iters]`

use std::time::Instant;

use mlx_napi_core::sampling::{mapped_words, AllowedTokens, MaskWords};
use mlx_rs::{ops, ops::indexing::IndexOp, random, transforms, Array, Dtype};

type Failure = Box<dyn std::error::Error>;
/// A named set of allowed ids.
type IdSet = (&'static str, Box<dyn Fn(usize) -> bool>);

/// Bit words allowing every id for which `allowed(id)` holds.
fn words(vocab: usize, allowed: impl Fn(usize) -> bool) -> Vec<u32> {
    let mut w = vec![0u32; vocab.div_ceil(32)];
    for id in (0..vocab).filter(|&id| allowed(id)) {
        w[id / 32] |= 1 << (id % 32);
    }
    w
}

fn median_us(mut f: impl FnMut() -> Result<(), Failure>, iters: usize) -> Result<f64, Failure> {
    for _ in 0..10 {
        f()?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn main() -> Result<(), Failure> {
    let iters: usize = std::env::args().nth(1).map_or(Ok(500), |v| v.parse())?;
    mlx_napi_core::runtime::init();
    let info = mlx_napi_core::backend::backend_info()?;
    println!("backend {} ({:?})", info.backend.as_str(), info.device_name);
    if !mlx_napi_core::backend::cuda_available() {
        println!("not the CUDA backend: the kernel does not run here");
        std::process::exit(2);
    }
    if let Err(why) = mapped_words() {
        println!("FAILED: no pinned mask words: {why}");
        std::process::exit(1);
    }
    let mut failed = false;
    println!("| V | dtype | allowed | same (uploaded, mapped) | argmax same | kernel, uploaded µs/step | ops µs/step | kernel, mapped µs/step | kernel, words resident µs/step |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    // SmolLM2 / Qwen2.5 vocabularies; JSON-like sparse sets, one id, all ids.
    for vocab in [49_152usize, 151_936] {
        let sets: [IdSet; 3] = [
            ("~6 %", Box::new(|id| (id * 2_654_435_761) % 97 < 6)),
            ("1 id", Box::new(move |id| id == vocab - 3)),
            ("all", Box::new(|_| true)),
        ];
        for dtype in [Dtype::Bfloat16, Dtype::Float16, Dtype::Float32] {
            // The logits as a row of a wider batch (an offset view), as the
            // batch engine hands them over.
            let wide = random::normal::<f32>(&[2, vocab as i32], None, None, &random::key(7)?)?
                .multiply(Array::from_f32(4.0))?
                .as_dtype(dtype)?;
            let logits = wide.index((1..2, ..));
            transforms::eval([&logits])?;
            for (name, set) in &sets {
                let bits = words(vocab, set);
                let tokens = AllowedTokens::from_bits(&bits, vocab)?;
                let reference = logits.as_dtype(Dtype::Float32)?.add(tokens.additive()?)?;
                let mut mask_words = MaskWords::new(vocab);
                let same_as_reference = |ours: &Array| {
                    ours.shape() == reference.shape()
                        && ours.as_slice::<f32>() == reference.as_slice::<f32>()
                };
                let argmax = |x: &Array| -> Result<i32, Failure> {
                    Ok(ops::indexing::argmax_axis(x, -1, false)?.item_cast::<i32>())
                };
                let ours = tokens.apply_kernel(&logits)?;
                let mapped = {
                    let filled = mask_words.fill(&bits)?;
                    if !filled.is_mapped() {
                        return Err("MaskWords did not map its words".into());
                    }
                    let out = filled.apply_kernel(&logits)?;
                    transforms::eval([&out])?;
                    out
                };
                let same = (same_as_reference(&ours), same_as_reference(&mapped));
                let argmax_same = argmax(&ours)? == argmax(&reference)?
                    && argmax(&mapped)? == argmax(&reference)?;
                if !same.0 || !same.1 || !argmax_same {
                    failed = true;
                }
                // One sampling step as decoding runs it: upload, mask, argmax.
                let step = |kernel: bool| {
                    let bits = &bits;
                    let logits = &logits;
                    move || -> Result<(), Failure> {
                        let tokens = AllowedTokens::from_bits(bits, vocab)?;
                        let masked = if kernel {
                            tokens.apply_kernel(logits)?
                        } else {
                            logits.as_dtype(Dtype::Float32)?.add(tokens.additive()?)?
                        };
                        let id = ops::indexing::argmax_axis(&masked, -1, false)?;
                        transforms::eval([&id])?;
                        Ok(())
                    }
                };
                // The same with the words already on the device: what the
                // upload (a host write into MLX's managed memory) costs.
                let resident = || -> Result<(), Failure> {
                    let masked = tokens.apply_kernel(&logits)?;
                    let id = ops::indexing::argmax_axis(&masked, -1, false)?;
                    transforms::eval([&id])?;
                    Ok(())
                };
                // As decoding runs it: this step's words written in place.
                let mut in_place = || -> Result<(), Failure> {
                    let masked = mask_words.fill(&bits)?.apply_kernel(&logits)?;
                    let id = ops::indexing::argmax_axis(&masked, -1, false)?;
                    transforms::eval([&id])?;
                    Ok(())
                };
                let kernel_us = median_us(step(true), iters)?;
                let ops_us = median_us(step(false), iters)?;
                let mapped_us = median_us(&mut in_place, iters)?;
                let resident_us = median_us(resident, iters)?;
                println!(
                    "| {vocab} | {dtype:?} | {name} | {}, {} | {argmax_same} | {kernel_us:.1} | {ops_us:.1} | {mapped_us:.1} | {resident_us:.1} |",
                    same.0, same.1
                );
            }
        }
    }
    if failed {
        println!("FAILED: the kernel's mask differs from the ops' mask");
        std::process::exit(1);
    }
    println!("ok: the kernel masks exactly what the ops mask");
    Ok(())
}
