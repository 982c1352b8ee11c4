//! Qwen3-MoE (Qwen3-30B-A3B, Qwen3-235B-A22B): Qwen3's attention (per-head
//! q/k RMSNorm, explicit `head_dim`) with a sparse mixture-of-experts MLP —
//! a router picks each token's top-k experts (softmax, then the k largest,
//! renormalized with `norm_topk_prob`) and the output is their weighted sum.
//! Layers listed in `mlp_only_layers`, or off the `decoder_sparse_step`
//! grid, keep a dense SwiGLU MLP.
//!
//! The attention is `qwen3::Attention` (as candle-transformers shares it);
//! the experts run through `nn::SwitchGlu` (gather matmuls, no host loop).
//!
//! Reads top to bottom: args → sparse MLP → block → model.

use mlx_rs::Array;
use serde::Deserialize;

use super::{
    check_batch_step, check_dims, check_forward, last_position, layer_caches, parse_config,
    qwen3::{Attention, Qwen3Args},
    LanguageModel,
};
use crate::{
    cache::{BatchKvCache, KvCache, LayerCache},
    nn::{
        top_k_routing, Embedding, Linear, MaskPlan, RmsNorm, Rope, RopeOffset, SwiGluMlp,
        SwitchGlu, WeightTree,
    },
    Error, Result,
};

// ------------------------------------------------------------------ args

/// The MoE fields; the rest of the config is Qwen3's.
#[derive(Debug, Clone, Deserialize)]
pub struct MoeArgs {
    /// HF checkpoints say `num_experts`; transformers 5 writes `num_local_experts`.
    #[serde(alias = "num_local_experts")]
    pub num_experts: i32,
    pub num_experts_per_tok: i32,
    pub moe_intermediate_size: i32,
    #[serde(default = "one")]
    pub decoder_sparse_step: i32,
    #[serde(default)]
    pub mlp_only_layers: Vec<i32>,
    #[serde(default)]
    pub norm_topk_prob: bool,
}

fn one() -> i32 {
    1
}

impl MoeArgs {
    pub fn from_config(config: &serde_json::Value) -> Result<Self> {
        let args: Self = parse_config(config)?;
        check_dims(&[
            ("num_experts", args.num_experts.into(), 1 << 12),
            (
                "num_experts_per_tok",
                args.num_experts_per_tok.into(),
                args.num_experts.into(),
            ),
            (
                "moe_intermediate_size",
                args.moe_intermediate_size.into(),
                1 << 20,
            ),
            (
                "decoder_sparse_step",
                args.decoder_sparse_step.into(),
                1 << 12,
            ),
        ])?;
        Ok(args)
    }

    /// HF's rule for which layers are sparse.
    fn is_sparse(&self, layer: i32) -> bool {
        !self.mlp_only_layers.contains(&layer) && (layer + 1) % self.decoder_sparse_step == 0
    }
}

// ------------------------------------------------------------ sparse MLP

struct SparseMlp {
    /// Router: hidden → one logit per expert.
    gate: Linear,
    experts: SwitchGlu,
    top_k: i32,
    normalize: bool,
}

impl SparseMlp {
    fn load(tree: &mut WeightTree, prefix: &str, dim: i32, moe: &MoeArgs) -> Result<Self> {
        Ok(Self {
            gate: Linear::load(tree, &format!("{prefix}.gate"), dim, moe.num_experts, false)?,
            experts: SwitchGlu::load(
                tree,
                prefix,
                moe.num_experts,
                dim,
                moe.moe_intermediate_size,
            )?,
            top_k: moe.num_experts_per_tok,
            normalize: moe.norm_topk_prob,
        })
    }

    fn forward(&self, x: &Array) -> Result<Array> {
        let (indices, weights) = top_k_routing(&self.gate.forward(x)?, self.top_k, self.normalize)?;
        let y = self.experts.forward(x, &indices)?; // [B, L, k, D]
        Ok(y.multiply(weights.expand_dims(-1)?)?.sum_axis(-2, false)?)
    }
}

enum Mlp {
    Dense(SwiGluMlp),
    Sparse(SparseMlp),
}

// ----------------------------------------------------------------- block

struct Block {
    input_norm: RmsNorm,
    attention: Attention,
    post_attention_norm: RmsNorm,
    mlp: Mlp,
    window: Option<i32>,
}

impl Block {
    fn load(
        tree: &mut WeightTree,
        layer: i32,
        args: &Qwen3Args,
        moe: &MoeArgs,
        window: Option<i32>,
    ) -> Result<Self> {
        let prefix = format!("model.layers.{layer}");
        let (dim, eps) = (args.hidden_size, args.rms_norm_eps);
        let mlp_prefix = format!("{prefix}.mlp");
        let mlp = if moe.is_sparse(layer) {
            Mlp::Sparse(SparseMlp::load(tree, &mlp_prefix, dim, moe)?)
        } else {
            Mlp::Dense(SwiGluMlp::load(
                tree,
                &mlp_prefix,
                dim,
                args.intermediate_size,
                false,
            )?)
        };
        Ok(Self {
            input_norm: RmsNorm::load(tree, &format!("{prefix}.input_layernorm"), dim, eps)?,
            attention: Attention::load(tree, &format!("{prefix}.self_attn"), args)?,
            post_attention_norm: RmsNorm::load(
                tree,
                &format!("{prefix}.post_attention_layernorm"),
                dim,
                eps,
            )?,
            mlp,
            window,
        })
    }

    fn forward(
        &self,
        x: &Array,
        rope: &Rope,
        offset: &RopeOffset,
        cache: &mut dyn LayerCache,
        mask: &MaskPlan,
    ) -> Result<Array> {
        let normed = self.input_norm.forward(x)?;
        let h = x.add(self.attention.forward(&normed, rope, offset, cache, mask)?)?;
        let normed = self.post_attention_norm.forward(&h)?;
        let out = match &self.mlp {
            Mlp::Dense(mlp) => mlp.forward(&normed)?,
            Mlp::Sparse(mlp) => mlp.forward(&normed)?,
        };
        Ok(h.add(out)?)
    }
}

// ----------------------------------------------------------------- model

pub struct Qwen3Moe {
    args: Qwen3Args,
    embed_tokens: Embedding,
    layers: Vec<Block>,
    norm: RmsNorm,
    lm_head: Option<Linear>,
    rope: Rope,
}

impl Qwen3Moe {
    pub fn load(config: &serde_json::Value, mut tree: WeightTree) -> Result<Self> {
        let args = Qwen3Args::from_config(config)?;
        let moe = MoeArgs::from_config(config)?;
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
        let layers = args
            .windows(config)?
            .into_iter()
            .zip(0..)
            .map(|(window, i)| Block::load(&mut tree, i, &args, &moe, window))
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
            false,
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

    fn head(&self, h: &Array) -> Result<Array> {
        let h = self.norm.forward(h)?;
        match &self.lm_head {
            Some(head) => head.forward(&h),
            None => self.embed_tokens.as_linear(&h),
        }
    }
}

impl LanguageModel for Qwen3Moe {
    fn forward(&self, tokens: &Array, caches: &mut [KvCache], last_only: bool) -> Result<Array> {
        check_forward(tokens, caches.len(), self.layers.len())?;
        let full = MaskPlan::new(None);
        let sliding = MaskPlan::new(self.args.sliding_window);
        let mut h = self.embed_tokens.forward(tokens)?;
        for (layer, cache) in self.layers.iter().zip(caches.iter_mut()) {
            let offset = RopeOffset::Same(cache.offset());
            let mask = if layer.window.is_some() {
                &sliding
            } else {
                &full
            };
            h = layer.forward(&h, &self.rope, &offset, cache, mask)?;
        }
        self.head(&last_position(h, last_only)?)
    }

    fn forward_batch(&self, tokens: &Array, cache: &mut BatchKvCache) -> Result<Array> {
        check_batch_step(tokens, cache)?;
        if !self.supports_batching() {
            return Err(Error::invalid(
                "sliding-window models do not decode in batches",
            ));
        }
        let mask = MaskPlan::batch_step(cache.decode_mask()?);
        let offset = cache.rope_offset();
        let mut h = self.embed_tokens.forward(tokens)?;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h, &self.rope, &offset, &mut cache.layer(i), &mask)?;
        }
        cache.advance(1);
        Ok(self.head(&h)?.reshape(&[tokens.dim(0), -1])?)
    }

    fn supports_batching(&self) -> bool {
        self.layers.iter().all(|l| l.window.is_none())
    }

    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn new_caches(&self) -> Vec<KvCache> {
        layer_caches(self.layers.iter().map(|l| l.window))
    }

    fn vocab_size(&self) -> usize {
        self.args.vocab_size as usize
    }

    fn context_length(&self) -> Option<usize> {
        self.args.max_position_embeddings.map(|n| n as usize)
    }
}
