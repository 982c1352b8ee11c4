//! Llama (and SmolLM2, Mistral): pre-norm decoder blocks of grouped-query
//! attention with RoPE and a SwiGLU MLP, RMSNorm everywhere, optionally tied
//! embeddings and a sliding attention window (Mistral).
//!
//! Reads top to bottom: args → attention → block → model. Qwen2 and Qwen3
//! have their own files; what they share with this one (masks, RoPE, norms,
//! the MLP, the LM head) lives in `crate::nn`, the loop over the blocks in
//! `decoder.rs`.

use mlx_rs::Array;
use serde::Deserialize;

use super::{
    check_dims, check_gqa,
    decoder::{Decoder, Pass},
    parse_config, rope_parameters,
};
use crate::{
    nn::{
        cached_attention, split_heads, Embedding, Linear, LmHead, RmsNorm, Rope, SwiGluMlp,
        WeightTree,
    },
    Error, Result,
};

// ------------------------------------------------------------------ args

/// The hyper-parameters, with Hugging Face's field names and defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaArgs {
    pub hidden_size: i32,
    pub num_hidden_layers: i32,
    pub intermediate_size: i32,
    pub num_attention_heads: i32,
    #[serde(default)]
    pub num_key_value_heads: Option<i32>,
    #[serde(default)]
    pub head_dim: Option<i32>,
    pub vocab_size: i32,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f32,
    #[serde(default = "default_theta")]
    pub rope_theta: f32,
    #[serde(default)]
    pub rope_traditional: bool,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v/o projections (Llama's `attention_bias`).
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    /// Mistral's window over every layer.
    #[serde(default)]
    pub sliding_window: Option<i32>,
    /// Positions the model was trained on; prompts must fit (absent: no limit).
    #[serde(default)]
    pub max_position_embeddings: Option<i64>,
}

fn default_eps() -> f32 {
    1e-6
}

fn default_theta() -> f32 {
    10000.0
}

impl LlamaArgs {
    pub fn from_config(config: &serde_json::Value) -> Result<Self> {
        let mut args: Self = parse_config(config)?;
        rope_parameters(config, &mut args.rope_theta, &mut args.rope_scaling);
        args.validate()
    }

    fn kv_heads(&self) -> i32 {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    fn head_dim(&self) -> i32 {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn validate(self) -> Result<Self> {
        check_dims(&[
            ("hidden_size", self.hidden_size.into(), 1 << 18),
            ("num_hidden_layers", self.num_hidden_layers.into(), 1 << 12),
            ("intermediate_size", self.intermediate_size.into(), 1 << 20),
            (
                "num_attention_heads",
                self.num_attention_heads.into(),
                1 << 12,
            ),
            ("num_key_value_heads", self.kv_heads().into(), 1 << 12),
            ("head_dim", self.head_dim().into(), 1 << 14),
            ("vocab_size", self.vocab_size.into(), 1 << 22),
        ])?;
        if self.max_position_embeddings.is_some_and(|n| n <= 0) {
            return Err(Error::format(
                "config.json: max_position_embeddings must be positive",
            ));
        }
        check_gqa(self.num_attention_heads, self.kv_heads())?;
        if self.sliding_window.is_some_and(|w| w <= 0) {
            return Err(Error::format(
                "config.json: sliding_window must be positive",
            ));
        }
        Ok(self)
    }
}

// ------------------------------------------------------------- attention

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: i32,
    kv_heads: i32,
    head_dim: i32,
    scale: f32,
}

impl Attention {
    fn load(tree: &mut WeightTree, prefix: &str, args: &LlamaArgs) -> Result<Self> {
        let (dim, heads, kv_heads, head_dim) = (
            args.hidden_size,
            args.num_attention_heads,
            args.kv_heads(),
            args.head_dim(),
        );
        let bias = args.attention_bias;
        let linear = |tree: &mut WeightTree, name: &str, input: i32, output: i32| {
            Linear::load(tree, &format!("{prefix}.{name}"), input, output, bias)
        };
        Ok(Self {
            q_proj: linear(tree, "q_proj", dim, heads * head_dim)?,
            k_proj: linear(tree, "k_proj", dim, kv_heads * head_dim)?,
            v_proj: linear(tree, "v_proj", dim, kv_heads * head_dim)?,
            o_proj: linear(tree, "o_proj", heads * head_dim, dim)?,
            heads,
            kv_heads,
            head_dim,
            scale: (head_dim as f32).powf(-0.5),
        })
    }

    /// `x [B, L, D]` → `[B, L, D]` for the pass's positions, reading and
    /// extending its cache.
    fn forward(&self, x: &Array, rope: &Rope, pass: Pass) -> Result<Array> {
        let q = split_heads(&self.q_proj.forward(x)?, self.heads, self.head_dim)?;
        let k = split_heads(&self.k_proj.forward(x)?, self.kv_heads, self.head_dim)?;
        let v = split_heads(&self.v_proj.forward(x)?, self.kv_heads, self.head_dim)?;
        let q = rope.forward_at(&q, pass.offset)?;
        let k = rope.forward_at(&k, pass.offset)?;
        let out = cached_attention(&q, &k, &v, self.scale, pass.cache, pass.mask)?;
        self.o_proj.forward(&out)
    }
}

// ----------------------------------------------------------------- block

pub(crate) struct Block {
    input_norm: RmsNorm,
    attention: Attention,
    post_attention_norm: RmsNorm,
    mlp: SwiGluMlp,
}

impl Block {
    fn load(tree: &mut WeightTree, prefix: &str, args: &LlamaArgs) -> Result<Self> {
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
            mlp: SwiGluMlp::load(
                tree,
                &format!("{prefix}.mlp"),
                dim,
                args.intermediate_size,
                args.mlp_bias,
            )?,
        })
    }

    fn forward(&self, x: &Array, rope: &Rope, pass: Pass) -> Result<Array> {
        let normed = self.input_norm.forward(x)?;
        let h = x.add(self.attention.forward(&normed, rope, pass)?)?;
        Ok(h.add(self.mlp.forward(&self.post_attention_norm.forward(&h)?)?)?)
    }
}

// ----------------------------------------------------------------- model

pub struct Llama {
    args: LlamaArgs,
    embed_tokens: Embedding,
    layers: Vec<Block>,
    /// Final norm and LM head (tied embedding or its own).
    head: LmHead,
    rope: Rope,
}

impl Llama {
    pub fn load(config: &serde_json::Value, mut tree: WeightTree) -> Result<Self> {
        let args = LlamaArgs::from_config(config)?;
        // Precomputed rotary tables some exports carry; we compute RoPE ourselves.
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
        let rope = Rope::new(
            args.head_dim(),
            args.rope_theta,
            args.rope_traditional,
            args.rope_scaling.as_ref(),
        )?;
        tree.finish()?;
        Ok(Self {
            args,
            embed_tokens,
            layers,
            head,
            rope,
        })
    }
}

impl Decoder for Llama {
    type Block = Block;

    fn blocks(&self) -> &[Block] {
        &self.layers
    }

    /// Mistral's window covers every layer.
    fn window(&self, _: &Block) -> Option<i32> {
        self.args.sliding_window
    }

    fn embed(&self, tokens: &Array) -> Result<Array> {
        self.embed_tokens.forward(tokens)
    }

    fn forward_block(&self, block: &Block, x: &Array, pass: Pass) -> Result<Array> {
        block.forward(x, &self.rope, pass)
    }

    fn head(&self, h: &Array) -> Result<Array> {
        self.head.forward(h)
    }

    fn vocab(&self) -> i32 {
        self.args.vocab_size
    }

    fn max_positions(&self) -> Option<i64> {
        self.args.max_position_embeddings
    }
}
