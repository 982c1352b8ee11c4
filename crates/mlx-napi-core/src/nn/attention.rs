//! Scaled dot-product attention (`fast::scaled_dot_product_attention`) and masks.

use mlx_rs::{
    fast::{self, ScaledDotProductAttentionMask},
    ops, Array,
};

use crate::Result;

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
