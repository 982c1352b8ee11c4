//! Where a Whisper model's time goes on the default device: the whole encoder
//! at batch 1 and 16, the MLX ops it is made of at the encoder's shapes (each
//! evaluated alone), and the decoder's per-token cost at batch 1 and 16 with
//! every window forced to decode `sample_len` tokens (end-of-text suppressed).
//!
//! `cargo run --release -p mlx-napi-core --example whisper_stage_bench -- MODEL_DIR [iters] [batches]`
//! (`batches`: comma-separated, default `1,16`).

use std::{path::Path, time::Instant};

use mlx_napi_core::{
    nn::fused,
    whisper::{
        decode::{decode_batch, DecodeOptions},
        LoadOptions, WhisperEngine,
    },
};
use mlx_rs::{fast, nn, ops, random, transforms::eval, Array, Dtype};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Median wall time in ms of `iters` calls of `f` after two warm-up calls.
fn median_ms(iters: usize, mut f: impl FnMut() -> Res<()>) -> Res<f64> {
    f()?;
    f()?;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn randn(shape: &[i32], dtype: Dtype, seed: u64) -> Res<Array> {
    let x = random::normal::<f32>(shape, None, None, &random::key(seed)?)?.as_dtype(dtype)?;
    x.eval()?;
    Ok(x)
}

/// A scalar in `dtype` (an `f32` scalar would promote half-precision operands).
fn scalar(value: f32, dtype: Dtype) -> Res<Array> {
    Ok(Array::from_f32(value).as_dtype(dtype)?)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .ok_or("usage: whisper_stage_bench MODEL_DIR [iters] [batches]")?;
    let iters: usize = args.get(1).map_or(Ok(10), |v| v.parse())?;
    let batches: Vec<i32> = args
        .get(2)
        .map_or("1,16", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let engine = WhisperEngine::load_dir(Path::new(dir), LoadOptions::default())?;
    let model = engine.model();
    let c = model.config().clone();
    let dtype = model.dtype();
    let (d, heads, ctx) = (
        c.n_audio_state as i32,
        c.n_audio_head as i32,
        c.n_audio_ctx as i32,
    );
    println!(
        "{dir}: d {d}, {heads} heads, {} encoder / {} decoder layers, {dtype:?}, {iters} iterations",
        c.n_audio_layer, c.n_text_layer
    );

    for &batch in &batches {
        let mel = randn(&[batch, 2 * ctx, c.n_mels as i32], Dtype::Float32, 1)?;
        let ms = median_ms(iters, || Ok(model.encode(&mel)?.eval()?))?;
        println!(
            "encoder, batch {batch:2}: {ms:8.3} ms ({:.3} ms/window)",
            ms / batch as f64
        );
    }

    // The encoder's parts at batch 1 (each op evaluated on its own).
    let head_dim = d / heads;
    let x = randn(&[1, ctx, d], dtype, 2)?;
    let hidden = randn(&[1, ctx, 4 * d], dtype, 3)?;
    let w_dd = randn(&[d, d], dtype, 4)?
        .multiply(Array::from_f32(0.02))?
        .as_dtype(dtype)?;
    let w_ffn = randn(&[4 * d, d], dtype, 5)?
        .multiply(Array::from_f32(0.02))?
        .as_dtype(dtype)?;
    let bias = randn(&[d], dtype, 6)?;
    let bias_ffn = randn(&[4 * d], dtype, 7)?;
    let norm_w = randn(&[d], dtype, 8)?;
    let q = randn(&[1, heads, ctx, head_dim], dtype, 9)?;
    let k = randn(&[1, heads, ctx, head_dim], dtype, 10)?;
    let v = randn(&[1, heads, ctx, head_dim], dtype, 11)?;
    eval([&w_dd, &w_ffn])?;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut rows: Vec<(&str, f64, f64)> = Vec::new();
    let layers = c.n_audio_layer as f64;
    let mut part =
        |name: &'static str, per_layer: f64, f: &mut dyn FnMut() -> Res<Array>| -> Res<()> {
            let ms = median_ms(iters, || Ok(f()?.eval()?))?;
            rows.push((name, ms, ms * per_layer * layers));
            Ok(())
        };
    part("sdpa (fast)", 1.0, &mut || {
        Ok(fast::scaled_dot_product_attention(
            &q, &k, &v, scale, None, None,
        )?)
    })?;
    part("attention, matmul+softmax+matmul", 1.0, &mut || {
        let scores = q
            .multiply(scalar(scale, dtype)?)?
            .matmul(k.transpose_axes(&[0, 1, 3, 2])?)?;
        Ok(ops::softmax_axis(&scores, -1, true)?.matmul(&v)?)
    })?;
    part("addmm [L,d]x[d,d] (q,k,v,out)", 4.0, &mut || {
        Ok(ops::addmm(&bias, &x, w_dd.t(), None, None)?)
    })?;
    part("addmm [L,d]x[d,4d] (fc1)", 1.0, &mut || {
        Ok(ops::addmm(&bias_ffn, &x, w_ffn.t(), None, None)?)
    })?;
    part("addmm [L,4d]x[4d,d] (fc2)", 1.0, &mut || {
        Ok(ops::addmm(&bias, &hidden, &w_ffn, None, None)?)
    })?;
    part("gelu [L,4d] (ours: nn::fused::gelu)", 1.0, &mut || {
        Ok(fused::gelu(&hidden)?)
    })?;
    part("gelu [L,4d] (mlx-rs nn::gelu)", 1.0, &mut || {
        Ok(nn::gelu(&hidden)?)
    })?;
    part("gelu [L,4d] (erf, eager)", 1.0, &mut || {
        let inner = ops::erf(hidden.multiply(scalar(std::f32::consts::FRAC_1_SQRT_2, dtype)?)?)?;
        Ok(hidden
            .multiply(inner.add(scalar(1.0, dtype)?)?)?
            .multiply(scalar(0.5, dtype)?)?)
    })?;
    part("layer_norm [L,d]", 2.0, &mut || {
        Ok(fast::layer_norm(&x, Some(&norm_w), Some(&bias), 1e-5)?)
    })?;
    part("head merge copy [H,L,hd] -> [L,d]", 2.0, &mut || {
        Ok(q.transpose_axes(&[0, 2, 1, 3])?.reshape(&[1, ctx, d])?)
    })?;
    println!("encoder parts, batch 1 (ms per op | × its count per layer × layers):");
    for (name, ms, total) in rows {
        println!("  {name:34} {ms:8.3} | {total:8.2}");
    }

    // Decoder: every window decodes exactly `sample_len` tokens.
    let special = *engine.tokenizer().special();
    let options = DecodeOptions {
        temperature: 0.0,
        sample_len: 64,
        timestamps: false,
        suppress_tokens: (special.eot..c.n_vocab as u32).collect(),
        begin_suppress_tokens: Vec::new(),
        max_initial_timestamp: None,
        seed: None,
    };
    let prompt = [special.sot];
    for &batch in &batches {
        let features = randn(&[batch, ctx, d], dtype, 12)?;
        let mut tokens = 0;
        let ms = median_ms(iters.min(5), || {
            let out = decode_batch(model, &special, &features, &prompt, &options, None)?;
            tokens = out[0].tokens.len();
            Ok(())
        })?;
        println!(
            "decoder, batch {batch:2}: {ms:8.2} ms for {tokens} steps ({:.3} ms/step)",
            ms / tokens as f64
        );
    }
    Ok(())
}
