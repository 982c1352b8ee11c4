//! Layers shared by the LLM and Whisper models, built directly on MLX ops.
//!
//! Every layer is loaded from a [`WeightTree`] by name prefix and knows whether
//! its checkpoint stored it quantized; models compose them by hand (no module
//! framework), which keeps each model file readable top to bottom.

pub mod attention;
pub mod embedding;
pub mod fused;
pub mod head;
pub mod linear;
pub mod mlp;
pub mod norm;
pub mod padded_attention;
pub mod rope;
pub mod switch;
pub mod weight_tree;

pub use attention::{
    attention, cached_attention, causal_window_mask, merge_heads, split_heads, AttentionMask,
    MaskPlan,
};
pub use embedding::Embedding;
pub use head::LmHead;
pub use linear::Linear;
pub use mlp::{GeGluMlp, SwiGluMlp};
pub use norm::{LayerNorm, RmsNorm};
pub use rope::{LongRope, Rope, RopeOffset};
pub use switch::{top_k_routing, SwitchGlu};
pub use weight_tree::WeightTree;
