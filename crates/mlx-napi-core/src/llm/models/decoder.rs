//! What every model here does around its blocks: embed the tokens, run the
//! blocks in order (each over its own cache, with the pass's RoPE positions
//! and the mask for its attention window), then the head — over
//! per-sequence caches (`forward`) or one step of a batch (`forward_batch`).
//!
//! A model file implements [`Decoder`] (its embedding, blocks, head) and
//! gets [`LanguageModel`] from here, so each file holds only what makes the
//! architecture its own.

use mlx_rs::{ops::indexing::TryIndexOp, Array};

use super::LanguageModel;
use crate::{
    cache::{BatchKvCache, KvCache, LayerCache},
    nn::{MaskPlan, RopeOffset},
    Error, Result,
};

/// A decoder-only model as [`LanguageModel`] runs it.
pub(crate) trait Decoder: Send {
    /// One transformer layer (attention and MLP with their norms).
    type Block;

    /// The blocks in order; each has one cache.
    fn blocks(&self) -> &[Self::Block];

    /// A block's attention window (`None`: the whole context).
    fn window(&self, block: &Self::Block) -> Option<i32>;

    /// Token ids `[B, L]` → the first block's input `[B, L, D]`.
    fn embed(&self, tokens: &Array) -> Result<Array>;

    /// One block over `x` `[B, L, D]`.
    fn forward_block(&self, block: &Self::Block, x: &Array, pass: Pass) -> Result<Array>;

    /// The last block's output → logits.
    fn head(&self, h: &Array) -> Result<Array>;

    /// The config's `vocab_size`.
    fn vocab(&self) -> i32;

    /// The config's `max_position_embeddings` (`None`: not given).
    fn max_positions(&self) -> Option<i64>;
}

/// One block's share of a forward pass.
pub(crate) struct Pass<'a> {
    /// RoPE positions of the pass's tokens (per row in a batch step).
    pub offset: &'a RopeOffset,
    /// Positions the longest row holds after the pass (LongRoPE picks its
    /// factors by it).
    pub length: i32,
    /// The block's cache: attention stores the new keys/values in it.
    pub cache: &'a mut dyn LayerCache,
    /// The pass's masks for the block's window.
    pub mask: &'a MaskPlan,
}

impl<M: Decoder> LanguageModel for M {
    fn forward(&self, tokens: &Array, caches: &mut [KvCache], last_only: bool) -> Result<Array> {
        let blocks = self.blocks();
        check_forward(tokens, caches.len(), blocks.len())?;
        let mut masks = MaskPlans::default();
        let mut h = self.embed(tokens)?;
        for (block, cache) in blocks.iter().zip(caches.iter_mut()) {
            let start = cache.offset();
            let pass = Pass {
                offset: &RopeOffset::Same(start),
                length: start + tokens.dim(1),
                cache,
                mask: masks.for_window(self.window(block)),
            };
            h = self.forward_block(block, &h, pass)?;
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
        let mask = MaskPlan::batch_step(cache.decode_padding()?);
        let offset = cache.rope_offset();
        let length = cache.row_lengths().into_iter().max().unwrap_or(0) + 1;
        let mut h = self.embed(tokens)?;
        for (i, block) in self.blocks().iter().enumerate() {
            let pass = Pass {
                offset: &offset,
                length,
                cache: &mut cache.layer(i),
                mask: &mask,
            };
            h = self.forward_block(block, &h, pass)?;
        }
        cache.advance(1);
        Ok(self.head(&h)?.reshape(&[tokens.dim(0), -1])?)
    }

    /// Batch caches keep whole rows, sliding layers keep only their window:
    /// the two do not mix yet.
    fn supports_batching(&self) -> bool {
        self.blocks().iter().all(|b| self.window(b).is_none())
    }

    fn num_layers(&self) -> usize {
        self.blocks().len()
    }

    /// One cache per block: bounded to the window for sliding blocks.
    fn new_caches(&self) -> Vec<KvCache> {
        self.blocks()
            .iter()
            .map(|b| match self.window(b) {
                Some(window) => KvCache::with_max_size(window).unwrap_or_default(),
                None => KvCache::new(),
            })
            .collect()
    }

    fn vocab_size(&self) -> usize {
        self.vocab() as usize
    }

    fn context_length(&self) -> Option<usize> {
        self.max_positions().map(|n| n as usize)
    }
}

/// One [`MaskPlan`] per attention window of a pass, shared by the blocks
/// with that window (a sliding mask is built once, not once per layer).
#[derive(Default)]
struct MaskPlans(Vec<(Option<i32>, MaskPlan)>);

impl MaskPlans {
    fn for_window(&mut self, window: Option<i32>) -> &MaskPlan {
        let i = match self.0.iter().position(|(w, _)| *w == window) {
            Some(i) => i,
            None => {
                self.0.push((window, MaskPlan::new(window)));
                self.0.len() - 1
            }
        };
        &self.0[i].1
    }
}

/// `forward`'s argument checks: `tokens [B, L]`, one cache per layer.
fn check_forward(tokens: &Array, caches: usize, layers: usize) -> Result<()> {
    if tokens.ndim() != 2 {
        return Err(Error::invalid(format!(
            "tokens must be [B, L], got {:?}",
            tokens.shape()
        )));
    }
    if caches != layers {
        return Err(Error::invalid(format!(
            "{caches} caches for {layers} layers"
        )));
    }
    Ok(())
}

/// `forward_batch`'s argument check: one token per row of `cache`.
fn check_batch_step(tokens: &Array, cache: &BatchKvCache) -> Result<()> {
    if tokens.ndim() != 2 || tokens.dim(1) != 1 || tokens.dim(0) as usize != cache.rows() {
        return Err(Error::invalid(format!(
            "a batch step takes one token per row ([{}, 1]), got {:?}",
            cache.rows(),
            tokens.shape()
        )));
    }
    Ok(())
}

/// The last position of `h [B, L, D]` when only the next token's logits are
/// wanted (the LM head is the largest matmul of a prefill).
fn last_position(h: Array, last_only: bool) -> Result<Array> {
    let l = h.dim(1);
    if last_only && l > 1 {
        return Ok(h.try_index((.., l - 1..l))?);
    }
    Ok(h)
}
