//! Where a constrained decoding step's extra time goes, on one model: the
//! decode loop written out several ways with the same model, caches and
//! greedy sampler, timed per token (issue #15's ≤ 5 % target).
//!
//! - `double-buffered`: step n+1 (forward + sampling) queued as one
//!   submission before token n is read — unconstrained decoding.
//! - `split`: step n+1's forward queued before the read, its sampling queued
//!   after it (a second submission) — the constrained path without a mask.
//! - `folded`: step n+1's sampling is not queued on its own but goes with
//!   step n+2's forward (one submission per token again; the read of token
//!   n+1 then waits for its sampling to run).
//! - `split+kernel` / `split+ops`: the same with a mask uploaded each step
//!   and applied by `AllowedTokens::apply` (the CUDA kernel there) / by MLX
//!   ops (`sampling::AllowedTokens`).
//! - `generate free` / `generate json`: the library's own path
//!   (`Llm::generate`, unconstrained / a JSON schema through llguidance).
//!
//! The variants take turns in rounds; prints the median µs per token of
//! each and its difference to `double-buffered`.
//!
//! `cargo run --release -p mlx-napi-core --example constrained_step_anatomy -- MODEL_DIR [rounds] [tokens]`

use std::{ops::ControlFlow, time::Instant};

use mlx_napi_core::{
    llm::{ConstraintSpec, GenerateOptions, LanguageModel, Llm, LoadOptions, Prompt},
    sampling::{AllowedTokens, Sampler, SamplerConfig},
};
use mlx_rs::{transforms, Array};

type Failure = Box<dyn std::error::Error>;

#[derive(Clone, Copy, PartialEq)]
enum Order {
    DoubleBuffered,
    Split,
    Folded,
}

#[derive(Clone, Copy, PartialEq)]
enum Mask {
    None,
    Kernel,
    Ops,
}

fn greedy(vocab: usize, prompt: &[u32]) -> Result<Sampler, Failure> {
    let config = SamplerConfig {
        temperature: 0.0,
        ..Default::default()
    };
    Ok(Sampler::new(config, vocab, 1, &[prompt])?)
}

fn token(ids: &[u32]) -> Array {
    let ids: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
    Array::from_slice(&ids, &[1, ids.len() as i32])
}

/// µs per decoded token of one hand-written loop.
fn decode_loop(
    model: &dyn LanguageModel,
    prompt: &[u32],
    tokens: usize,
    order: Order,
    mask: Mask,
) -> Result<f64, Failure> {
    let vocab = model.vocab_size();
    let mut caches = model.new_caches();
    let mut sampler = greedy(vocab, prompt)?;
    let last = prompt.len() - 1;
    model.forward(&token(&prompt[..last]), &mut caches, true)?;
    transforms::eval(caches.iter().flat_map(|c| c.arrays()))?;
    // Every id but the last allowed: the mask is real work, the tokens free.
    let mut words = vec![u32::MAX; vocab.div_ceil(32)];
    words[(vocab - 1) / 32] &= !(1 << ((vocab - 1) % 32));
    let sample = |logits: &Array, sampler: &mut Sampler| -> Result<Array, Failure> {
        let logits = logits.reshape(&[1, -1])?;
        let allowed = match mask {
            Mask::None => None,
            _ => Some(AllowedTokens::from_bits(&words, vocab)?),
        };
        let tok = match (&allowed, mask) {
            (Some(a), Mask::Ops) => {
                // The ops path whatever the backend's default.
                let masked = logits
                    .as_dtype(mlx_rs::Dtype::Float32)?
                    .add(a.additive()?)?;
                sampler.sample(&masked)?
            }
            (Some(a), _) => sampler.sample(&a.apply(&logits)?)?,
            (None, _) => sampler.sample(&logits)?,
        };
        Ok(tok)
    };
    let logits = model.forward(&token(&prompt[last..]), &mut caches, true)?;
    let mut pending = sample(&logits, &mut sampler)?;
    transforms::async_eval([&pending])?;
    let start = Instant::now();
    for _ in 0..tokens {
        let input = pending.reshape(&[1, 1])?;
        let logits = model.forward(&input, &mut caches, true)?;
        let next = match order {
            Order::DoubleBuffered => {
                let next = sample(&logits, &mut sampler)?;
                transforms::async_eval([&next])?;
                let _id = pending.item_cast::<i32>();
                next
            }
            Order::Split => {
                transforms::async_eval([&logits])?;
                let _id = pending.item_cast::<i32>();
                let next = sample(&logits, &mut sampler)?;
                transforms::async_eval([&next])?;
                next
            }
            Order::Folded => {
                // Submits token n's sampling (if not yet) with this forward.
                transforms::async_eval([&logits])?;
                let _id = pending.item_cast::<i32>();
                sample(&logits, &mut sampler)?
            }
        };
        pending = next;
    }
    let _ = pending.item_cast::<i32>();
    Ok(start.elapsed().as_secs_f64() * 1e6 / tokens as f64)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .ok_or("usage: constrained_step_anatomy MODEL_DIR [rounds] [tokens]")?;
    let rounds: usize = args.get(1).map_or(Ok(7), |v| v.parse())?;
    let tokens: usize = args.get(2).map_or(Ok(256), |v| v.parse())?;
    mlx_napi_core::runtime::init();
    let llm = Llm::load(dir, LoadOptions::default())?;
    let prompt = llm.encode_prompt(Prompt::Text("Write a long story about the sea:"))?;
    let schema = serde_json::json!({
        "type": "array",
        "items": { "type": "object", "properties": { "id": { "type": "integer" }, "name": { "type": "string" } }, "required": ["id", "name"] },
        "minItems": 100000
    });
    let generate = |constrained: bool| -> Result<f64, Failure> {
        let options = GenerateOptions {
            max_tokens: tokens,
            ignore_eos: !constrained,
            sampler: SamplerConfig {
                temperature: 0.0,
                ..Default::default()
            },
            constraint: constrained.then(|| ConstraintSpec::JsonSchema(schema.clone())),
            ..Default::default()
        };
        let r = llm.generate(Prompt::Tokens(&prompt), &options, &mut |_| {
            ControlFlow::Continue(())
        })?;
        Ok(1e6 / r.timings.decode_tokens_per_s)
    };
    type Variant<'a> = (&'a str, Box<dyn Fn() -> Result<f64, Failure> + 'a>);
    let model = llm.model();
    let loops = [
        ("double-buffered", Order::DoubleBuffered, Mask::None),
        ("split", Order::Split, Mask::None),
        ("folded", Order::Folded, Mask::None),
        ("split+kernel", Order::Split, Mask::Kernel),
        ("split+ops", Order::Split, Mask::Ops),
        ("folded+kernel", Order::Folded, Mask::Kernel),
        (
            "double-buffered+kernel",
            Order::DoubleBuffered,
            Mask::Kernel,
        ),
    ];
    let prompt = &prompt;
    let mut variants: Vec<Variant> = loops
        .into_iter()
        .map(|(name, order, mask)| -> Variant {
            (
                name,
                Box::new(move || decode_loop(model, prompt, tokens, order, mask)),
            )
        })
        .collect();
    variants.push(("generate free", Box::new(|| generate(false))));
    variants.push(("generate json", Box::new(|| generate(true))));
    for (_, run) in &variants {
        run()?; // warm-up: kernels compile, grammar builds
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        for j in 0..variants.len() {
            let i = (round + j) % variants.len();
            times[i].push((variants[i].1)()?);
        }
    }
    println!("{tokens} tokens, {rounds} rounds, µs per token (median, min–max)");
    println!("| variant | µs/token | min–max | vs double-buffered |");
    println!("| --- | --- | --- | --- |");
    let base = median(&mut times[0].clone());
    for ((name, _), t) in variants.iter().zip(times.iter_mut()) {
        let (lo, hi) = (
            t.iter().cloned().fold(f64::MAX, f64::min),
            t.iter().cloned().fold(0.0, f64::max),
        );
        let m = median(t);
        println!(
            "| {name} | {m:.1} | {lo:.1}–{hi:.1} | {:+.1} µs ({:+.1} %) |",
            m - base,
            (m - base) / base * 100.0
        );
    }
    Ok(())
}
