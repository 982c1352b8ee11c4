//! Decoder-only language models, one file per architecture.
//!
//! All of them implement [`LanguageModel`]; [`load_model`] picks the file from
//! `config.json`'s `model_type`.

pub mod llama;
pub mod qwen2;
pub mod qwen3;

use mlx_rs::Array;

use crate::{cache::KvCache, nn::WeightTree, Error, Result};

/// A causal LM: token ids in, next-token logits out, state in KV caches.
pub trait LanguageModel: Send {
    /// `tokens` int32 `[B, L]` at positions `caches[_].offset()..+L` →
    /// logits `[B, L, V]`, or `[B, 1, V]` for the last position only when
    /// `last_only` (what generation needs; skips most of the LM head).
    fn forward(&self, tokens: &Array, caches: &mut [KvCache], last_only: bool) -> Result<Array>;

    /// Fresh caches, one per layer (sliding-window models get bounded ones).
    fn new_caches(&self) -> Vec<KvCache>;

    fn vocab_size(&self) -> usize;

    /// Most positions (prompt + generated tokens) the model handles, from
    /// `max_position_embeddings`; `None` when the config does not say.
    fn context_length(&self) -> Option<usize> {
        None
    }
}

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
        "llama" | "mistral" => Ok(Box::new(llama::Llama::load(config, weights)?)),
        "qwen2" => Ok(Box::new(qwen2::load(config, weights)?)),
        "qwen3" => Ok(Box::new(qwen3::load(config, weights)?)),
        other => Err(Error::UnsupportedModel(format!(
            "model_type {other:?} is not supported (llama, mistral, qwen2, qwen3)"
        ))),
    }
}

/// Parses a config struct, naming config.json in the error.
pub(crate) fn parse_config<T: serde::de::DeserializeOwned>(
    config: &serde_json::Value,
) -> Result<T> {
    serde_json::from_value(config.clone()).map_err(|e| Error::format(format!("config.json: {e}")))
}
