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
    check_dims,
    decoder::{Decoder, Pass},
    parse_config,
    qwen3::{Attention, Qwen3Args},
};
use crate::{
    nn::{
        top_k_routing, Embedding, Linear, LmHead, RmsNorm, Rope, SwiGluMlp, SwitchGlu, WeightTree,
    },
    Result,
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

pub(crate) struct Block {
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

    fn forward(&self, x: &Array, rope: &Rope, pass: Pass) -> Result<Array> {
        let normed = self.input_norm.forward(x)?;
        let h = x.add(self.attention.forward(&normed, rope, pass)?)?;
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
    /// Final norm and LM head (tied embedding or its own).
    head: LmHead,
    rope: Rope,
}

impl Qwen3Moe {
    pub fn load(config: &serde_json::Value, mut tree: WeightTree) -> Result<Self> {
        let args = Qwen3Args::from_config(config)?;
        let moe = MoeArgs::from_config(config)?;
        tree.discard_where(|name| name.ends_with(".rotary_emb.inv_freq"));
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
            false,
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

impl Decoder for Qwen3Moe {
    type Block = Block;

    fn blocks(&self) -> &[Block] {
        &self.layers
    }

    fn window(&self, block: &Block) -> Option<i32> {
        block.window
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
