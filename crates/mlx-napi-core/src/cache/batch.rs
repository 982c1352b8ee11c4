//! KV cache of a batch whose rows sit at different positions (continuous
//! batching of LLM requests).
//!
//! All rows share one write index `idx`: a decoding step writes every row's
//! new key at `idx`. A row that holds fewer positions than `idx` is
//! left-padded: its first `left_padding[row]` slots are never attended to
//! (the decode mask hides them) and its RoPE position is `idx − padding`, so
//! it computes what it would compute alone. This is the layout of mlx-lm's
//! `BatchKVCache`; here the row bookkeeping is on the host, once for all
//! layers, so a step needs no device read to build its mask or positions.
//!
//! * Requests join with [`BatchKvCache::push_row`] / [`BatchKvCache::push_rows`]
//!   (their own prefilled keys and values): a row shorter than `idx` is
//!   padded on the left, a longer one pads every other row.
//! * A finished one leaves with [`BatchKvCache::retain_rows`]; padding that
//!   every remaining row has in common is then cut off.

use mlx_rs::{
    ops::{self, indexing::TryIndexMutOp, indexing::TryIndexOp},
    Array,
};

use super::{KvCache, LayerCache};
use crate::{nn::RopeOffset, Error, Result};

/// One layer's buffers `[B, heads, capacity, head_dim]`.
#[derive(Default)]
struct Buffers {
    keys: Option<Array>,
    values: Option<Array>,
}

pub struct BatchKvCache {
    layers: Vec<Buffers>,
    /// Never-attended slots at the start of each row.
    left_padding: Vec<i32>,
    /// Shared write position (= the longest row's length).
    idx: i32,
    step: i32,
}

impl BatchKvCache {
    /// An empty batch (no rows) for a model of `layers` layers.
    pub fn new(layers: usize) -> Self {
        Self {
            layers: (0..layers).map(|_| Buffers::default()).collect(),
            left_padding: Vec::new(),
            idx: 0,
            step: KvCache::DEFAULT_STEP,
        }
    }

    pub fn rows(&self) -> usize {
        self.left_padding.len()
    }

    /// Slots per row in use (padding included).
    pub fn len(&self) -> i32 {
        self.idx
    }

    pub fn is_empty(&self) -> bool {
        self.left_padding.is_empty()
    }

    /// Allocated slots per row.
    pub fn capacity(&self) -> i32 {
        self.layers
            .first()
            .and_then(|l| l.keys.as_ref())
            .map_or(0, |k| k.dim(2))
    }

    /// Positions each row holds (its own tokens, padding excluded).
    pub fn row_lengths(&self) -> Vec<i32> {
        self.left_padding.iter().map(|p| self.idx - p).collect()
    }

    /// Adds a row holding everything `caches` (one per layer, one row each)
    /// hold; it becomes the last row.
    pub fn push_row(&mut self, caches: &[KvCache]) -> Result<()> {
        let layers = caches
            .iter()
            .map(|c| {
                c.contents()?
                    .ok_or_else(|| Error::invalid("cannot add an empty row to a batch cache"))
            })
            .collect::<Result<Vec<_>>>()?;
        self.push_rows(vec![layers])
    }

    /// Adds rows after the existing ones, in one copy of the buffers. Each
    /// row is its keys and values per layer, `[1, heads, n, head_dim]` with
    /// `n ≥ 1` positions (rows may differ in `n`).
    pub fn push_rows(&mut self, rows: Vec<Vec<(Array, Array)>>) -> Result<()> {
        let mut lengths = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.len() != self.layers.len() {
                return Err(Error::invalid(format!(
                    "a row of {} layers for a batch cache of {}",
                    row.len(),
                    self.layers.len()
                )));
            }
            let n = row[0].0.dim(2);
            if n == 0 || row.iter().any(|(k, v)| k.dim(2) != n || v.dim(2) != n) {
                return Err(Error::invalid(
                    "a joining row needs the same positive length in every layer",
                ));
            }
            if row.iter().any(|(k, _)| k.dim(0) != 1) {
                return Err(Error::invalid("a joining row must hold one sequence"));
            }
            lengths.push(n);
        }
        let Some(&longest) = lengths.iter().max() else {
            return Ok(());
        };
        let existing = self.rows() > 0;
        // Existing rows move right when a new row is longer than all of them.
        let shift = (longest - self.idx).max(0);
        let idx = self.idx + shift;
        let capacity = if existing {
            self.capacity() + shift
        } else {
            round_up(idx + 1, self.step)
        };
        for (layer, buffers) in self.layers.iter_mut().enumerate() {
            for (is_key, buf) in [(true, &mut buffers.keys), (false, &mut buffers.values)] {
                let mut parts = Vec::with_capacity(rows.len() + 1);
                if let Some(old) = buf.take().filter(|_| existing) {
                    parts.push(pad_axis2(&old, shift, 0)?);
                }
                for (row, &n) in rows.iter().zip(&lengths) {
                    let (k, v) = &row[layer];
                    let new = if is_key { k } else { v };
                    // Right-aligned at `idx`, zeros around it.
                    parts.push(pad_axis2(new, idx - n, capacity - idx)?);
                }
                *buf = Some(if parts.len() == 1 {
                    parts.pop().unwrap()
                } else {
                    ops::concatenate(&parts, 0)?
                });
            }
        }
        for p in &mut self.left_padding {
            *p += shift;
        }
        self.left_padding.extend(lengths.iter().map(|n| idx - n));
        self.idx = idx;
        Ok(())
    }

    /// Keeps the rows `keep` (ascending indices), in that order.
    pub fn retain_rows(&mut self, keep: &[usize]) -> Result<()> {
        if keep.len() == self.rows() && keep.iter().enumerate().all(|(i, &k)| i == k) {
            return Ok(());
        }
        if let Some(&bad) = keep.iter().find(|&&k| k >= self.rows()) {
            return Err(Error::invalid(format!(
                "row {bad} is outside a batch of {}",
                self.rows()
            )));
        }
        if keep.is_empty() {
            *self = Self::new(self.layers.len());
            return Ok(());
        }
        let index: Vec<i32> = keep.iter().map(|&k| k as i32).collect();
        let index = Array::from_slice(&index, &[index.len() as i32]);
        self.left_padding = keep.iter().map(|&k| self.left_padding[k]).collect();
        // Padding all remaining rows share is dropped.
        let common = self.left_padding.iter().copied().min().unwrap_or(0);
        for buffers in &mut self.layers {
            for buf in [&mut buffers.keys, &mut buffers.values] {
                if let Some(b) = buf.take() {
                    let kept = b.take_axis(&index, 0)?;
                    *buf = Some(if common > 0 {
                        kept.try_index((.., .., common..))?
                    } else {
                        kept
                    });
                }
            }
        }
        for p in &mut self.left_padding {
            *p -= common;
        }
        self.idx -= common;
        Ok(())
    }

    /// The RoPE positions of the next token of each row.
    pub fn rope_offset(&self) -> RopeOffset {
        let first = self.left_padding.first().copied().unwrap_or(0);
        if self.left_padding.iter().all(|&p| p == first) {
            RopeOffset::Same(self.idx - first)
        } else {
            let positions: Vec<i32> = self.left_padding.iter().map(|p| self.idx - p).collect();
            RopeOffset::PerRow(Array::from_slice(&positions, &[positions.len() as i32]))
        }
    }

    /// Boolean mask `[B, 1, 1, idx + 1]` for one new token per row (true =
    /// visible), or `None` when no row has padding.
    pub fn decode_mask(&self) -> Result<Option<Array>> {
        Ok(self.decode_padding()?.map(|(mask, _)| mask))
    }

    /// [`Self::decode_mask`] and the padding slots per row (int32 `[B]`),
    /// or `None` when no row has padding.
    pub fn decode_padding(&self) -> Result<Option<(Array, Array)>> {
        if self.left_padding.iter().all(|&p| p == 0) {
            return Ok(None);
        }
        let b = self.rows() as i32;
        let keys = self.idx + 1;
        let padding = Array::from_slice(&self.left_padding, &[b]);
        let slots = ops::arange::<_, i32>(0, keys, None)?.reshape(&[1, keys])?;
        let mask = slots
            .ge(padding.reshape(&[b, 1])?)?
            .reshape(&[b, 1, 1, keys])?;
        Ok(Some((mask, padding)))
    }

    /// Layer `i`'s view for one forward pass; call [`Self::advance`] after
    /// the last layer.
    pub fn layer(&mut self, i: usize) -> BatchLayer<'_> {
        BatchLayer {
            buffers: &mut self.layers[i],
            idx: self.idx,
            step: self.step,
        }
    }

    /// Moves the write position past the `n` tokens every layer just wrote.
    pub fn advance(&mut self, n: i32) {
        self.idx += n;
    }

    /// Row `row`'s keys and values per layer, without padding (`[1, H, len, D]`).
    pub fn row_contents(&self, row: usize) -> Result<Vec<(Array, Array)>> {
        let start = *self
            .left_padding
            .get(row)
            .ok_or_else(|| Error::invalid(format!("no row {row}")))?;
        let r = row as i32;
        self.layers
            .iter()
            .map(|b| {
                let (Some(k), Some(v)) = (&b.keys, &b.values) else {
                    return Err(Error::invalid("the batch cache is empty"));
                };
                Ok((
                    k.try_index((r..r + 1, .., start..self.idx))?,
                    v.try_index((r..r + 1, .., start..self.idx))?,
                ))
            })
            .collect()
    }
}

/// One layer of a [`BatchKvCache`] during a forward pass.
pub struct BatchLayer<'a> {
    buffers: &'a mut Buffers,
    idx: i32,
    step: i32,
}

impl LayerCache for BatchLayer<'_> {
    fn update_and_fetch(&mut self, keys: &Array, values: &Array) -> Result<(Array, Array)> {
        let new = keys.dim(2);
        let end = self.idx + new;
        for (buf, fresh) in [
            (&mut self.buffers.keys, keys),
            (&mut self.buffers.values, values),
        ] {
            let Some(b) = buf.as_mut() else {
                return Err(Error::invalid(
                    "a batch cache needs rows before a forward pass",
                ));
            };
            if b.dim(0) != fresh.dim(0) {
                return Err(Error::invalid(format!(
                    "{} rows of keys for a batch of {}",
                    fresh.dim(0),
                    b.dim(0)
                )));
            }
            if end > b.dim(2) {
                let grow = round_up(end, self.step) - b.dim(2);
                *b = pad_axis2(b, 0, grow)?;
            }
            b.try_index_mut((.., .., self.idx..end), fresh)?;
        }
        let (k, v) = (
            self.buffers.keys.as_ref().unwrap(),
            self.buffers.values.as_ref().unwrap(),
        );
        Ok((k.try_index((.., .., ..end))?, v.try_index((.., .., ..end))?))
    }
}

fn round_up(n: i32, step: i32) -> i32 {
    (n + step - 1) / step * step
}

/// `x` `[B, H, L, D]` with `before` / `after` zero slots added on axis 2.
fn pad_axis2(x: &Array, before: i32, after: i32) -> Result<Array> {
    if before == 0 && after == 0 {
        return Ok(x.clone());
    }
    let shape = x.shape();
    let zeros = |n: i32| -> Result<Array> {
        Ok(ops::zeros_dtype(
            &[shape[0], shape[1], n, shape[3]],
            x.dtype(),
        )?)
    };
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(zeros(before)?);
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(zeros(after)?);
    }
    Ok(ops::concatenate(&parts, 2)?)
}
