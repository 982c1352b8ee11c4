//! Scaled dot-product attention (`fast::scaled_dot_product_attention`) and masks.

use mlx_rs::{
    fast::{self, ScaledDotProductAttentionMask},
    ops, Array,
};

use crate::{cache::LayerCache, Result};

/// How queries may look at keys.
pub enum AttentionMask {
    /// Everything visible (single-token decode, encoder, cross-attention).
    None,
    /// Causal, aligned so the last query sees the last key (MLX's "causal"
    /// mode; no mask array is materialized).
    Causal,
    /// An explicit boolean (true = visible) or additive mask, broadcastable to
    /// `[B, heads, L_q, L_k]`.
    Array(Array),
}

/// `softmax(q kᵀ · scale + mask) v` for `q [B, Hq, Lq, D]`, `k, v [B, Hkv, Lk, D]`
/// (grouped-query attention needs no repeat of `k`/`v`).
pub fn attention(
    q: &Array,
    k: &Array,
    v: &Array,
    scale: f32,
    mask: &AttentionMask,
) -> Result<Array> {
    let mask = match mask {
        AttentionMask::None => None,
        AttentionMask::Causal => Some(ScaledDotProductAttentionMask::Causal),
        AttentionMask::Array(m) => Some(ScaledDotProductAttentionMask::Array(m)),
    };
    Ok(fast::scaled_dot_product_attention(
        q, k, v, scale, mask, None,
    )?)
}

/// Attention of a pass's new positions, as every decoder layer runs it
/// (mlx-lm's `base.scaled_dot_product_attention`): `k`, `v` `[B, Hkv, L, D]`
/// join the layer's `cache`, `q` `[B, Hq, L, D]` (RoPE applied) attends over
/// all the cache hands back under `mask`, and the heads are merged →
/// `[B, L, Hq · D]`, ready for the output projection.
pub fn cached_attention(
    q: &Array,
    k: &Array,
    v: &Array,
    scale: f32,
    cache: &mut dyn LayerCache,
    mask: &MaskPlan,
) -> Result<Array> {
    let (k, v) = cache.update_and_fetch(k, v)?;
    if let Some(padding) = &mask.padding {
        // `applies` checks for one query per row, among the kernel's other limits.
        if super::padded_attention::applies(q, &k) {
            return merge_heads(&super::padded_attention::attention(
                q, &k, &v, scale, padding,
            )?);
        }
    }
    let out = attention(q, &k, &v, scale, &mask.for_keys(q.dim(2), k.dim(2))?)?;
    merge_heads(&out)
}

/// Boolean `[Lq, Lk]` mask where the `Lq` queries are the last positions of the
/// `Lk` keys: query `i` sees key `j` when `j` is not in its future and, with a
/// sliding `window`, is fewer than `window` positions back.
pub fn causal_window_mask(q_len: i32, k_len: i32, window: Option<i32>) -> Result<Array> {
    let query_pos = ops::arange::<_, i32>(k_len - q_len, k_len, None)?.reshape(&[q_len, 1])?;
    let key_pos = ops::arange::<_, i32>(0, k_len, None)?.reshape(&[1, k_len])?;
    let mut visible = key_pos.le(&query_pos)?;
    if let Some(window) = window {
        let recent = query_pos.subtract(&key_pos)?.lt(Array::from_int(window))?;
        visible = visible.logical_and(&recent)?;
    }
    Ok(visible)
}

/// The masks of one forward pass, shared by its layers: none for a single
/// token (or a batch step's padding mask), MLX's implicit causal mask for a
/// chunk, and an explicit one only for layers with a sliding `window`
/// (built on first use, reused while the key length stays the same).
///
/// Models with both kinds of layers (Gemma 3) keep one plan per kind.
pub struct MaskPlan {
    window: Option<i32>,
    /// A batch step's mask hiding each row's left padding.
    decode: Option<Array>,
    /// The same padding as slots per row (int32 `[B]`), for the CUDA kernel
    /// that takes it instead of the mask (`padded_attention`).
    padding: Option<Array>,
    built: std::cell::RefCell<Option<(i32, Array)>>,
}

impl MaskPlan {
    /// For a forward pass over one sequence (or same-position rows).
    pub fn new(window: Option<i32>) -> Self {
        Self {
            window,
            decode: None,
            padding: None,
            built: Default::default(),
        }
    }

    /// For one decoding step of a [`crate::cache::BatchKvCache`], whose
    /// `decode_padding` gives the mask hiding the rows' left padding and the
    /// padding slots per row (`None`: no padding).
    pub fn batch_step(padding: Option<(Array, Array)>) -> Self {
        let (decode, padding) = padding.unzip();
        Self {
            window: None,
            decode,
            padding,
            built: Default::default(),
        }
    }

    /// The mask for `queries` new positions against `keys` cached ones
    /// (the queries being the last of the keys).
    pub fn for_keys(&self, queries: i32, keys: i32) -> Result<AttentionMask> {
        if queries == 1 {
            // A single query may see every key the cache hands back: a
            // sliding-window cache holds only the window already.
            return Ok(match &self.decode {
                Some(mask) => AttentionMask::Array(mask.clone()),
                None => AttentionMask::None,
            });
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

/// `[B, L, heads · head_dim]` → `[B, heads, L, head_dim]` (the layout
/// attention and RoPE take).
pub fn split_heads(x: &Array, heads: i32, head_dim: i32) -> Result<Array> {
    let (b, l) = (x.dim(0), x.dim(1));
    Ok(x.reshape(&[b, l, heads, head_dim])?
        .transpose_axes(&[0, 2, 1, 3])?)
}

/// `[B, heads, L, head_dim]` → `[B, L, heads · head_dim]`.
pub fn merge_heads(x: &Array) -> Result<Array> {
    let (b, heads, l, head_dim) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3));
    Ok(x.transpose_axes(&[0, 2, 1, 3])?
        .reshape(&[b, l, heads * head_dim])?)
}
