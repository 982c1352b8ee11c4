//! Tiny random-weight Llama / Qwen2 / Qwen3 / Mistral / Gemma 3 / Phi-3 /
//! Qwen3-MoE checkpoints against Hugging Face transformers (float32, eager
//! attention), made by
//! `scripts/fixtures/make_llm_fixtures.py`: all-position logits of a
//! 12-token sequence within 1e-4, the same through chunked prefill, and HF's
//! 8-token greedy continuation through our KV-cached decode.

mod common;

use std::path::PathBuf;

use common::{max_abs_diff, to_vec_f32};
use mlx_napi_core::{
    llm::models::{load_model, LanguageModel},
    loading::{load_weights, read_json, weight_files, Quantization},
    nn::WeightTree,
};
use mlx_rs::{ops, Array};

const ATOL: f32 = 1e-4;

struct Fixture {
    model: Box<dyn LanguageModel>,
    input_ids: Vec<i32>,
    logits: Vec<f32>,
    greedy: Vec<i32>,
}

fn fixture(name: &str) -> Fixture {
    fixture_with(name, |_| {})
}

/// The fixture with its config edited by `edit` before loading.
fn fixture_with(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Fixture {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let mut config: serde_json::Value = read_json(&dir, "config.json").unwrap();
    edit(&mut config);
    let weights = load_weights(&weight_files(&dir).unwrap(), |_, _| {}).unwrap();
    let tree = WeightTree::new(weights, Quantization::from_config(&config).unwrap(), None);
    let model = load_model(&config, tree).unwrap();
    let reference: serde_json::Value = read_json(&dir, "reference.json").unwrap();
    let logits: Vec<Vec<f32>> = serde_json::from_value(reference["logits"].clone()).unwrap();
    Fixture {
        model,
        input_ids: serde_json::from_value(reference["input_ids"].clone()).unwrap(),
        logits: logits.concat(),
        greedy: serde_json::from_value(reference["greedy_ids"].clone()).unwrap(),
    }
}

fn tokens(ids: &[i32]) -> Array {
    Array::from_slice(ids, &[1, ids.len() as i32])
}

fn check(name: &str) {
    let f = fixture(name);
    let (len, vocab) = (f.input_ids.len(), f.model.vocab_size());

    // One pass over the sequence, logits at every position.
    let mut caches = f.model.new_caches();
    let logits = f
        .model
        .forward(&tokens(&f.input_ids), &mut caches, false)
        .unwrap();
    assert_eq!(logits.shape(), &[1, len as i32, vocab as i32]);
    let diff = max_abs_diff(&to_vec_f32(&logits), &f.logits);
    assert!(diff < ATOL, "{name}: all-position logits differ by {diff}");

    // Chunked prefill (5 + 4 + 3 tokens) through the cache: same last logits.
    let mut caches = f.model.new_caches();
    let mut last = None;
    for chunk in [&f.input_ids[..5], &f.input_ids[5..9], &f.input_ids[9..]] {
        last = Some(f.model.forward(&tokens(chunk), &mut caches, true).unwrap());
    }
    let diff = max_abs_diff(&to_vec_f32(&last.unwrap()), &f.logits[(len - 1) * vocab..]);
    assert!(
        diff < ATOL,
        "{name}: chunked prefill last logits differ by {diff}"
    );

    // Greedy decode one token at a time from the cache.
    let mut generated = Vec::new();
    let mut caches = f.model.new_caches();
    let mut logits = f
        .model
        .forward(&tokens(&f.input_ids), &mut caches, true)
        .unwrap();
    for _ in 0..f.greedy.len() {
        let next = common::to_vec_i32(&ops::indexing::argmax_axis(&logits, -1, false).unwrap())[0];
        generated.push(next);
        logits = f
            .model
            .forward(&tokens(&[next]), &mut caches, true)
            .unwrap();
    }
    assert_eq!(generated, f.greedy, "{name}: greedy continuation");
}

/// The feature under test matters: without it the logits move past the tolerance.
fn differs_without(name: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let f = fixture_with(name, edit);
    let mut caches = f.model.new_caches();
    let logits = f
        .model
        .forward(&tokens(&f.input_ids), &mut caches, false)
        .unwrap();
    let diff = max_abs_diff(&to_vec_f32(&logits), &f.logits);
    assert!(
        diff > 100.0 * ATOL,
        "{name}: only {diff} without the feature"
    );
}

#[test]
fn llama_with_llama3_rope_scaling_and_untied_head() {
    check("llama");
    differs_without("llama", |c| {
        c["rope_parameters"] = serde_json::json!({"rope_theta": 500000.0})
    });
}

#[test]
fn qwen2_with_qkv_bias_and_tied_embeddings() {
    check("qwen2");
}

#[test]
fn qwen3_with_qk_norm() {
    check("qwen3");
}

#[test]
fn mistral_with_a_sliding_window_shorter_than_the_sequence() {
    check("mistral");
    differs_without("mistral", |c| c["sliding_window"] = serde_json::Value::Null);
}

#[test]
fn gemma3_with_sliding_and_global_layers() {
    check("gemma3");
    // The window matters: layers 0 and 2 see 5 positions of 12.
    differs_without("gemma3", |c| c["sliding_window"] = 64.into());
    // So do the global layer's own RoPE base and linear scaling.
    differs_without("gemma3", |c| {
        c["rope_parameters"]["full_attention"] =
            serde_json::json!({"rope_type": "default", "rope_theta": 10000.0})
    });
    // And query_pre_attn_scalar (24) rather than head_dim (32).
    differs_without("gemma3", |c| c["query_pre_attn_scalar"] = 32.into());
}

/// Configs as the Hub's Gemma 3 checkpoints carry them (written before
/// transformers 5): `sliding_window_pattern` instead of `layer_types`,
/// `rope_theta` / `rope_local_base_freq` / `rope_scaling` instead of
/// `rope_parameters` — the same network.
#[test]
fn gemma3_older_config_fields_give_the_same_network() {
    let f = fixture_with("gemma3", |c| {
        let o = c.as_object_mut().unwrap();
        o.remove("layer_types");
        o.remove("_sliding_window_pattern");
        o.remove("rope_parameters");
        // Layers 0 and 2 local, layer 1 global: every 2nd layer is global.
        o.insert("sliding_window_pattern".into(), 2.into());
        o.insert("rope_theta".into(), 1_000_000.0.into());
        o.insert("rope_local_base_freq".into(), 10_000.0.into());
        o.insert(
            "rope_scaling".into(),
            serde_json::json!({"rope_type": "linear", "factor": 2.0}),
        );
    });
    let mut caches = f.model.new_caches();
    let logits = f
        .model
        .forward(&tokens(&f.input_ids), &mut caches, false)
        .unwrap();
    let diff = max_abs_diff(&to_vec_f32(&logits), &f.logits);
    assert!(diff < ATOL, "{diff}");
}

/// `final_logit_softcapping` (Gemma 2's, null in Gemma 3 releases) bounds
/// the logits by `cap · tanh(x / cap)`.
#[test]
fn gemma3_final_logit_softcapping_bounds_the_logits() {
    let f = fixture_with("gemma3", |c| c["final_logit_softcapping"] = 2.0.into());
    let mut caches = f.model.new_caches();
    let logits = to_vec_f32(
        &f.model
            .forward(&tokens(&f.input_ids), &mut caches, false)
            .unwrap(),
    );
    assert!(logits.iter().all(|x| x.abs() <= 2.0));
    let expected: Vec<f32> = f.logits.iter().map(|x| 2.0 * (x / 2.0).tanh()).collect();
    let diff = max_abs_diff(&logits, &expected);
    assert!(diff < ATOL, "{diff}");
}

/// The multimodal `gemma3` layout: text config nested in `text_config`,
/// weights under `language_model.model.` (HF ≤ 4, mlx-vlm) or
/// `model.language_model.` (HF 5), a vision tower beside it.
#[test]
fn gemma3_multimodal_checkpoint_loads_its_language_model() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemma3");
    let text: serde_json::Value = read_json(&dir, "config.json").unwrap();
    let config = serde_json::json!({"model_type": "gemma3", "text_config": text});
    let f = fixture("gemma3");
    for prefix in ["language_model.model.", "model.language_model."] {
        let weights = load_weights(&weight_files(&dir).unwrap(), |_, _| {}).unwrap();
        let mut renamed: std::collections::HashMap<_, _> = weights
            .into_iter()
            .map(|(name, a)| (name.replacen("model.", prefix, 1), a))
            .collect();
        renamed.insert(
            "vision_tower.vision_model.post_layernorm.weight".into(),
            Array::from_slice(&[1f32; 4], &[4]),
        );
        let model = load_model(
            &config,
            WeightTree::new(renamed, Quantization::default(), None),
        )
        .unwrap();
        let mut caches = model.new_caches();
        let logits = model
            .forward(&tokens(&f.input_ids), &mut caches, false)
            .unwrap();
        let diff = max_abs_diff(&to_vec_f32(&logits), &f.logits);
        assert!(diff < ATOL, "{prefix}: {diff}");
    }
    let err = load_model(
        &serde_json::json!({"model_type": "gemma3"}),
        WeightTree::new(Default::default(), Quantization::default(), None),
    )
    .err()
    .unwrap();
    assert_eq!(err.code().as_str(), "ERR_MODEL_FORMAT");
    assert!(err.to_string().contains("text_config"), "{err}");
}

#[test]
fn phi3_with_fused_projections_partial_rotary_and_longrope() {
    check("phi3");
    // 12 + 8 positions fit the original 64: the short factors apply...
    differs_without("phi3", |c| {
        c["rope_parameters"]["short_factor"] = c["rope_parameters"]["long_factor"].clone()
    });
    // ...and so does the attention factor from max / original = 8.
    differs_without("phi3", |c| c["max_position_embeddings"] = 64.into());
}

/// Past the original context LongRoPE switches to `long_factor` (and a
/// larger attention factor): with an original context of 8, all 12
/// positions of one pass are "long", as in HF's reference.
#[test]
fn phi3_longrope_long_factors_past_the_original_context() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/phi3");
    let reference: serde_json::Value = read_json(&dir, "reference.json").unwrap();
    let original = reference["long_original_max_position_embeddings"].clone();
    let f = fixture_with("phi3", |c| {
        c["rope_parameters"]["original_max_position_embeddings"] = original.clone();
        c["original_max_position_embeddings"] = original;
    });
    let expected: Vec<Vec<f32>> = serde_json::from_value(reference["long_logits"].clone()).unwrap();
    let mut caches = f.model.new_caches();
    let logits = f
        .model
        .forward(&tokens(&f.input_ids), &mut caches, false)
        .unwrap();
    let diff = max_abs_diff(&to_vec_f32(&logits), &expected.concat());
    assert!(diff < ATOL, "long-factor logits differ by {diff}");
}

#[test]
fn qwen3_moe_with_top2_of_4_experts_and_a_dense_layer() {
    check("qwen3_moe");
    // Renormalized top-k weights matter (HF's norm_topk_prob)...
    differs_without("qwen3_moe", |c| c["norm_topk_prob"] = false.into());
    // ...and so does routing to 2 experts rather than 1.
    differs_without("qwen3_moe", |c| c["num_experts_per_tok"] = 1.into());
}

/// A 40-token pass routes 80 (token, expert) pairs: enough for the experts'
/// sorted gather path (≥ 64 pairs), which the 12-token fixture does not
/// reach. Its logits must equal one-token steps (the unsorted path).
#[test]
fn qwen3_moe_sorted_expert_path_matches_token_by_token() {
    let f = fixture("qwen3_moe");
    let ids: Vec<i32> = (0..40).map(|i| (i * 37 + 11) % 256).collect();
    let mut caches = f.model.new_caches();
    let all = to_vec_f32(&f.model.forward(&tokens(&ids), &mut caches, false).unwrap());
    let vocab = f.model.vocab_size();
    let mut caches = f.model.new_caches();
    for (i, &id) in ids.iter().enumerate() {
        let step = to_vec_f32(&f.model.forward(&tokens(&[id]), &mut caches, true).unwrap());
        let diff = max_abs_diff(&step, &all[i * vocab..(i + 1) * vocab]);
        assert!(diff < ATOL, "position {i}: {diff}");
    }
}

#[test]
fn wrong_configs_and_weights_are_reported() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3");
    let config: serde_json::Value = read_json(&dir, "config.json").unwrap();
    let load = |config: &serde_json::Value| {
        let weights = load_weights(&weight_files(&dir).unwrap(), |_, _| {}).unwrap();
        load_model(
            config,
            WeightTree::new(weights, Quantization::default(), None),
        )
        .err()
        .unwrap()
    };
    let mut unknown = config.clone();
    unknown["model_type"] = "gpt_bigcode".into();
    assert_eq!(load(&unknown).code().as_str(), "ERR_UNSUPPORTED_MODEL");
    let mut as_qwen2 = config.clone();
    as_qwen2["model_type"] = "qwen2".into();
    // Qwen2 expects q/k/v biases and no q/k norms: missing tensor, named.
    let err = load(&as_qwen2);
    assert_eq!(err.code().as_str(), "ERR_MODEL_FORMAT");
    assert!(err.to_string().contains("q_proj.bias"), "{err}");
    let mut wrong_size = config.clone();
    wrong_size["intermediate_size"] = 96.into();
    let err = load(&wrong_size);
    assert!(
        err.to_string().contains("mlp.gate_proj.weight") && err.to_string().contains("[96, 64]"),
        "{err}"
    );
    let mut bad_heads = config.clone();
    bad_heads["num_key_value_heads"] = 3.into();
    assert_eq!(load(&bad_heads).code().as_str(), "ERR_MODEL_FORMAT");
    let mut missing = config;
    missing.as_object_mut().unwrap().remove("hidden_size");
    let err = load(&missing);
    assert!(err.to_string().contains("hidden_size"), "{err}");
}

/// Loads fixture `name` with its config edited; the error (it must fail).
fn load_error(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> mlx_napi_core::Error {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let mut config: serde_json::Value = read_json(&dir, "config.json").unwrap();
    edit(&mut config);
    let weights = load_weights(&weight_files(&dir).unwrap(), |_, _| {}).unwrap();
    load_model(
        &config,
        WeightTree::new(weights, Quantization::default(), None),
    )
    .err()
    .expect("the edited config must not load")
}

fn assert_error(err: mlx_napi_core::Error, code: &str, mentions: &str) {
    assert_eq!(err.code().as_str(), code, "{err}");
    assert!(err.to_string().contains(mentions), "{err}");
}

#[test]
fn new_architectures_report_bad_configs() {
    let remove = |key: &'static str| {
        move |c: &mut serde_json::Value| {
            c.as_object_mut().unwrap().remove(key);
        }
    };
    let err = load_error("gemma3", remove("hidden_size"));
    assert_error(err, "ERR_MODEL_FORMAT", "hidden_size");
    let err = load_error("gemma3", |c| {
        c["layer_types"] = serde_json::json!(["full_attention"])
    });
    assert_error(err, "ERR_MODEL_FORMAT", "layer_types");
    let err = load_error("gemma3", |c| c["attn_logit_softcapping"] = 50.into());
    assert_error(err, "ERR_UNSUPPORTED_MODEL", "softcapping");
    let err = load_error("gemma3", |c| c["sliding_window"] = 0.into());
    assert_error(err, "ERR_MODEL_FORMAT", "sliding_window");

    let err = load_error("phi3", |c| {
        c["rope_parameters"]
            .as_object_mut()
            .unwrap()
            .remove("long_factor");
    });
    assert_error(err, "ERR_MODEL_FORMAT", "long_factor");
    let err = load_error("phi3", |c| {
        c["rope_parameters"]["short_factor"] = serde_json::json!([1.0, 2.0]);
    });
    assert_error(err, "ERR_MODEL_FORMAT", "RoPE factors");
    let err = load_error("phi3", |c| {
        c["rope_parameters"]["rope_type"] = "yarn".into()
    });
    assert_error(err, "ERR_UNSUPPORTED_MODEL", "yarn");
    let err = load_error("phi3", |c| c["intermediate_size"] = 96.into());
    assert_error(err, "ERR_MODEL_FORMAT", "gate_up_proj");

    let err = load_error("qwen3_moe", remove("num_local_experts"));
    assert_error(err, "ERR_MODEL_FORMAT", "num_experts");
    let err = load_error("qwen3_moe", |c| c["num_experts_per_tok"] = 5.into());
    assert_error(err, "ERR_MODEL_FORMAT", "num_experts_per_tok");
    // A dense layer where the checkpoint has experts: the extra tensors are named.
    let err = load_error("qwen3_moe", |c| {
        c["mlp_only_layers"] = serde_json::json!([0, 1])
    });
    assert_error(
        err,
        "ERR_MODEL_FORMAT",
        "model.layers.0.mlp.gate_proj.weight",
    );

    let err = load_error("qwen3", |c| c["model_type"] = "gemma4".into());
    assert_error(err, "ERR_UNSUPPORTED_MODEL", "qwen3_moe");
}

#[test]
fn quantize_at_load_stays_close_to_float() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3");
    let config: serde_json::Value = read_json(&dir, "config.json").unwrap();
    let weights = load_weights(&weight_files(&dir).unwrap(), |_, _| {}).unwrap();
    let spec = mlx_napi_core::loading::QuantSpec {
        group_size: 32,
        bits: 8,
    };
    let model = load_model(
        &config,
        WeightTree::new(weights, Quantization::default(), Some(spec)),
    )
    .unwrap();
    let f = fixture("qwen3");
    let mut caches = model.new_caches();
    let logits = to_vec_f32(
        &model
            .forward(&tokens(&f.input_ids), &mut caches, false)
            .unwrap(),
    );
    let diff = max_abs_diff(&logits, &f.logits);
    // 8-bit weights: close to float, but not identical (so quantization really happened).
    assert!(diff < 0.1 && diff > ATOL, "max diff {diff}");
}
