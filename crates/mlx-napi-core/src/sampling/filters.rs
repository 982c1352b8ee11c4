//! Truncation filters on `[B, V]` logits: disallowed tokens get −∞.

use mlx_rs::{ops, ops::indexing::TryIndexOp, Array};

use crate::Result;

fn neg_inf() -> Array {
    Array::from_f32(f32::NEG_INFINITY)
}

/// Keeps the `k` largest logits per row (ties with the k-th are kept).
pub fn apply_top_k(logits: &Array, k: i32) -> Result<Array> {
    let vocab = logits.dim(-1);
    if k >= vocab {
        return Ok(logits.clone());
    }
    // The k-th largest value: partition the negated logits at k-1.
    let kth = ops::partition_axis(logits.negative()?, k - 1, -1)?
        .try_index((.., k - 1..k))?
        .negative()?;
    Ok(ops::select(logits.lt(&kth)?, neg_inf(), logits)?)
}

/// Keeps, per row, the most likely tokens until their probability mass reaches
/// `p` (the token that crosses `p` is kept, so at least one always is).
pub fn apply_top_p(logits: &Array, p: f32) -> Result<Array> {
    if p >= 1.0 {
        return Ok(logits.clone());
    }
    let order = ops::argsort_axis(logits.negative()?, -1)?;
    let sorted = logits.take_along_axis(&order, -1)?;
    let probs = ops::softmax_axis(&sorted, -1, true)?;
    let mass_before = probs.cumsum(-1, None, None)?.subtract(&probs)?;
    let kept = ops::select(mass_before.lt(Array::from_f32(p))?, &sorted, neg_inf())?;
    Ok(logits.put_along_axis(&order, &kept, -1)?)
}

/// Drops tokens whose probability is below `min_p` × the row's top probability.
pub fn apply_min_p(logits: &Array, min_p: f32) -> Result<Array> {
    if min_p <= 0.0 {
        return Ok(logits.clone());
    }
    // In log space: logit − max < ln(min_p) ⇔ p < min_p · p_max.
    let gap = logits.subtract(logits.max_axis(-1, true)?)?;
    Ok(ops::select(
        gap.lt(Array::from_f32(min_p.ln()))?,
        neg_inf(),
        logits,
    )?)
}
