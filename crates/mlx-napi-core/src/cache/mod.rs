//! Key/value cache for autoregressive attention, shared by the LLM and the
//! Whisper decoder.
//!
//! Keys and values live in buffers `[B, heads, capacity, head_dim]` that grow
//! in steps of [`KvCache::DEFAULT_STEP`] positions; each new chunk is written
//! with a slice update (no per-token concatenation of the whole cache, which
//! MLX can perform in place), and attention reads the `[.., ..offset]` view.
//!
//! * Session reuse: [`KvCache::truncate`] drops positions past a common prefix
//!   so only the new suffix of a prompt needs a forward pass.
//! * Sliding window: with `max_size`, at most that many positions are kept;
//!   single-token steps overwrite the oldest slot (ring buffer) and multi-token
//!   chunks see the kept window plus the chunk (the model masks the window).
//! * Batches: any `B`; [`KvCache::select`] keeps a subset of the rows (e.g.
//!   Whisper dropping finished sequences).
//! * Rows at different positions: [`BatchKvCache`] (LLM continuous batching:
//!   left-aligned rows, per-row positions, rows join and leave).

mod batch;

pub use batch::BatchKvCache;

use mlx_rs::{
    ops::{self, indexing::TryIndexMutOp, indexing::TryIndexOp},
    Array,
};

use crate::{Error, Result};

/// What attention needs from one layer's cache: store the new keys/values
/// and hand back everything the queries may attend to.
pub trait LayerCache {
    fn update_and_fetch(&mut self, keys: &Array, values: &Array) -> Result<(Array, Array)>;
}

impl LayerCache for KvCache {
    fn update_and_fetch(&mut self, keys: &Array, values: &Array) -> Result<(Array, Array)> {
        KvCache::update_and_fetch(self, keys, values)
    }
}

#[derive(Clone)]
pub struct KvCache {
    keys: Option<Array>,
    values: Option<Array>,
    /// Positions seen so far: the absolute position of the next token.
    offset: i32,
    /// Valid entries in the buffers (= `offset` unless the window evicted some).
    len: i32,
    /// Ring-buffer slot the next single token goes to, once the window is full.
    next_slot: i32,
    step: i32,
    max_size: Option<i32>,
}

impl Default for KvCache {
    fn default() -> Self {
        Self::new()
    }
}

impl KvCache {
    /// Growth step of the buffers, in positions (mlx-lm uses the same).
    pub const DEFAULT_STEP: i32 = 256;

    /// An unbounded cache.
    pub fn new() -> Self {
        Self {
            keys: None,
            values: None,
            offset: 0,
            len: 0,
            next_slot: 0,
            step: Self::DEFAULT_STEP,
            max_size: None,
        }
    }

    /// A sliding-window cache keeping the last `max_size` positions.
    pub fn with_max_size(max_size: i32) -> Result<Self> {
        if max_size < 1 {
            return Err(Error::invalid(format!(
                "cache max_size must be ≥ 1, got {max_size}"
            )));
        }
        Ok(Self {
            max_size: Some(max_size),
            ..Self::new()
        })
    }

    /// Uses a different growth step (≥ 1).
    pub fn with_step(mut self, step: i32) -> Self {
        self.step = step.max(1);
        self
    }

    /// Absolute position of the next token (= tokens processed so far).
    pub fn offset(&self) -> i32 {
        self.offset
    }

    /// Allocated positions per row (for tests and memory accounting).
    pub fn capacity(&self) -> i32 {
        self.keys.as_ref().map_or(0, |k| k.dim(2))
    }

    pub fn max_size(&self) -> Option<i32> {
        self.max_size
    }

    /// The buffers, for evaluating the cache after a prefill chunk.
    pub fn arrays(&self) -> impl Iterator<Item = &Array> {
        self.keys.iter().chain(self.values.iter())
    }

    /// Keys and values `[B, heads, len, D]` of every held position in order,
    /// or `None` while empty. Fails once a sliding window has wrapped around.
    pub fn contents(&self) -> Result<Option<(Array, Array)>> {
        let (Some(k), Some(v)) = (&self.keys, &self.values) else {
            return Ok(None);
        };
        if self.len == 0 {
            return Ok(None);
        }
        if self.len != self.offset {
            return Err(Error::invalid(
                "a sliding-window cache that has evicted positions cannot be copied in order",
            ));
        }
        Ok(Some((
            k.try_index((.., .., ..self.len))?,
            v.try_index((.., .., ..self.len))?,
        )))
    }

    /// Forgets everything (the buffers are kept for reuse).
    pub fn reset(&mut self) {
        self.offset = 0;
        self.len = 0;
        self.next_slot = 0;
    }

    /// Keeps only the first `len` positions, so generation can resume after a
    /// shared prefix. Fails when a sliding window already evicted some of them.
    pub fn truncate(&mut self, len: i32) -> Result<()> {
        if len < 0 || len > self.offset {
            return Err(Error::invalid(format!(
                "cannot truncate a cache of {} positions to {len}",
                self.offset
            )));
        }
        if self.len != self.offset {
            return Err(Error::invalid(
                "cannot truncate a sliding-window cache that has evicted positions",
            ));
        }
        self.offset = len;
        self.len = len;
        self.next_slot = len;
        Ok(())
    }

    /// Keeps the batch rows `indices` (int array `[B']`).
    pub fn select(&mut self, indices: &Array) -> Result<()> {
        if let (Some(k), Some(v)) = (&self.keys, &self.values) {
            self.keys = Some(k.take_axis(indices, 0)?);
            self.values = Some(v.take_axis(indices, 0)?);
        }
        Ok(())
    }

    /// Appends `keys`/`values` `[B, heads, L, D]` and returns the keys and
    /// values attention should use: all cached positions in order, ending with
    /// the new ones — except for a single token once a window is full, where
    /// the whole ring (any order; no mask needed) is returned.
    pub fn update_and_fetch(&mut self, keys: &Array, values: &Array) -> Result<(Array, Array)> {
        let new = keys.dim(2);
        match self.max_size {
            Some(window) if new > 1 || self.len >= window => {
                self.update_windowed(keys, values, window)
            }
            _ => self.append(keys, values),
        }
    }

    /// Writes at `len..len+new`, growing the buffers first when needed.
    fn append(&mut self, keys: &Array, values: &Array) -> Result<(Array, Array)> {
        let new = keys.dim(2);
        let end = self.len + new;
        if end > self.capacity() {
            let mut capacity = (end + self.step - 1) / self.step * self.step;
            if let Some(window) = self.max_size {
                capacity = capacity.min(window).max(end);
            }
            self.keys = Some(self.grown(self.keys.as_ref(), keys, capacity)?);
            self.values = Some(self.grown(self.values.as_ref(), values, capacity)?);
        }
        let (k_buf, v_buf) = (self.keys.as_mut().unwrap(), self.values.as_mut().unwrap());
        k_buf.try_index_mut((.., .., self.len..end), keys)?;
        v_buf.try_index_mut((.., .., self.len..end), values)?;
        self.len = end;
        self.offset += new;
        self.next_slot = end;
        Ok((
            k_buf.try_index((.., .., ..end))?,
            v_buf.try_index((.., .., ..end))?,
        ))
    }

    /// A buffer of `capacity` positions holding the valid part of `old`.
    fn grown(&self, old: Option<&Array>, like: &Array, capacity: i32) -> Result<Array> {
        let shape = like.shape();
        let mut fresh_shape = [shape[0], shape[1], capacity, shape[3]];
        match old {
            Some(old) if self.len > 0 => {
                fresh_shape[2] = capacity - self.len;
                let fresh = ops::zeros_dtype(&fresh_shape, like.dtype())?;
                Ok(ops::concatenate(
                    &[old.try_index((.., .., ..self.len))?, fresh],
                    2,
                )?)
            }
            _ => Ok(ops::zeros_dtype(&fresh_shape, like.dtype())?),
        }
    }

    /// Sliding-window update: one token into a full ring, or a chunk.
    fn update_windowed(
        &mut self,
        keys: &Array,
        values: &Array,
        window: i32,
    ) -> Result<(Array, Array)> {
        let new = keys.dim(2);
        if new == 1 {
            let slot = self.next_slot % window;
            let (k_buf, v_buf) = (self.keys.as_mut().unwrap(), self.values.as_mut().unwrap());
            k_buf.try_index_mut((.., .., slot..slot + 1), keys)?;
            v_buf.try_index_mut((.., .., slot..slot + 1), values)?;
            self.next_slot = (slot + 1) % window;
            self.offset += 1;
            return Ok((k_buf.clone(), v_buf.clone()));
        }
        // A chunk: attention needs the kept positions in order followed by the
        // chunk, so put the ring back in temporal order first.
        let ordered = |buf: &Option<Array>| -> Result<Option<Array>> {
            let Some(buf) = buf else { return Ok(None) };
            let kept = buf.try_index((.., .., ..self.len))?;
            if self.len < window || self.next_slot == 0 {
                return Ok(Some(kept));
            }
            let slot = self.next_slot;
            Ok(Some(ops::concatenate(
                &[
                    kept.try_index((.., .., slot..))?,
                    kept.try_index((.., .., ..slot))?,
                ],
                2,
            )?))
        };
        let join = |old: Option<Array>, new: &Array| -> Result<Array> {
            match old {
                Some(old) if old.dim(2) > 0 => Ok(ops::concatenate(&[&old, new], 2)?),
                _ => Ok(new.clone()),
            }
        };
        let all_keys = join(ordered(&self.keys)?, keys)?;
        let all_values = join(ordered(&self.values)?, values)?;
        let total = all_keys.dim(2);
        let keep_from = (total - window).max(0);
        self.keys = Some(all_keys.try_index((.., .., keep_from..))?);
        self.values = Some(all_values.try_index((.., .., keep_from..))?);
        self.len = total - keep_from;
        self.next_slot = self.len % window;
        self.offset += new;
        Ok((all_keys, all_values))
    }
}
