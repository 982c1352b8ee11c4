//! Phi-3 / Phi-3.5 / Phi-4-mini: the Llama-style decoder with fused
//! projections — one `qkv_proj` (q, k, v stacked on the output axis) and
//! one `gate_up_proj` (gate then up) — RoPE over all or part of each head
//! (`partial_rotary_factor`, 0.75 on Phi-4-mini), optionally LongRoPE
//! ("longrope" / "su": per-pair short/long factors and an attention
//! factor), and Phi-3-mini-4k's sliding window.
//!
//! Reads top to bottom: args → attention → MLP → block → model.

use mlx_rs::Array;
use serde::Deserialize;

use super::{
    check_dims, check_gqa,
    decoder::{Decoder, Pass},
    parse_config,
};
use crate::{
    nn::{
        cached_attention, fused, split_heads, Embedding, Linear, LmHead, LongRope, RmsNorm, Rope,
        RopeOffset, WeightTree,
    },
    Error, Result,
};

// ------------------------------------------------------------------ args

#[derive(Debug, Clone, Deserialize)]
pub struct Phi3Args {
    pub hidden_size: i32,
    pub num_hidden_layers: i32,
    pub intermediate_size: i32,
    pub num_attention_heads: i32,
    #[serde(default)]
    pub num_key_value_heads: Option<i32>,
    pub vocab_size: i32,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f32,
    #[serde(default = "default_theta")]
    pub rope_theta: f32,
    /// Before transformers 5: the LongRoPE factors.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// transformers ≥ 5: theta, LongRoPE factors and partial rotary together.
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub partial_rotary_factor: Option<f32>,
    #[serde(default = "default_context")]
    pub max_position_embeddings: i64,
    #[serde(default)]
    pub original_max_position_embeddings: Option<i64>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub sliding_window: Option<i32>,
}

fn default_eps() -> f32 {
    1e-5
}

fn default_theta() -> f32 {
    10000.0
}

fn default_context() -> i64 {
    4096
}

/// How positions are encoded: plain (optionally linear-scaled) RoPE or LongRoPE.
#[derive(Clone)]
enum Positions {
    Plain(Rope),
    Long(LongRope),
}

impl Positions {
    fn forward_at(&self, x: &Array, offset: &RopeOffset, length: i32) -> Result<Array> {
        match self {
            Self::Plain(rope) => rope.forward_at(x, offset),
            Self::Long(rope) => rope.forward_at(x, offset, length),
        }
    }
}

impl Phi3Args {
    pub fn from_config(config: &serde_json::Value) -> Result<Self> {
        let args: Self = parse_config(config)?;
        check_dims(&[
            ("hidden_size", args.hidden_size.into(), 1 << 18),
            ("num_hidden_layers", args.num_hidden_layers.into(), 1 << 12),
            ("intermediate_size", args.intermediate_size.into(), 1 << 20),
            (
                "num_attention_heads",
                args.num_attention_heads.into(),
                1 << 12,
            ),
            ("num_key_value_heads", args.kv_heads().into(), 1 << 12),
            ("head_dim", args.head_dim().into(), 1 << 14),
            ("vocab_size", args.vocab_size.into(), 1 << 22),
            (
                "max_position_embeddings",
                args.max_position_embeddings,
                1 << 40,
            ),
        ])?;
        check_gqa(args.num_attention_heads, args.kv_heads())?;
        if args.sliding_window.is_some_and(|w| w <= 0) {
            return Err(Error::format(
                "config.json: sliding_window must be positive",
            ));
        }
        Ok(args)
    }

    fn kv_heads(&self) -> i32 {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    fn head_dim(&self) -> i32 {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// The window, unless it covers the whole context anyway (Phi-3.5 and
    /// Phi-4-mini set 262144 for a 131072 context; Phi-3-mini-4k 2047).
    fn window(&self) -> Option<i32> {
        self.sliding_window
            .filter(|&w| i64::from(w) < self.max_position_embeddings)
    }

    /// The RoPE settings object (`rope_parameters` over `rope_scaling`).
    fn rope_settings(&self) -> Option<&serde_json::Value> {
        self.rope_parameters
            .as_ref()
            .or(self.rope_scaling.as_ref())
            .filter(|v| v.is_object())
    }

    fn positions(&self) -> Result<Positions> {
        let settings = self.rope_settings();
        let get = |key: &str| settings.and_then(|s| s.get(key));
        let number = |key: &str| get(key).and_then(|v| v.as_f64());
        let theta = number("rope_theta").map_or(self.rope_theta, |t| t as f32);
        let partial = number("partial_rotary_factor")
            .map(|f| f as f32)
            .or(self.partial_rotary_factor)
            .unwrap_or(1.0);
        if !(partial > 0.0 && partial <= 1.0) {
            return Err(Error::format(
                "config.json: partial_rotary_factor must be in (0, 1]",
            ));
        }
        let head_dim = self.head_dim();
        // HF truncates; the rotated width must be even.
        let dims = ((head_dim as f32 * partial) as i32) & !1;
        if dims == 0 {
            return Err(Error::format(
                "config.json: partial_rotary_factor leaves nothing to rotate",
            ));
        }
        let kind = get("rope_type")
            .or_else(|| get("type"))
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        match kind {
            "longrope" | "su" => {
                let factors = |key: &str| -> Result<Vec<f32>> {
                    get(key)
                        .and_then(|v| v.as_array())
                        .map(|a| a.iter().map(|x| x.as_f64().map(|x| x as f32)).collect())
                        .and_then(|v: Option<Vec<f32>>| v)
                        .ok_or_else(|| {
                            Error::format(format!(
                                "config.json: {kind} RoPE needs a numeric `{key}` list"
                            ))
                        })
                };
                let original = number("original_max_position_embeddings")
                    .map(|n| n as i64)
                    .or(self.original_max_position_embeddings)
                    .ok_or_else(|| {
                        Error::format(format!(
                            "config.json: {kind} RoPE needs original_max_position_embeddings"
                        ))
                    })?;
                check_dims(&[("original_max_position_embeddings", original, 1 << 30)])?;
                // An explicit `factor` replaces max / original in the
                // attention factor (HF's rule).
                let max = number("factor").map_or(self.max_position_embeddings as f32, |f| {
                    f as f32 * original as f32
                });
                Ok(Positions::Long(LongRope::new(
                    dims,
                    head_dim,
                    theta,
                    &factors("short_factor")?,
                    &factors("long_factor")?,
                    max,
                    original as i32,
                    number("attention_factor").map(|f| f as f32),
                )?))
            }
            "default" | "linear" => Ok(Positions::Plain(Rope::new(dims, theta, false, settings)?)),
            other => Err(Error::UnsupportedModel(format!(
                "Phi-3 rope type {other:?} is not supported (default, linear, longrope, su)"
            ))),
        }
    }
}

// ------------------------------------------------------------- attention

struct Attention {
    qkv_proj: Linear,
    o_proj: Linear,
    heads: i32,
    kv_heads: i32,
    head_dim: i32,
    scale: f32,
}

impl Attention {
    fn load(tree: &mut WeightTree, prefix: &str, args: &Phi3Args) -> Result<Self> {
        let (dim, heads, kv_heads, head_dim) = (
            args.hidden_size,
            args.num_attention_heads,
            args.kv_heads(),
            args.head_dim(),
        );
        Ok(Self {
            qkv_proj: Linear::load(
                tree,
                &format!("{prefix}.qkv_proj"),
                dim,
                (heads + 2 * kv_heads) * head_dim,
                false,
            )?,
            o_proj: Linear::load(
                tree,
                &format!("{prefix}.o_proj"),
                heads * head_dim,
                dim,
                false,
            )?,
            heads,
            kv_heads,
            head_dim,
            scale: (head_dim as f32).powf(-0.5),
        })
    }

    fn forward(&self, x: &Array, positions: &Positions, pass: Pass) -> Result<Array> {
        // One matmul, then q | k | v along the features.
        let q_end = self.heads * self.head_dim;
        let k_end = q_end + self.kv_heads * self.head_dim;
        let qkv = self
            .qkv_proj
            .forward(x)?
            .split_at_indices(&[q_end, k_end], -1)?;
        let q = split_heads(&qkv[0], self.heads, self.head_dim)?;
        let k = split_heads(&qkv[1], self.kv_heads, self.head_dim)?;
        let v = split_heads(&qkv[2], self.kv_heads, self.head_dim)?;
        // LongRoPE picks its factors by the positions after this pass.
        let q = positions.forward_at(&q, pass.offset, pass.length)?;
        let k = positions.forward_at(&k, pass.offset, pass.length)?;
        let out = cached_attention(&q, &k, &v, self.scale, pass.cache, pass.mask)?;
        self.o_proj.forward(&out)
    }
}

// ------------------------------------------------------------------- MLP

/// `down(silu(gate) · up)` with gate and up from one fused projection.
struct Mlp {
    gate_up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn load(tree: &mut WeightTree, prefix: &str, dim: i32, hidden: i32) -> Result<Self> {
        Ok(Self {
            gate_up_proj: Linear::load(
                tree,
                &format!("{prefix}.gate_up_proj"),
                dim,
                2 * hidden,
                false,
            )?,
            down_proj: Linear::load(tree, &format!("{prefix}.down_proj"), hidden, dim, false)?,
        })
    }

    fn forward(&self, x: &Array) -> Result<Array> {
        let parts = self.gate_up_proj.forward(x)?.split_equal(2, -1)?;
        self.down_proj
            .forward(&fused::swiglu(&parts[0], &parts[1])?)
    }
}

// ----------------------------------------------------------------- block

pub(crate) struct Block {
    input_norm: RmsNorm,
    attention: Attention,
    post_attention_norm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    fn load(tree: &mut WeightTree, prefix: &str, args: &Phi3Args) -> Result<Self> {
        let (dim, eps) = (args.hidden_size, args.rms_norm_eps);
        Ok(Self {
            input_norm: RmsNorm::load(tree, &format!("{prefix}.input_layernorm"), dim, eps)?,
            attention: Attention::load(tree, &format!("{prefix}.self_attn"), args)?,
            post_attention_norm: RmsNorm::load(
                tree,
                &format!("{prefix}.post_attention_layernorm"),
                dim,
                eps,
            )?,
            mlp: Mlp::load(tree, &format!("{prefix}.mlp"), dim, args.intermediate_size)?,
        })
    }

    fn forward(&self, x: &Array, positions: &Positions, pass: Pass) -> Result<Array> {
        let normed = self.input_norm.forward(x)?;
        let h = x.add(self.attention.forward(&normed, positions, pass)?)?;
        Ok(h.add(self.mlp.forward(&self.post_attention_norm.forward(&h)?)?)?)
    }
}

// ----------------------------------------------------------------- model

pub struct Phi3 {
    args: Phi3Args,
    embed_tokens: Embedding,
    layers: Vec<Block>,
    /// Final norm and LM head (tied to the embedding on Phi-4-mini).
    head: LmHead,
    positions: Positions,
}

impl Phi3 {
    pub fn load(config: &serde_json::Value, mut tree: WeightTree) -> Result<Self> {
        let args = Phi3Args::from_config(config)?;
        let positions = args.positions()?;
        tree.discard_where(|name| name.ends_with(".rotary_emb.inv_freq"));
        let embed_tokens = Embedding::load(
            &mut tree,
            "model.embed_tokens",
            args.vocab_size,
            args.hidden_size,
        )?;
        let layers = (0..args.num_hidden_layers)
            .map(|i| Block::load(&mut tree, &format!("model.layers.{i}"), &args))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(&mut tree, "model.norm", args.hidden_size, args.rms_norm_eps)?;
        let head = LmHead::load(
            &mut tree,
            norm,
            &embed_tokens,
            args.tie_word_embeddings,
            args.hidden_size,
            args.vocab_size,
        )?;
        tree.finish()?;
        Ok(Self {
            args,
            embed_tokens,
            layers,
            head,
            positions,
        })
    }
}

impl Decoder for Phi3 {
    type Block = Block;

    fn blocks(&self) -> &[Block] {
        &self.layers
    }

    /// Phi-3-mini-4k's window covers every layer.
    fn window(&self, _: &Block) -> Option<i32> {
        self.args.window()
    }

    fn embed(&self, tokens: &Array) -> Result<Array> {
        self.embed_tokens.forward(tokens)
    }

    fn forward_block(&self, block: &Block, x: &Array, pass: Pass) -> Result<Array> {
        block.forward(x, &self.positions, pass)
    }

    fn head(&self, h: &Array) -> Result<Array> {
        self.head.forward(h)
    }

    fn vocab(&self) -> i32 {
        self.args.vocab_size
    }

    fn max_positions(&self) -> Option<i64> {
        Some(self.args.max_position_embeddings)
    }
}
