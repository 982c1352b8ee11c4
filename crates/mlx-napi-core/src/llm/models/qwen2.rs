//! Qwen2 / Qwen2.5: the Llama network with biases on the q/k/v projections
//! (none on o_proj) and RMSNorm ε 1e-6. Its `sliding_window` field is only
//! active with `use_sliding_window`, which released checkpoints leave off.

use super::llama::{Llama, LlamaArgs};
use crate::{nn::WeightTree, Result};

pub fn load(config: &serde_json::Value, weights: WeightTree) -> Result<Llama> {
    let mut args = LlamaArgs::from_config(config)?;
    args.qkv_bias_only = true;
    args.attention_bias = false;
    let sliding = config
        .get("use_sliding_window")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if !sliding {
        args.sliding_window = None;
    }
    Llama::from_args(args, weights)
}
