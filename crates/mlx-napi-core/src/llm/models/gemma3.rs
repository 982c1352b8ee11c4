//! Gemma 3 (text): pre- and post-norms around both attention and MLP, every
//! RMSNorm scaling by `1 + w`, q/k RMSNorm per head, a GELU-tanh gated MLP,
//! embeddings scaled by √hidden, attention scaled by
//! `query_pre_attn_scalar^-½`, and layers that alternate between a sliding
//! window (local RoPE base) and the whole context (global base, optionally
//! linear RoPE scaling) — five local layers to one global in released models.
//!
//! Loads `gemma3_text` configs and the multimodal `gemma3` ones (the text
//! model in `text_config`, its weights under `language_model`; the vision
//! tower is dropped).
//!
//! Reads top to bottom: args → attention → block → model.

use mlx_rs::{ops, Array};
use serde::Deserialize;

use super::{
    check_dims, check_gqa,
    decoder::{Decoder, Pass},
    parse_config, sliding_layers,
};
use crate::{
    nn::{
        cached_attention, split_heads, Embedding, GeGluMlp, Linear, LmHead, RmsNorm, Rope,
        WeightTree,
    },
    Error, Result,
};

// ------------------------------------------------------------------ args

/// Hugging Face's `Gemma3TextConfig`. The defaults are HF's: the 4B/12B/27B
/// configs leave head counts, `head_dim`, `vocab_size` and
/// `query_pre_attn_scalar` out of their `text_config`.
#[derive(Debug, Clone, Deserialize)]
pub struct Gemma3Args {
    pub hidden_size: i32,
    pub num_hidden_layers: i32,
    pub intermediate_size: i32,
    #[serde(default = "default_heads")]
    pub num_attention_heads: i32,
    #[serde(default = "default_kv_heads")]
    pub num_key_value_heads: i32,
    #[serde(default = "default_head_dim")]
    pub head_dim: i32,
    #[serde(default = "default_vocab")]
    pub vocab_size: i32,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f32,
    /// Global layers' RoPE base.
    #[serde(default = "default_theta")]
    pub rope_theta: f32,
    /// Sliding layers' RoPE base.
    #[serde(default = "default_local_theta")]
    pub rope_local_base_freq: f32,
    /// Global layers' RoPE scaling (linear ×8 on 4B and larger).
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default = "default_head_dim_f32")]
    pub query_pre_attn_scalar: f32,
    #[serde(default = "default_window")]
    pub sliding_window: i32,
    /// Every n-th layer is global (older configs; newer list `layer_types`).
    #[serde(default, alias = "_sliding_window_pattern")]
    pub sliding_window_pattern: Option<i32>,
    #[serde(default)]
    pub final_logit_softcapping: Option<f32>,
    #[serde(default)]
    pub attn_logit_softcapping: Option<f32>,
    #[serde(default)]
    pub max_position_embeddings: Option<i64>,
}

fn default_heads() -> i32 {
    8
}
fn default_kv_heads() -> i32 {
    4
}
fn default_head_dim() -> i32 {
    256
}
fn default_head_dim_f32() -> f32 {
    256.0
}
fn default_vocab() -> i32 {
    262_208
}
fn default_eps() -> f32 {
    1e-6
}
fn default_theta() -> f32 {
    1_000_000.0
}
fn default_local_theta() -> f32 {
    10_000.0
}
fn default_window() -> i32 {
    4096
}

impl Gemma3Args {
    pub fn from_config(config: &serde_json::Value) -> Result<Self> {
        let mut args: Self = parse_config(config)?;
        // transformers ≥ 5: `rope_parameters` holds one object per layer kind.
        if let Some(params) = config.get("rope_parameters").filter(|p| p.is_object()) {
            let theta = |kind: &str| {
                params
                    .get(kind)
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(|t| t.as_f64())
            };
            if let Some(t) = theta("full_attention") {
                args.rope_theta = t as f32;
            }
            if let Some(t) = theta("sliding_attention") {
                args.rope_local_base_freq = t as f32;
            }
            if args.rope_scaling.as_ref().is_none_or(|s| s.is_null()) {
                args.rope_scaling = params.get("full_attention").cloned();
            }
            let local_kind = params
                .get("sliding_attention")
                .and_then(|p| p.get("rope_type"))
                .and_then(|t| t.as_str())
                .unwrap_or("default");
            if local_kind != "default" {
                return Err(Error::UnsupportedModel(format!(
                    "Gemma 3 sliding layers with rope_type {local_kind:?} are not supported"
                )));
            }
        }
        check_dims(&[
            ("hidden_size", args.hidden_size.into(), 1 << 18),
            ("num_hidden_layers", args.num_hidden_layers.into(), 1 << 12),
            ("intermediate_size", args.intermediate_size.into(), 1 << 20),
            (
                "num_attention_heads",
                args.num_attention_heads.into(),
                1 << 12,
            ),
            (
                "num_key_value_heads",
                args.num_key_value_heads.into(),
                1 << 12,
            ),
            ("head_dim", args.head_dim.into(), 1 << 14),
            ("vocab_size", args.vocab_size.into(), 1 << 22),
            ("sliding_window", args.sliding_window.into(), 1 << 24),
        ])?;
        check_gqa(args.num_attention_heads, args.num_key_value_heads)?;
        if args.sliding_window_pattern.is_some_and(|p| p <= 0) {
            return Err(Error::format(
                "config.json: sliding_window_pattern must be positive",
            ));
        }
        if args.query_pre_attn_scalar.is_nan() || args.query_pre_attn_scalar <= 0.0 {
            return Err(Error::format(
                "config.json: query_pre_attn_scalar must be positive",
            ));
        }
        if args.max_position_embeddings.is_some_and(|n| n <= 0) {
            return Err(Error::format(
                "config.json: max_position_embeddings must be positive",
            ));
        }
        // Gemma 2's attention soft-capping needs the scores materialized;
        // released Gemma 3 models do not use it.
        if args.attn_logit_softcapping.is_some() {
            return Err(Error::UnsupportedModel(
                "attn_logit_softcapping is not supported".into(),
            ));
        }
        Ok(args)
    }

    /// Which layers are local (sliding window).
    fn sliding(&self, config: &serde_json::Value) -> Result<Vec<bool>> {
        let pattern = self.sliding_window_pattern.unwrap_or(6);
        sliding_layers(config, self.num_hidden_layers, |i| (i + 1) % pattern != 0)
    }
}

// ------------------------------------------------------------- attention

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    heads: i32,
    kv_heads: i32,
    head_dim: i32,
    scale: f32,
}

impl Attention {
    fn load(tree: &mut WeightTree, prefix: &str, args: &Gemma3Args) -> Result<Self> {
        let (dim, heads, kv_heads, head_dim) = (
            args.hidden_size,
            args.num_attention_heads,
            args.num_key_value_heads,
            args.head_dim,
        );
        let linear = |tree: &mut WeightTree, name: &str, input: i32, output: i32| {
            Linear::load(tree, &format!("{prefix}.{name}"), input, output, false)
        };
        let norm = |tree: &mut WeightTree, name: &str| {
            RmsNorm::load_one_plus(
                tree,
                &format!("{prefix}.{name}"),
                head_dim,
                args.rms_norm_eps,
            )
        };
        Ok(Self {
            q_proj: linear(tree, "q_proj", dim, heads * head_dim)?,
            k_proj: linear(tree, "k_proj", dim, kv_heads * head_dim)?,
            v_proj: linear(tree, "v_proj", dim, kv_heads * head_dim)?,
            o_proj: linear(tree, "o_proj", heads * head_dim, dim)?,
            q_norm: norm(tree, "q_norm")?,
            k_norm: norm(tree, "k_norm")?,
            heads,
            kv_heads,
            head_dim,
            scale: args.query_pre_attn_scalar.powf(-0.5),
        })
    }

    fn forward(&self, x: &Array, rope: &Rope, pass: Pass) -> Result<Array> {
        // Per-head norms on q and k, then RoPE (the layer's own base).
        let q = split_heads(&self.q_proj.forward(x)?, self.heads, self.head_dim)?;
        let q = rope.forward_at(&self.q_norm.forward(&q)?, pass.offset)?;
        let k = split_heads(&self.k_proj.forward(x)?, self.kv_heads, self.head_dim)?;
        let k = rope.forward_at(&self.k_norm.forward(&k)?, pass.offset)?;
        let v = split_heads(&self.v_proj.forward(x)?, self.kv_heads, self.head_dim)?;
        let out = cached_attention(&q, &k, &v, self.scale, pass.cache, pass.mask)?;
        self.o_proj.forward(&out)
    }
}

// ----------------------------------------------------------------- block

pub(crate) struct Block {
    input_norm: RmsNorm,
    attention: Attention,
    post_attention_norm: RmsNorm,
    pre_feedforward_norm: RmsNorm,
    mlp: GeGluMlp,
    post_feedforward_norm: RmsNorm,
    /// `Some(window)` for a local layer.
    window: Option<i32>,
}

impl Block {
    fn load(
        tree: &mut WeightTree,
        prefix: &str,
        args: &Gemma3Args,
        window: Option<i32>,
    ) -> Result<Self> {
        let (dim, eps) = (args.hidden_size, args.rms_norm_eps);
        let norm = |tree: &mut WeightTree, name: &str| {
            RmsNorm::load_one_plus(tree, &format!("{prefix}.{name}"), dim, eps)
        };
        Ok(Self {
            input_norm: norm(tree, "input_layernorm")?,
            attention: Attention::load(tree, &format!("{prefix}.self_attn"), args)?,
            post_attention_norm: norm(tree, "post_attention_layernorm")?,
            pre_feedforward_norm: norm(tree, "pre_feedforward_layernorm")?,
            mlp: GeGluMlp::load(tree, &format!("{prefix}.mlp"), dim, args.intermediate_size)?,
            post_feedforward_norm: norm(tree, "post_feedforward_layernorm")?,
            window,
        })
    }

    /// Each sub-layer's output is normed again before joining the residual.
    fn forward(&self, x: &Array, rope: &Rope, pass: Pass) -> Result<Array> {
        let r = self
            .attention
            .forward(&self.input_norm.forward(x)?, rope, pass)?;
        let h = x.add(self.post_attention_norm.forward(&r)?)?;
        let r = self.mlp.forward(&self.pre_feedforward_norm.forward(&h)?)?;
        Ok(h.add(self.post_feedforward_norm.forward(&r)?)?)
    }
}

// ----------------------------------------------------------------- model

pub struct Gemma3 {
    args: Gemma3Args,
    embed_tokens: Embedding,
    /// √hidden in the embedding's dtype (HF rounds it the same way).
    embed_scale: f32,
    layers: Vec<Block>,
    /// Final norm and LM head (usually the embedding).
    head: LmHead,
    local_rope: Rope,
    global_rope: Rope,
}

impl Gemma3 {
    /// A `gemma3_text` config, or a multimodal `gemma3` one.
    pub fn load(config: &serde_json::Value, mut tree: WeightTree) -> Result<Self> {
        let config = match config.get("model_type").and_then(|t| t.as_str()) {
            Some("gemma3") => {
                // Checkpoint layouts of the multimodal model: HF ≤ 4
                // (`language_model.model.*`), HF 5 (`model.language_model.*`),
                // mlx-vlm (`language_model.model.*` too).
                tree.discard_where(|n| {
                    n.contains("vision_tower.") || n.contains("multi_modal_projector.")
                });
                tree.rename_prefix("language_model.model.", "model.");
                tree.rename_prefix("model.language_model.", "model.");
                tree.rename_prefix("language_model.lm_head.", "lm_head.");
                config
                    .get("text_config")
                    .filter(|c| c.is_object())
                    .ok_or_else(|| {
                        Error::format("config.json: a gemma3 config needs its `text_config`")
                    })?
            }
            _ => config,
        };
        let args = Gemma3Args::from_config(config)?;
        tree.discard_where(|name| name.ends_with(".rotary_emb.inv_freq"));
        let embed_tokens = Embedding::load(
            &mut tree,
            "model.embed_tokens",
            args.vocab_size,
            args.hidden_size,
        )?;
        let layers = args
            .sliding(config)?
            .into_iter()
            .enumerate()
            .map(|(i, sliding)| {
                let window = sliding.then_some(args.sliding_window);
                Block::load(&mut tree, &format!("model.layers.{i}"), &args, window)
            })
            .collect::<Result<Vec<_>>>()?;
        let norm =
            RmsNorm::load_one_plus(&mut tree, "model.norm", args.hidden_size, args.rms_norm_eps)?;
        // Released checkpoints tie the head; a separate one is used if present.
        let head = LmHead::load_if_present(
            &mut tree,
            norm,
            &embed_tokens,
            args.hidden_size,
            args.vocab_size,
        )?;
        let local_rope = Rope::new(args.head_dim, args.rope_local_base_freq, false, None)?;
        let global_rope = Rope::new(
            args.head_dim,
            args.rope_theta,
            false,
            args.rope_scaling.as_ref(),
        )?;
        tree.finish()?;
        Ok(Self {
            embed_scale: (args.hidden_size as f32).sqrt(),
            args,
            embed_tokens,
            layers,
            head,
            local_rope,
            global_rope,
        })
    }

    fn rope(&self, layer: &Block) -> &Rope {
        if layer.window.is_some() {
            &self.local_rope
        } else {
            &self.global_rope
        }
    }
}

impl Decoder for Gemma3 {
    type Block = Block;

    fn blocks(&self) -> &[Block] {
        &self.layers
    }

    /// Local layers keep only their window, so a config decodes in batches
    /// only when all of its layers are global.
    fn window(&self, block: &Block) -> Option<i32> {
        block.window
    }

    fn embed(&self, tokens: &Array) -> Result<Array> {
        let h = self.embed_tokens.forward(tokens)?;
        let scale = Array::from_f32(self.embed_scale).as_dtype(h.dtype())?;
        Ok(h.multiply(&scale)?)
    }

    fn forward_block(&self, block: &Block, x: &Array, pass: Pass) -> Result<Array> {
        block.forward(x, self.rope(block), pass)
    }

    fn head(&self, h: &Array) -> Result<Array> {
        let logits = self.head.forward(h)?;
        match self.args.final_logit_softcapping {
            Some(cap) => {
                let cap = Array::from_f32(cap).as_dtype(logits.dtype())?;
                Ok(ops::tanh(&logits.divide(&cap)?)?.multiply(&cap)?)
            }
            None => Ok(logits),
        }
    }

    fn vocab(&self) -> i32 {
        self.args.vocab_size
    }

    fn max_positions(&self) -> Option<i64> {
        self.args.max_position_embeddings
    }
}
