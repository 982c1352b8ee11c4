//! SmolLM2-135M-Instruct (4-bit) against mlx-lm's reference outputs.
//!
//! Default runs use float32 activations on the CPU (fast): prompt ids exact,
//! step-0 top-1 id exact, the first `stable_prefix_len` greedy ids exact
//! (capped at 8), and top-10 log-probs within [`F32_LOGPROB_ATOL`]. That
//! tolerance is wider than the README's 0.1 because the reference itself runs
//! in float16: float32 activations are *more* precise and differ from it by up
//! to ~0.56 on these prompts. Exactness is checked where it is defined: one
//! float16 forward (`raw_capital`, ~15 s on CPU) must reproduce mlx-lm's
//! step-0 logits (they come out bit-identical). `MLX_NAPI_FULL_TESTS=1` adds the
//! float16 run that must reproduce all 48 ids of every prompt (tens of minutes on CPU).

mod common;

use std::{
    ops::ControlFlow,
    sync::{atomic::AtomicBool, Arc},
};

use mlx_napi_core::{
    llm::{host_reads, FinishReason, GenerateOptions, Llm, LoadOptions, Prompt},
    loading::DtypeChoice,
    tokenizer::ChatMessage,
};
use mlx_rs::Array;

/// See the module docs: float32 vs the float16 reference.
const F32_LOGPROB_ATOL: f32 = 0.75;

struct Case {
    id: String,
    prompt: String,
    messages: Option<Vec<ChatMessage>>,
    prompt_ids: Vec<u32>,
    generated: Vec<u32>,
    finish_reason: String,
    stable_prefix_len: usize,
    top10: Vec<(u32, f32)>,
}

fn cases() -> Option<Vec<Case>> {
    let path = common::shared("reference/smollm2-greedy.json")?;
    let json = common::read_json(&path);
    Some(
        json["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| Case {
                id: p["id"].as_str().unwrap().into(),
                prompt: p["prompt"].as_str().unwrap().into(),
                messages: p["messages"].as_array().map(|ms| {
                    ms.iter()
                        .map(|m| {
                            ChatMessage::new(
                                m["role"].as_str().unwrap(),
                                m["content"].as_str().unwrap(),
                            )
                        })
                        .collect()
                }),
                prompt_ids: serde_json::from_value(p["prompt_token_ids"].clone()).unwrap(),
                generated: serde_json::from_value(p["generated_token_ids"].clone()).unwrap(),
                finish_reason: p["finish_reason"].as_str().unwrap().into(),
                stable_prefix_len: p["stable_prefix_len"].as_u64().unwrap() as usize,
                top10: p["first_step_top10"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| {
                        (
                            t["id"].as_u64().unwrap() as u32,
                            t["logprob"].as_f64().unwrap() as f32,
                        )
                    })
                    .collect(),
            })
            .collect(),
    )
}

fn load(dtype: DtypeChoice) -> Option<Llm> {
    let dir = common::smollm2_dir()?;
    Some(
        Llm::load(
            dir.to_str().unwrap(),
            LoadOptions {
                dtype,
                ..Default::default()
            },
        )
        .unwrap(),
    )
}

fn prompt_of(case: &Case) -> Prompt<'_> {
    match &case.messages {
        Some(messages) => Prompt::Messages(messages),
        None => Prompt::Text(&case.prompt),
    }
}

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        ..Default::default()
    }
}

fn no_stream() -> impl FnMut(&mlx_napi_core::llm::Chunk) -> ControlFlow<()> {
    |_| ControlFlow::Continue(())
}

#[test]
fn prompt_ids_step0_logprobs_and_greedy_prefix_match_mlx_lm() {
    let (Some(llm), Some(cases)) = (load(DtypeChoice::Auto), cases()) else {
        return;
    };
    assert_eq!(llm.eos_token_ids(), &[2]);
    for case in &cases {
        let ids = llm.encode_prompt(prompt_of(case)).unwrap();
        assert_eq!(ids, case.prompt_ids, "{}: prompt ids", case.id);

        // Step 0: logits of the last prompt position.
        let mut caches = llm.model().new_caches();
        let tokens: Vec<i32> = ids.iter().map(|&t| t as i32).collect();
        let logits = llm
            .model()
            .forward(
                &Array::from_slice(&tokens, &[1, tokens.len() as i32]),
                &mut caches,
                true,
            )
            .unwrap();
        let logits = common::to_vec_f32(&logits);
        let max = logits.iter().cloned().fold(f32::MIN, f32::max);
        let log_z = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
        let top1 = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as u32;
        assert_eq!(top1, case.top10[0].0, "{}: step-0 top-1", case.id);
        for &(id, reference) in &case.top10 {
            let ours = logits[id as usize] - log_z;
            assert!(
                (ours - reference).abs() < F32_LOGPROB_ATOL,
                "{}: logprob of {id}: {ours} vs {reference}",
                case.id
            );
        }

        // Greedy: the stable prefix must match exactly (capped to keep the test short).
        let n = case.stable_prefix_len.clamp(1, 8);
        let reads_before = host_reads();
        let result = llm
            .generate(prompt_of(case), &greedy(n), &mut no_stream())
            .unwrap();
        assert_eq!(
            result.token_ids,
            case.generated[..n],
            "{}: greedy prefix",
            case.id
        );
        assert_eq!(result.usage.prompt_tokens, ids.len());
        assert_eq!(result.usage.completion_tokens, n);
        // Exactly one device→host read per generated token.
        assert_eq!(result.host_reads, n as u64, "{}", case.id);
        assert!(host_reads() >= reads_before + n as u64);
    }
}

#[test]
fn chat_capital_stops_at_eos_with_streamed_text() {
    let (Some(llm), Some(cases)) = (load(DtypeChoice::Auto), cases()) else {
        return;
    };
    let case = cases.iter().find(|c| c.id == "chat_capital").unwrap();
    assert_eq!(case.finish_reason, "stop");
    let mut streamed = String::new();
    let mut chunks = 0;
    let result = llm
        .generate(prompt_of(case), &greedy(20), &mut |chunk| {
            streamed.push_str(chunk.text);
            chunks += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(result.token_ids, case.generated);
    assert_eq!(result.finish_reason, FinishReason::Stop);
    assert_eq!(result.text, "The capital of France is Paris, France.");
    assert_eq!(streamed, result.text);
    assert_eq!(chunks, case.generated.len());
    // The EOS token is read but not part of the output.
    assert_eq!(result.host_reads, case.generated.len() as u64 + 1);
    assert!(result.timings.ttft_ms > 0.0 && result.timings.decode_tokens_per_s > 0.0);
}

#[test]
fn stop_strings_abort_and_callback_break() {
    let (Some(llm), Some(cases)) = (load(DtypeChoice::Auto), cases()) else {
        return;
    };
    let case = cases.iter().find(|c| c.id == "chat_capital").unwrap();
    // Stop string inside the reply: text ends right before it, never streamed.
    let options = GenerateOptions {
        stop_strings: vec![" Paris".into()],
        ..greedy(20)
    };
    let mut streamed = String::new();
    let result = llm
        .generate(prompt_of(case), &options, &mut |c| {
            streamed.push_str(c.text);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(result.finish_reason, FinishReason::Stop);
    assert_eq!(result.text, "The capital of France is");
    assert_eq!(streamed, result.text);
    assert_eq!(
        result.token_ids,
        case.generated[..6],
        "tokens up to the one completing the stop string"
    );

    // Abort flag set before the first step.
    let abort = Arc::new(AtomicBool::new(true));
    let options = GenerateOptions {
        abort: Some(abort),
        ..greedy(20)
    };
    let result = llm
        .generate(prompt_of(case), &options, &mut no_stream())
        .unwrap();
    assert_eq!(result.finish_reason, FinishReason::Abort);
    assert!(result.token_ids.is_empty());

    // The callback asks to stop after 2 tokens.
    let mut seen = 0;
    let result = llm
        .generate(prompt_of(case), &greedy(20), &mut |_| {
            seen += 1;
            if seen == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(result.finish_reason, FinishReason::Abort);
    assert_eq!(result.token_ids, case.generated[..2]);
    assert_eq!(seen, 2);

    // max_tokens.
    let result = llm
        .generate(prompt_of(case), &greedy(3), &mut no_stream())
        .unwrap();
    assert_eq!(result.finish_reason, FinishReason::Length);
    assert_eq!(result.token_ids, case.generated[..3]);
}

#[test]
fn invalid_generate_options_are_rejected() {
    let Some(llm) = load(DtypeChoice::Auto) else {
        return;
    };
    let bad = [
        GenerateOptions {
            max_tokens: 0,
            ..Default::default()
        },
        GenerateOptions {
            prefill_chunk_size: 0,
            ..Default::default()
        },
        GenerateOptions {
            stop_strings: vec![String::new()],
            ..Default::default()
        },
        GenerateOptions {
            extra_eos_ids: vec![1 << 20],
            ..Default::default()
        },
        GenerateOptions {
            sampler: mlx_napi_core::sampling::SamplerConfig {
                top_p: Some(2.0),
                ..Default::default()
            },
            ..Default::default()
        },
    ];
    for options in bad {
        let err = llm
            .generate(Prompt::Text("hi"), &options, &mut no_stream())
            .unwrap_err();
        assert_eq!(err.code().as_str(), "ERR_INVALID_ARG", "{options:?}");
    }
    let err = llm
        .generate(Prompt::Tokens(&[]), &greedy(1), &mut no_stream())
        .unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_INVALID_ARG");
    let err = llm
        .generate(Prompt::Tokens(&[49152]), &greedy(1), &mut no_stream())
        .unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_INVALID_ARG");
}

#[test]
fn chunked_prefill_equals_single_pass() {
    let (Some(llm), Some(cases)) = (load(DtypeChoice::Auto), cases()) else {
        return;
    };
    let case = cases.iter().find(|c| c.id == "chat_haiku").unwrap();
    let n = case.stable_prefix_len.min(4);
    let chunked = GenerateOptions {
        prefill_chunk_size: 5,
        ..greedy(n)
    };
    let result = llm
        .generate(prompt_of(case), &chunked, &mut no_stream())
        .unwrap();
    assert_eq!(result.token_ids, case.generated[..n]);
}

#[test]
fn chat_session_reuses_its_cache_and_matches_a_fresh_run() {
    let Some(llm) = load(DtypeChoice::Auto) else {
        return;
    };
    let mut session = llm.chat_session();
    let first = llm
        .chat(
            &mut session,
            &[ChatMessage::new("user", "What is the capital of France?")],
            &greedy(6),
            &mut no_stream(),
        )
        .unwrap();
    assert_eq!(first.usage.prefilled_tokens, first.usage.prompt_tokens);
    let second_msg = [ChatMessage::new("user", "And of Italy?")];
    let second = llm
        .chat(&mut session, &second_msg, &greedy(5), &mut no_stream())
        .unwrap();
    // Most of the conversation came from the cache.
    assert!(
        second.usage.prefilled_tokens < second.usage.prompt_tokens / 2,
        "{:?}",
        second.usage
    );
    assert_eq!(session.messages().len(), 4);

    // The same conversation from scratch gives the same reply.
    let history = [
        ChatMessage::new("user", "What is the capital of France?"),
        ChatMessage::new("assistant", first.text.clone()),
        ChatMessage::new("user", "And of Italy?"),
    ];
    let fresh = llm
        .generate(Prompt::Messages(&history), &greedy(5), &mut no_stream())
        .unwrap();
    assert_eq!(fresh.usage.prompt_tokens, second.usage.prompt_tokens);
    assert_eq!(fresh.token_ids, second.token_ids);

    // A session cannot be used with another model instance.
    let other = load(DtypeChoice::Auto).unwrap();
    let err = other
        .chat(&mut session, &second_msg, &greedy(1), &mut no_stream())
        .unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_INVALID_ARG");
}

#[test]
fn float16_step0_logits_match_mlx_lm_exactly() {
    let (Some(llm), Some(cases)) = (load(DtypeChoice::Float16), cases()) else {
        return;
    };
    let case = cases.iter().find(|c| c.id == "raw_capital").unwrap();
    let json = common::read_json(&common::shared("reference/smollm2-greedy.json").unwrap());
    let reference = json["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "raw_capital")
        .unwrap();
    let tokens: Vec<i32> = case.prompt_ids.iter().map(|&t| t as i32).collect();
    let mut caches = llm.model().new_caches();
    let logits = llm
        .model()
        .forward(
            &Array::from_slice(&tokens, &[1, tokens.len() as i32]),
            &mut caches,
            true,
        )
        .unwrap();
    assert_eq!(logits.dtype(), mlx_rs::Dtype::Float16);
    let logits = common::to_vec_f32(&logits);
    let max = logits.iter().cloned().fold(f32::MIN, f32::max);
    let log_z = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
    for top in reference["first_step_top10"].as_array().unwrap() {
        let id = top["id"].as_u64().unwrap() as usize;
        let (logit, logprob) = (
            top["logit"].as_f64().unwrap() as f32,
            top["logprob"].as_f64().unwrap() as f32,
        );
        assert!(
            (logits[id] - logit).abs() < 1e-2,
            "logit of {id}: {} vs {logit}",
            logits[id]
        );
        assert!(
            (logits[id] - log_z - logprob).abs() < 1e-2,
            "logprob of {id}"
        );
    }
}

#[test]
fn full_float16_run_reproduces_all_reference_ids() {
    if std::env::var("MLX_NAPI_FULL_TESTS").as_deref() != Ok("1") {
        eprintln!("skipping: set MLX_NAPI_FULL_TESTS=1 for the float16 48-token comparison");
        return;
    }
    let (Some(llm), Some(cases)) = (load(DtypeChoice::Float16), cases()) else {
        return;
    };
    for case in &cases {
        let result = llm
            .generate(prompt_of(case), &greedy(48), &mut no_stream())
            .unwrap();
        assert_eq!(result.token_ids, case.generated, "{}", case.id);
        assert_eq!(
            result.finish_reason.as_str(),
            case.finish_reason,
            "{}",
            case.id
        );
    }
}
