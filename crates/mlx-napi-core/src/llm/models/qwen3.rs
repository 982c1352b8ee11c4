//! Qwen3 (dense): the Llama network with an RMSNorm over each head of q and
//! k (`self_attn.q_norm` / `k_norm`, before RoPE) and explicit `head_dim`.
//! Projections carry biases only when `attention_bias` is set.

use super::llama::{Llama, LlamaArgs};
use crate::{nn::WeightTree, Result};

pub fn load(config: &serde_json::Value, weights: WeightTree) -> Result<Llama> {
    let mut args = LlamaArgs::from_config(config)?;
    args.qk_norm = true;
    let sliding = config
        .get("use_sliding_window")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if !sliding {
        args.sliding_window = None;
    }
    Llama::from_args(args, weights)
}
