//! MLX-community quantized checkpoints, per architecture: each fixture is
//! rewritten the way mlx-lm converts a model (every linear and embedding
//! weight packed 4-bit with `.scales` / `.biases`, the MoE router at 8 bits
//! through a per-layer override, MoE experts stacked as
//! `mlp.switch_mlp.*`) and must compute what the same network computes
//! with the dequantized weights in float — i.e. the packed layout is read
//! as packed, for every layer — while differing from the float original
//! (quantization really happened). Quantizing at load (`quantize` option)
//! must give exactly what the converted checkpoint gives.

mod common;

use std::{collections::HashMap, path::PathBuf};

use common::{max_abs_diff, to_vec_f32};
use mlx_napi_core::{
    llm::models::load_model,
    loading::{load_weights, read_json, weight_files, QuantSpec, Quantization},
    nn::WeightTree,
};
use mlx_rs::{ops, Array};

const GROUP: i32 = 32;
const BITS: i32 = 4;
const ROUTER_BITS: i32 = 8;

/// mlx-lm's stacking of HF's per-expert tensors:
/// `…mlp.experts.<e>.<proj>.weight` → `…mlp.switch_mlp.<proj>.weight [E, out, in]`.
fn stack_experts(weights: HashMap<String, Array>) -> HashMap<String, Array> {
    let mut out = HashMap::new();
    let mut experts: HashMap<String, Vec<(usize, Array)>> = HashMap::new();
    for (name, array) in weights {
        match name.split_once(".mlp.experts.") {
            Some((layer, rest)) => {
                let (e, proj) = rest.split_once('.').unwrap();
                experts
                    .entry(format!("{layer}.mlp.switch_mlp.{proj}"))
                    .or_default()
                    .push((e.parse().unwrap(), array));
            }
            None => {
                out.insert(name, array);
            }
        }
    }
    for (name, mut list) in experts {
        list.sort_by_key(|(e, _)| *e);
        let arrays: Vec<Array> = list.into_iter().map(|(_, a)| a).collect();
        out.insert(name, ops::stack(&arrays, 0).unwrap());
    }
    out
}

fn is_router(name: &str) -> bool {
    name.ends_with(".mlp.gate.weight")
}

/// `(packed, dequantized)`: the packed checkpoint and the same values as
/// dense float tensors.
fn convert(
    weights: HashMap<String, Array>,
    router_bits: i32,
) -> (HashMap<String, Array>, HashMap<String, Array>) {
    let (mut packed, mut dense) = (HashMap::new(), HashMap::new());
    for (name, array) in stack_experts(weights) {
        let quantizable = name.ends_with(".weight") && array.ndim() >= 2 && !name.contains("norm");
        if !quantizable {
            packed.insert(name.clone(), array.clone());
            dense.insert(name, array);
            continue;
        }
        let bits = if is_router(&name) { router_bits } else { BITS };
        let (w, scales, biases) = ops::quantize(&array, GROUP, bits).unwrap();
        let stem = name.strip_suffix(".weight").unwrap();
        dense.insert(
            name.clone(),
            ops::dequantize(&w, &scales, &biases, GROUP, bits).unwrap(),
        );
        packed.insert(format!("{stem}.weight"), w);
        packed.insert(format!("{stem}.scales"), scales);
        packed.insert(format!("{stem}.biases"), biases);
    }
    (packed, dense)
}

fn check(name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let config: serde_json::Value = read_json(&dir, "config.json").unwrap();
    let weights = load_weights(&weight_files(&dir).unwrap(), |_, _| {}).unwrap();
    let reference: serde_json::Value = read_json(&dir, "reference.json").unwrap();
    let ids: Vec<i32> = serde_json::from_value(reference["input_ids"].clone()).unwrap();
    let float: Vec<Vec<f32>> = serde_json::from_value(reference["logits"].clone()).unwrap();
    let float = float.concat();

    let (uniform, _) = convert(weights.clone(), BITS);
    let (packed, dense) = convert(weights.clone(), ROUTER_BITS);
    let mut q_config = config.clone();
    q_config["quantization"] = serde_json::json!({"group_size": GROUP, "bits": BITS});
    let uniform_config = q_config.clone();
    let routers: Vec<String> = packed
        .keys()
        .filter_map(|n| n.strip_suffix(".scales"))
        .filter(|n| n.ends_with(".mlp.gate"))
        .map(String::from)
        .collect();
    for router in routers {
        q_config["quantization"][router] =
            serde_json::json!({"group_size": GROUP, "bits": ROUTER_BITS});
    }

    let run_with = |config: &serde_json::Value,
                    weights: HashMap<String, Array>,
                    at_load: Option<QuantSpec>| {
        let quant = Quantization::from_config(config).unwrap();
        let model = load_model(config, WeightTree::new(weights, quant, at_load))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut caches = model.new_caches();
        let tokens = Array::from_slice(&ids, &[1, ids.len() as i32]);
        to_vec_f32(&model.forward(&tokens, &mut caches, false).unwrap())
    };
    let run = |config: &serde_json::Value, weights| run_with(config, weights, None);
    let quantized = run(&q_config, packed);
    let dequantized = run(&config, dense);
    let diff = max_abs_diff(&quantized, &dequantized);
    assert!(
        diff < 1e-4,
        "{name}: packed vs dequantized differ by {diff}"
    );
    let moved = max_abs_diff(&quantized, &float);
    assert!(moved > 1e-3, "{name}: 4-bit logits equal float ({moved})");
    let spec = QuantSpec {
        group_size: GROUP,
        bits: BITS,
    };
    // The MoE experts arrive per expert (HF's layout) and are stacked, then
    // quantized, by the loader.
    let at_load = run_with(&config, weights, Some(spec));
    let stored = run(&uniform_config, uniform);
    assert_eq!(
        max_abs_diff(&at_load, &stored),
        0.0,
        "{name}: quantized at load vs stored quantized"
    );
}

#[test]
fn llama_quantized_layout() {
    check("llama");
}

#[test]
fn qwen2_quantized_layout() {
    check("qwen2");
}

#[test]
fn qwen3_quantized_layout() {
    check("qwen3");
}

#[test]
fn gemma3_quantized_layout() {
    check("gemma3");
}

#[test]
fn phi3_quantized_layout() {
    check("phi3");
}

/// Stacked `switch_mlp` experts through `gather_qmm`, an 8-bit router.
#[test]
fn qwen3_moe_quantized_layout() {
    check("qwen3_moe");
}

/// A multimodal `gemma3` checkpoint as mlx-vlm writes it: the language model
/// under `language_model.model.`, per-layer quantization keyed by those
/// names (one projection at 8 bits), config nested in `text_config`.
#[test]
fn gemma3_multimodal_quantized_layout() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemma3");
    let text: serde_json::Value = read_json(&dir, "config.json").unwrap();
    let weights = load_weights(&weight_files(&dir).unwrap(), |_, _| {}).unwrap();
    let eight = "model.layers.1.mlp.down_proj";
    let original = weights[&format!("{eight}.weight")].clone();
    let (mut packed, mut dense) = convert(weights, BITS);
    // Re-pack one projection at 8 bits, as a per-layer override.
    let (q, scales, biases) = ops::quantize(&original, GROUP, 8).unwrap();
    dense.insert(
        format!("{eight}.weight"),
        ops::dequantize(&q, &scales, &biases, GROUP, 8).unwrap(),
    );
    packed.insert(format!("{eight}.weight"), q);
    packed.insert(format!("{eight}.scales"), scales);
    packed.insert(format!("{eight}.biases"), biases);
    let nested: HashMap<String, Array> = packed
        .into_iter()
        .map(|(n, a)| (n.replacen("model.", "language_model.model.", 1), a))
        .collect();
    let config = serde_json::json!({
        "model_type": "gemma3",
        "text_config": text,
        "quantization": {
            "group_size": GROUP,
            "bits": BITS,
            format!("language_model.{eight}"): {"group_size": GROUP, "bits": 8},
        },
    });
    let quant = Quantization::from_config(&config).unwrap();
    let model = load_model(&config, WeightTree::new(nested, quant, None)).unwrap();
    let reference: serde_json::Value = read_json(&dir, "reference.json").unwrap();
    let ids: Vec<i32> = serde_json::from_value(reference["input_ids"].clone()).unwrap();
    let tokens = Array::from_slice(&ids, &[1, ids.len() as i32]);
    let mut caches = model.new_caches();
    let quantized = to_vec_f32(&model.forward(&tokens, &mut caches, false).unwrap());
    // The same values in float, in the plain gemma3_text layout.
    let plain = load_model(&text, WeightTree::new(dense, Quantization::default(), None)).unwrap();
    let mut caches = plain.new_caches();
    let expected = to_vec_f32(&plain.forward(&tokens, &mut caches, false).unwrap());
    let diff = max_abs_diff(&quantized, &expected);
    assert!(diff < 1e-4, "nested quantized vs dequantized: {diff}");
}
