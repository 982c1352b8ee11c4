//! The language-model head: the final norm, then logits through the
//! checkpoint's own `lm_head` or, with tied embeddings, the token embedding
//! reused as the projection (mlx-lm's `embed_tokens.as_linear`;
//! candle-transformers likewise builds its `lm_head` from the embedding).

use mlx_rs::Array;

use super::{Embedding, Linear, RmsNorm, WeightTree};
use crate::Result;

/// Final norm and output projection: hidden states `[.., D]` → logits
/// `[.., vocab]`.
pub struct LmHead {
    norm: RmsNorm,
    projection: Projection,
}

enum Projection {
    /// The checkpoint's `lm_head`.
    Own(Linear),
    /// The token embedding (its arrays shared, not copied).
    Tied(Embedding),
}

impl LmHead {
    /// `norm`, then `lm_head` `[vocab, dim]` — or, when `tied` (the config's
    /// `tie_word_embeddings`), `embedding`; an `lm_head` copy a tied
    /// checkpoint carries anyway is dropped.
    pub fn load(
        tree: &mut WeightTree,
        norm: RmsNorm,
        embedding: &Embedding,
        tied: bool,
        dim: i32,
        vocab: i32,
    ) -> Result<Self> {
        if tied {
            tree.discard_where(|name| name.starts_with("lm_head."));
            return Ok(Self::tied(norm, embedding));
        }
        Self::own(tree, norm, dim, vocab)
    }

    /// For configs without a tie flag (Gemma): the checkpoint's `lm_head`
    /// when it has one, else `embedding`.
    pub fn load_if_present(
        tree: &mut WeightTree,
        norm: RmsNorm,
        embedding: &Embedding,
        dim: i32,
        vocab: i32,
    ) -> Result<Self> {
        if tree.contains("lm_head.weight") {
            Self::own(tree, norm, dim, vocab)
        } else {
            Ok(Self::tied(norm, embedding))
        }
    }

    fn own(tree: &mut WeightTree, norm: RmsNorm, dim: i32, vocab: i32) -> Result<Self> {
        Ok(Self {
            norm,
            projection: Projection::Own(Linear::load(tree, "lm_head", dim, vocab, false)?),
        })
    }

    fn tied(norm: RmsNorm, embedding: &Embedding) -> Self {
        Self {
            norm,
            projection: Projection::Tied(embedding.clone()),
        }
    }

    pub fn forward(&self, h: &Array) -> Result<Array> {
        let h = self.norm.forward(h)?;
        match &self.projection {
            Projection::Own(head) => head.forward(&h),
            Projection::Tied(embedding) => embedding.as_linear(&h),
        }
    }
}
