//! Decoder-only language models, one file per architecture.
//!
//! All of them implement [`LanguageModel`] through `decoder.rs`;
//! [`load_model`] picks the file from `config.json`'s `model_type`.

mod decoder;
pub mod gemma3;
pub mod llama;
pub mod phi3;
pub mod qwen2;
pub mod qwen3;
pub mod qwen3_moe;

use mlx_rs::Array;

use crate::{
    cache::{BatchKvCache, KvCache},
    nn::WeightTree,
    Error, Result,
};

/// A causal LM: token ids in, next-token logits out, state in KV caches.
pub trait LanguageModel: Send {
    /// `tokens` int32 `[B, L]` at positions `caches[_].offset()..+L` →
    /// logits `[B, L, V]`, or `[B, 1, V]` for the last position only when
    /// `last_only` (what generation needs; skips most of the LM head).
    fn forward(&self, tokens: &Array, caches: &mut [KvCache], last_only: bool) -> Result<Array>;

    /// One decoding step of a batch whose rows sit at different positions:
    /// `tokens` int32 `[B, 1]` (row `b` at position `cache`'s row `b` length)
    /// → logits `[B, V]`. Only for models where [`Self::supports_batching`].
    fn forward_batch(&self, tokens: &Array, cache: &mut BatchKvCache) -> Result<Array>;

    /// Whether [`Self::forward_batch`] works (not with a sliding window).
    fn supports_batching(&self) -> bool;

    /// Transformer layers (= caches per sequence).
    fn num_layers(&self) -> usize;

    /// Fresh caches, one per layer (sliding-window models get bounded ones).
    fn new_caches(&self) -> Vec<KvCache>;

    fn vocab_size(&self) -> usize;

    /// Most positions (prompt + generated tokens) the model handles, from
    /// `max_position_embeddings`; `None` when the config does not say.
    fn context_length(&self) -> Option<usize> {
        None
    }
}

/// The `model_type`s [`load_model`] knows.
pub const MODEL_TYPES: &[&str] = &[
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "qwen3_moe",
    "gemma3_text",
    "gemma3",
    "phi3",
];

/// Builds the architecture named by `config["model_type"]` from `weights`.
pub fn load_model(
    config: &serde_json::Value,
    weights: WeightTree,
) -> Result<Box<dyn LanguageModel>> {
    let model_type = config
        .get("model_type")
        .and_then(|v| v.as_str())
        .ok_or_else(|| Error::format("config.json has no `model_type`"))?;
    match model_type {
        // Mistral is the Llama network with a sliding window.
        "llama" | "mistral" => Ok(Box::new(llama::Llama::load(config, weights)?)),
        "qwen2" => Ok(Box::new(qwen2::Qwen2::load(config, weights)?)),
        "qwen3" => Ok(Box::new(qwen3::Qwen3::load(config, weights)?)),
        "gemma3_text" | "gemma3" => Ok(Box::new(gemma3::Gemma3::load(config, weights)?)),
        "phi3" => Ok(Box::new(phi3::Phi3::load(config, weights)?)),
        "qwen3_moe" => Ok(Box::new(qwen3_moe::Qwen3Moe::load(config, weights)?)),
        other => Err(Error::UnsupportedModel(format!(
            "model_type {other:?} is not supported ({})",
            MODEL_TYPES.join(", ")
        ))),
    }
}

/// Parses a config struct, naming config.json in the error.
pub(crate) fn parse_config<T: serde::de::DeserializeOwned>(
    config: &serde_json::Value,
) -> Result<T> {
    serde_json::from_value(config.clone()).map_err(|e| Error::format(format!("config.json: {e}")))
}

/// Checks that each `(name, value, max)` is in `1..=max`: upper bounds far
/// above any released model, checked before any allocation is sized from a
/// config (a forged one must not ask for terabytes).
pub(crate) fn check_dims(dims: &[(&str, i64, i64)]) -> Result<()> {
    for &(name, value, max) in dims {
        if value <= 0 || value > max {
            return Err(Error::format(format!(
                "config.json: {name} must be in 1..={max}, got {value}"
            )));
        }
    }
    Ok(())
}

/// `num_attention_heads` must be a multiple of `num_key_value_heads`
/// (grouped-query attention shares each k/v head among a whole group).
pub(crate) fn check_gqa(heads: i32, kv_heads: i32) -> Result<()> {
    if heads % kv_heads != 0 {
        return Err(Error::format(format!(
            "config.json: num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv_heads})"
        )));
    }
    Ok(())
}

/// RoPE settings from a config: transformers ≥ 5 writes `rope_parameters`
/// (theta and scaling in one object) instead of `rope_theta` /
/// `rope_scaling`; either overrides what the struct parsed.
pub(crate) fn rope_parameters(
    config: &serde_json::Value,
    theta: &mut f32,
    scaling: &mut Option<serde_json::Value>,
) {
    if let Some(params) = config.get("rope_parameters").filter(|p| p.is_object()) {
        if let Some(t) = params.get("rope_theta").and_then(|t| t.as_f64()) {
            *theta = t as f32;
        }
        if scaling.as_ref().is_none_or(|s| s.is_null()) {
            *scaling = Some(params.clone());
        }
    }
}

/// Which layers attend through a sliding window: the config's `layer_types`
/// (`"sliding_attention"` / `"full_attention"`, transformers ≥ 4.53) when it
/// lists every layer, else `fallback(layer)`.
pub(crate) fn sliding_layers(
    config: &serde_json::Value,
    layers: i32,
    fallback: impl Fn(i32) -> bool,
) -> Result<Vec<bool>> {
    match config.get("layer_types").and_then(|t| t.as_array()) {
        Some(types) => {
            if types.len() != layers as usize {
                return Err(Error::format(format!(
                    "config.json: layer_types lists {} layers, num_hidden_layers is {layers}",
                    types.len()
                )));
            }
            types
                .iter()
                .map(|t| match t.as_str() {
                    Some("sliding_attention") => Ok(true),
                    Some("full_attention") => Ok(false),
                    other => Err(Error::UnsupportedModel(format!(
                        "layer type {other:?} is not supported (sliding_attention, full_attention)"
                    ))),
                })
                .collect()
        }
        None => Ok((0..layers).map(fallback).collect()),
    }
}
