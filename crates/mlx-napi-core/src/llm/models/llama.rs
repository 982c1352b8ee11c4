//! Llama (and SmolLM2, Mistral): pre-norm decoder blocks of grouped-query
//! attention with RoPE and a SwiGLU MLP, RMSNorm everywhere, optionally tied
//! embeddings and a sliding attention window (Mistral).
//!
//! Qwen2 and Qwen3 are this network with small switches (biases on q/k/v,
//! per-head q/k RMSNorm), set by their own files through [`LlamaArgs`].

use mlx_rs::{ops::indexing::TryIndexOp, Array};
use serde::Deserialize;

use super::{parse_config, LanguageModel};
use crate::{
    cache::KvCache,
    nn::{
        attention, causal_window_mask, AttentionMask, Embedding, Linear, RmsNorm, Rope, SwiGluMlp,
        WeightTree,
    },
    Error, Result,
};

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
    #[serde(default)]
    pub sliding_window: Option<i32>,
    /// Positions the model was trained on; prompts must fit (absent: no limit).
    #[serde(default)]
    pub max_position_embeddings: Option<i64>,
    /// Not HF fields: set by the Qwen files.
    #[serde(skip)]
    pub qkv_bias_only: bool,
    #[serde(skip)]
    pub qk_norm: bool,
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
        // transformers ≥ 5 writes `rope_parameters` (theta + scaling in one
        // object) instead of `rope_theta` / `rope_scaling`.
        if let Some(params) = config.get("rope_parameters").filter(|p| p.is_object()) {
            if let Some(theta) = params.get("rope_theta").and_then(|t| t.as_f64()) {
                args.rope_theta = theta as f32;
            }
            if args.rope_scaling.as_ref().is_none_or(|s| s.is_null()) {
                args.rope_scaling = Some(params.clone());
            }
        }
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
        let positive = [
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("head_dim", self.head_dim()),
            ("vocab_size", self.vocab_size),
        ];
        // Upper bounds far above any released model, checked before any
        // allocation is sized from them (a forged config must not ask for TBs).
        let limits = [
            1 << 18, // hidden_size
            1 << 12, // num_hidden_layers
            1 << 20, // intermediate_size
            1 << 12, // num_attention_heads
            1 << 12, // num_key_value_heads
            1 << 14, // head_dim
            1 << 22, // vocab_size
        ];
        for ((name, value), max) in positive.into_iter().zip(limits) {
            if value <= 0 || value > max {
                return Err(Error::format(format!(
                    "config.json: {name} must be in 1..={max}, got {value}"
                )));
            }
        }
        if self.max_position_embeddings.is_some_and(|n| n <= 0) {
            return Err(Error::format(
                "config.json: max_position_embeddings must be positive",
            ));
        }
        if self.num_attention_heads % self.kv_heads() != 0 {
            return Err(Error::format(format!(
                "config.json: num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                self.num_attention_heads,
                self.kv_heads()
            )));
        }
        if self.sliding_window.is_some_and(|w| w <= 0) {
            return Err(Error::format(
                "config.json: sliding_window must be positive",
            ));
        }
        Ok(self)
    }
}

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
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
        let qkv_bias = args.attention_bias || args.qkv_bias_only;
        let o_bias = args.attention_bias && !args.qkv_bias_only;
        let norm = |tree: &mut WeightTree, name: &str| -> Result<Option<RmsNorm>> {
            args.qk_norm
                .then(|| {
                    RmsNorm::load(
                        tree,
                        &format!("{prefix}.{name}"),
                        head_dim,
                        args.rms_norm_eps,
                    )
                })
                .transpose()
        };
        Ok(Self {
            q_proj: Linear::load(
                tree,
                &format!("{prefix}.q_proj"),
                dim,
                heads * head_dim,
                qkv_bias,
            )?,
            k_proj: Linear::load(
                tree,
                &format!("{prefix}.k_proj"),
                dim,
                kv_heads * head_dim,
                qkv_bias,
            )?,
            v_proj: Linear::load(
                tree,
                &format!("{prefix}.v_proj"),
                dim,
                kv_heads * head_dim,
                qkv_bias,
            )?,
            o_proj: Linear::load(
                tree,
                &format!("{prefix}.o_proj"),
                heads * head_dim,
                dim,
                o_bias,
            )?,
            q_norm: norm(tree, "q_norm")?,
            k_norm: norm(tree, "k_norm")?,
            heads,
            kv_heads,
            head_dim,
            scale: (head_dim as f32).powf(-0.5),
        })
    }

    /// `x [B, L, D]` → `[B, L, D]`, reading and extending `cache`.
    fn forward(
        &self,
        x: &Array,
        rope: &Rope,
        cache: &mut KvCache,
        mask: &MaskPlan,
    ) -> Result<Array> {
        let (b, l) = (x.dim(0), x.dim(1));
        // [B, L, H, hd]; the optional norms act per head, then heads move to axis 1.
        let split = |y: Array, heads: i32, norm: &Option<RmsNorm>| -> Result<Array> {
            let y = y.reshape(&[b, l, heads, self.head_dim])?;
            let y = match norm {
                Some(n) => n.forward(&y)?,
                None => y,
            };
            Ok(y.transpose_axes(&[0, 2, 1, 3])?)
        };
        let q = split(self.q_proj.forward(x)?, self.heads, &self.q_norm)?;
        let k = split(self.k_proj.forward(x)?, self.kv_heads, &self.k_norm)?;
        let v = split(self.v_proj.forward(x)?, self.kv_heads, &None)?;
        let offset = cache.offset();
        let q = rope.forward(&q, offset)?;
        let k = rope.forward(&k, offset)?;
        let (k, v) = cache.update_and_fetch(&k, &v)?;
        let out = attention(&q, &k, &v, self.scale, &mask.for_keys(l, k.dim(2))?)?;
        let out =
            out.transpose_axes(&[0, 2, 1, 3])?
                .reshape(&[b, l, self.heads * self.head_dim])?;
        self.o_proj.forward(&out)
    }
}

/// Which mask a forward pass needs: none for one token, MLX's implicit causal
/// mask for a chunk, an explicit one only with a sliding window (built once
/// per forward and shared by the layers).
struct MaskPlan {
    window: Option<i32>,
    built: std::cell::RefCell<Option<(i32, Array)>>,
}

impl MaskPlan {
    fn for_keys(&self, queries: i32, keys: i32) -> Result<AttentionMask> {
        if queries == 1 {
            return Ok(AttentionMask::None);
        }
        let Some(window) = self.window else {
            return Ok(AttentionMask::Causal);
        };
        let mut built = self.built.borrow_mut();
        if let Some((len, mask)) = built.as_ref() {
            if *len == keys {
                return Ok(AttentionMask::Array(mask.clone()));
            }
        }
        let mask = causal_window_mask(queries, keys, Some(window))?;
        *built = Some((keys, mask.clone()));
        Ok(AttentionMask::Array(mask))
    }
}

struct Block {
    input_norm: RmsNorm,
    attention: Attention,
    post_attention_norm: RmsNorm,
    mlp: SwiGluMlp,
}

impl Block {
    fn load(tree: &mut WeightTree, prefix: &str, args: &LlamaArgs) -> Result<Self> {
        let eps = args.rms_norm_eps;
        Ok(Self {
            input_norm: RmsNorm::load(
                tree,
                &format!("{prefix}.input_layernorm"),
                args.hidden_size,
                eps,
            )?,
            attention: Attention::load(tree, &format!("{prefix}.self_attn"), args)?,
            post_attention_norm: RmsNorm::load(
                tree,
                &format!("{prefix}.post_attention_layernorm"),
                args.hidden_size,
                eps,
            )?,
            mlp: SwiGluMlp::load(
                tree,
                &format!("{prefix}.mlp"),
                args.hidden_size,
                args.intermediate_size,
                args.mlp_bias,
            )?,
        })
    }

    fn forward(
        &self,
        x: &Array,
        rope: &Rope,
        cache: &mut KvCache,
        mask: &MaskPlan,
    ) -> Result<Array> {
        let h =
            x.add(
                self.attention
                    .forward(&self.input_norm.forward(x)?, rope, cache, mask)?,
            )?;
        Ok(h.add(self.mlp.forward(&self.post_attention_norm.forward(&h)?)?)?)
    }
}

pub struct Llama {
    args: LlamaArgs,
    embed_tokens: Embedding,
    layers: Vec<Block>,
    norm: RmsNorm,
    /// `None` when the embedding doubles as the LM head.
    lm_head: Option<Linear>,
    rope: Rope,
}

impl Llama {
    pub fn load(config: &serde_json::Value, weights: WeightTree) -> Result<Self> {
        Self::from_args(LlamaArgs::from_config(config)?, weights)
    }

    pub fn from_args(args: LlamaArgs, mut tree: WeightTree) -> Result<Self> {
        let args = args.validate()?;
        // Precomputed rotary tables some exports carry; we compute RoPE ourselves.
        tree.discard_where(|name| name.ends_with(".rotary_emb.inv_freq"));
        if args.tie_word_embeddings {
            tree.discard_where(|name| name.starts_with("lm_head."));
        }
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
        let lm_head = if args.tie_word_embeddings {
            None
        } else {
            Some(Linear::load(
                &mut tree,
                "lm_head",
                args.hidden_size,
                args.vocab_size,
                false,
            )?)
        };
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
            norm,
            lm_head,
            rope,
        })
    }
}

impl LanguageModel for Llama {
    fn forward(&self, tokens: &Array, caches: &mut [KvCache], last_only: bool) -> Result<Array> {
        if tokens.ndim() != 2 {
            return Err(Error::invalid(format!(
                "tokens must be [B, L], got {:?}",
                tokens.shape()
            )));
        }
        if caches.len() != self.layers.len() {
            return Err(Error::invalid(format!(
                "{} caches for {} layers",
                caches.len(),
                self.layers.len()
            )));
        }
        let mask = MaskPlan {
            window: self.args.sliding_window,
            built: Default::default(),
        };
        let mut h = self.embed_tokens.forward(tokens)?;
        for (layer, cache) in self.layers.iter().zip(caches.iter_mut()) {
            h = layer.forward(&h, &self.rope, cache, &mask)?;
        }
        if last_only && h.dim(1) > 1 {
            let l = h.dim(1);
            h = h.try_index((.., l - 1..l))?;
        }
        let h = self.norm.forward(&h)?;
        match &self.lm_head {
            Some(head) => head.forward(&h),
            None => self.embed_tokens.as_linear(&h),
        }
    }

    fn new_caches(&self) -> Vec<KvCache> {
        (0..self.layers.len())
            .map(|_| match self.args.sliding_window {
                Some(window) => KvCache::with_max_size(window).unwrap_or_default(),
                None => KvCache::new(),
            })
            .collect()
    }

    fn vocab_size(&self) -> usize {
        self.args.vocab_size as usize
    }

    fn context_length(&self) -> Option<usize> {
        self.args.max_position_embeddings.map(|n| n as usize)
    }
}
