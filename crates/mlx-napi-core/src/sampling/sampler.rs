//! The stateful sampler: one per generation (per batch of sequences).

use std::time::{SystemTime, UNIX_EPOCH};

use mlx_rs::{
    ops::{self, indexing::TryIndexMutOp, indexing::TryIndexOp},
    random, Array, Dtype,
};

use super::{allowed::AllowedTokens, draw::DrawChain, logprobs, SamplerConfig};
use crate::{Error, Result};

pub struct Sampler {
    config: SamplerConfig,
    batch: i32,
    vocab: i32,
    /// Dense `[1, V]` logit bias, built once.
    bias: Option<Array>,
    /// Ring `[B, N]` of the last N tokens (repetition penalty), and how many
    /// slots are filled / where the next token goes (host-side counters: no sync).
    recent: Option<Array>,
    recent_filled: i32,
    recent_next: i32,
    /// `[B, V]` float counts of generated tokens (presence/frequency penalties).
    counts: Option<Array>,
    key: Array,
    /// Temperature → truncation → draw (`None` at temperature 0: argmax).
    chain: Option<DrawChain>,
}

impl Sampler {
    /// A sampler for `batch` rows of `vocab` logits. `context` (one slice per
    /// row, or empty) seeds the repetition-penalty window, normally with the
    /// prompt; all rows must have the same length.
    pub fn new(
        config: SamplerConfig,
        vocab: usize,
        batch: usize,
        context: &[&[u32]],
    ) -> Result<Self> {
        config.validate(vocab)?;
        if batch == 0 {
            return Err(Error::invalid("sampler batch must be ≥ 1"));
        }
        if !context.is_empty() && context.len() != batch {
            return Err(Error::invalid(format!(
                "sampler context has {} rows for a batch of {batch}",
                context.len()
            )));
        }
        let (batch, vocab) = (batch as i32, vocab as i32);
        let bias = if config.logit_bias.is_empty() {
            None
        } else {
            let mut dense = vec![0f32; vocab as usize];
            for &(id, b) in &config.logit_bias {
                dense[id as usize] += b;
            }
            Some(Array::from_slice(&dense, &[1, vocab]))
        };
        let seed = config.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        let counts = (config.presence_penalty != 0.0 || config.frequency_penalty != 0.0)
            .then(|| ops::zeros::<f32>(&[batch, vocab]))
            .transpose()?;
        let mut sampler = Self {
            batch,
            vocab,
            bias,
            recent: None,
            recent_filled: 0,
            recent_next: 0,
            counts,
            key: random::key(seed)?,
            chain: DrawChain::new(&config, vocab, None),
            config,
        };
        if sampler.config.repetition_penalty.is_some_and(|p| p != 1.0) {
            let n = sampler.config.repetition_context_size as i32;
            sampler.recent = Some(ops::zeros::<i32>(&[batch, n])?);
            if let Some(first) = context.first() {
                let len = first.len();
                if context.iter().any(|row| row.len() != len) {
                    return Err(Error::invalid("sampler context rows differ in length"));
                }
                let take = len.min(n as usize);
                let tail: Vec<i32> = context
                    .iter()
                    .flat_map(|row| row[len - take..].iter().map(|&t| t as i32))
                    .collect();
                let tail = Array::from_slice(&tail, &[batch, take as i32]);
                sampler.push_recent(&tail)?;
            }
        }
        Ok(sampler)
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// Forces the draw chain compiled (`true`) or eager (`false`) instead of
    /// the default for the device (see `draw.rs`): the same function.
    pub fn with_compiled_draw(mut self, compiled: bool) -> Self {
        self.chain = DrawChain::new(&self.config, self.vocab, Some(compiled));
        self
    }

    /// Whether the draw chain runs as one compiled MLX function.
    pub fn draw_is_compiled(&self) -> bool {
        self.chain.as_ref().is_some_and(DrawChain::is_compiled)
    }

    /// Processes `logits` `[B, V]` (any float dtype) and draws one token per
    /// row → int32 `[B]`. The drawn tokens are recorded for the penalties.
    pub fn sample(&mut self, logits: &Array) -> Result<Array> {
        Ok(self.sample_with_logprobs(logits, None)?.0)
    }

    /// Like [`Self::sample`]; with `top_logprobs: Some(k)` also the tokens'
    /// log-probabilities and the `k` best alternatives, packed with the
    /// tokens (`logprobs::pack`: float32 `[B, 2 + 2k]`).
    pub fn sample_with_logprobs(
        &mut self,
        logits: &Array,
        top_logprobs: Option<usize>,
    ) -> Result<(Array, Option<Array>)> {
        self.sample_masked(logits, None, top_logprobs)
    }

    /// Like [`Self::sample_with_logprobs`], with only the `allowed` ids
    /// (constrained decoding, one row): the others' logits become −∞ before
    /// every other processor, so no penalty, filter or draw can pick them.
    /// Log-probabilities are those of the masked distribution.
    pub fn sample_masked(
        &mut self,
        logits: &Array,
        allowed: Option<&AllowedTokens>,
        top_logprobs: Option<usize>,
    ) -> Result<(Array, Option<Array>)> {
        if logits.ndim() != 2 || logits.dim(0) != self.batch || logits.dim(1) != self.vocab {
            return Err(Error::invalid(format!(
                "sampler expects logits [{}, {}], got {:?}",
                self.batch,
                self.vocab,
                logits.shape()
            )));
        }
        let processed = match allowed {
            // float32 already: `process`'s cast is then no kernel.
            Some(allowed) => self.process(&allowed.apply(logits)?)?,
            None => self.process(logits)?,
        };
        let tokens = self.draw(&processed)?;
        self.observe(&tokens)?;
        let packed = top_logprobs
            .map(|k| logprobs::pack(&processed, &tokens, k))
            .transpose()?;
        Ok((tokens, packed))
    }

    /// Greedy with no logit processor: the token is the raw logits' argmax,
    /// so a batch of such rows can share one argmax.
    pub fn is_plain_greedy(&self) -> bool {
        let c = &self.config;
        c.temperature == 0.0
            && self.bias.is_none()
            && self.recent.is_none()
            && self.counts.is_none()
    }

    /// The logit processors (bias and penalties) without the draw: float32
    /// `[B, V]`. Public so tests can compare logits before and after.
    pub fn process(&self, logits: &Array) -> Result<Array> {
        let mut x = logits.as_dtype(Dtype::Float32)?;
        if let Some(bias) = &self.bias {
            x = x.add(bias)?;
        }
        if let (Some(recent), Some(penalty)) = (&self.recent, self.config.repetition_penalty) {
            if self.recent_filled > 0 {
                // One gather of the window's logits, one scatter back.
                let window = recent.try_index((.., ..self.recent_filled))?;
                let picked = x.take_along_axis(&window, -1)?;
                let penalty = Array::from_f32(penalty);
                let penalized = ops::select(
                    picked.lt(Array::from_f32(0.0))?,
                    picked.multiply(&penalty)?,
                    picked.divide(&penalty)?,
                )?;
                x = x.put_along_axis(&window, &penalized, -1)?;
            }
        }
        if let Some(counts) = &self.counts {
            if self.config.frequency_penalty != 0.0 {
                x = x.subtract(counts.multiply(Array::from_f32(self.config.frequency_penalty))?)?;
            }
            if self.config.presence_penalty != 0.0 {
                let present = counts.gt(Array::from_f32(0.0))?.as_dtype(Dtype::Float32)?;
                x = x.subtract(present.multiply(Array::from_f32(self.config.presence_penalty))?)?;
            }
        }
        Ok(x)
    }

    /// Temperature, truncation filters and the draw (`draw.rs`).
    fn draw(&mut self, x: &Array) -> Result<Array> {
        let Some(chain) = self.chain.as_mut() else {
            return Ok(ops::indexing::argmax_axis(x, -1, false)?.as_dtype(Dtype::Int32)?);
        };
        let (next_key, draw_key) = random::split(&self.key, 2)?;
        self.key = next_key;
        chain.draw(x, &draw_key)
    }

    /// Records tokens `[B]` (sampled or forced) for the penalties.
    pub fn observe(&mut self, tokens: &Array) -> Result<()> {
        let column = tokens.reshape(&[self.batch, 1])?.as_dtype(Dtype::Int32)?;
        if self.recent.is_some() {
            self.push_recent(&column)?;
        }
        if let Some(counts) = &self.counts {
            // One scatter-add into the flattened [B·V] counts at row·V + token.
            let rows = ops::arange::<_, i32>(0, self.batch, None)?
                .multiply(Array::from_int(self.vocab))?;
            let flat_index = rows.add(column.reshape(&[self.batch])?)?;
            let ones = ops::ones::<f32>(&[self.batch, 1])?;
            let flat =
                ops::indexing::scatter_add_single(counts.reshape(&[-1])?, &flat_index, &ones, 0)?;
            self.counts = Some(flat.reshape(&[self.batch, self.vocab])?);
        }
        Ok(())
    }

    /// Writes `tokens` `[B, n]` into the recent ring (n ≤ ring size).
    fn push_recent(&mut self, tokens: &Array) -> Result<()> {
        let Some(recent) = self.recent.as_mut() else {
            return Ok(());
        };
        let size = recent.dim(1);
        for i in 0..tokens.dim(1) {
            let slot = self.recent_next;
            recent.try_index_mut((.., slot..slot + 1), tokens.try_index((.., i..i + 1))?)?;
            self.recent_next = (slot + 1) % size;
        }
        self.recent_filled = (self.recent_filled + tokens.dim(1)).min(size);
        Ok(())
    }
}
