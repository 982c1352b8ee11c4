//! Log-probabilities of sampled tokens, computed on the device and packed
//! with the token ids so a decoding step still makes one host read.
//!
//! A row of the packed float32 array `[B, 2 + 2k]` is
//! `[token, logprob(token), id₁ … id_k, logprob₁ … logprob_k]`, the
//! alternatives in descending order. Ids travel as float32, exact below 2²⁴
//! (vocabularies are capped at 2²² when a model loads).
//!
//! The distribution is the model's after logit bias and penalties, before
//! temperature and truncation (what mlx-lm's `generate_step` yields and
//! OpenAI's API reports).

use mlx_rs::{
    ops::{self, indexing::TryIndexOp},
    Array, Dtype,
};

use crate::{Error, Result};

/// Most alternatives a request may ask for per token.
pub const MAX_TOP_LOGPROBS: usize = 100;

/// One generated token's log-probability and the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    /// `(token, logprob)`, most likely first.
    pub top: Vec<(u32, f32)>,
}

/// Width of a packed row for `k` alternatives.
pub fn packed_width(k: usize) -> usize {
    2 + 2 * k
}

/// Packs `tokens` (int `[B]`) with their log-probabilities under `logits`
/// (float32 `[B, V]`, already processed) and the `k` best alternatives.
pub fn pack(logits: &Array, tokens: &Array, k: usize) -> Result<Array> {
    let b = logits.dim(0);
    let vocab = logits.dim(1) as usize;
    if k > vocab {
        return Err(Error::invalid(format!(
            "topLogprobs {k} exceeds the vocabulary ({vocab})"
        )));
    }
    let logprobs = logits.subtract(logits.logsumexp_axis(-1, true)?)?;
    let column = tokens.reshape(&[b, 1])?.as_dtype(Dtype::Int32)?;
    let chosen = logprobs.take_along_axis(&column, -1)?;
    let mut parts = vec![column.as_dtype(Dtype::Float32)?, chosen];
    if k > 0 {
        let k = k as i32;
        let candidates =
            ops::argpartition_axis(logprobs.negative()?, k - 1, -1)?.try_index((.., ..k))?;
        let values = logprobs.take_along_axis(&candidates, -1)?;
        let order = ops::argsort_axis(values.negative()?, -1)?;
        parts.push(
            candidates
                .take_along_axis(&order, -1)?
                .as_dtype(Dtype::Float32)?,
        );
        parts.push(values.take_along_axis(&order, -1)?);
    }
    Ok(ops::concatenate(&parts, 1)?)
}

/// Reads one packed row (see the module docs) with `k` alternatives.
pub fn unpack(row: &[f32], k: usize) -> TokenLogprob {
    let top = (0..k)
        .map(|i| (row[2 + i] as u32, row[2 + k + i]))
        .collect();
    TokenLogprob {
        token: row[0] as u32,
        logprob: row[1],
        top,
    }
}
