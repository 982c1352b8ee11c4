//! The token stream of one sequence (mlx-lm's `generate_step`): chunked
//! prefill, then a double-buffered decode loop yielding token ids and, when
//! asked, their log-probabilities. No text here (see `text.rs`).
//!
//! Decode keeps the device busy while the host handles a token: the graph of
//! step n+1 (forward + sampling, fed with step n's still-lazy token) is built
//! and queued with `async_eval` *before* token n is read. The only
//! device→host transfer per generated token is one read of that step's
//! [`Pending`] (the id, packed with its log-probabilities when asked) —
//! counted in [`host_reads`] so tests can hold us to it.
//!
//! The batch engine (`batch.rs`) starts every request with this stream's
//! prefill and first step, then moves it into the shared batch.

use std::{
    cell::Cell,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Instant,
};

use mlx_rs::{ops, transforms, Array, Dtype};

use super::{constraint::Constraint, models::LanguageModel, options::GenerateOptions};
use crate::{
    cache::KvCache,
    sampling::{logprobs, Sampler, TokenLogprob},
    Error, Result,
};

thread_local! {
    static HOST_READS: Cell<u64> = const { Cell::new(0) };
}

/// Device→host reads made by generation on the calling thread so far (one
/// per decoding step, solo or batched). Per thread, so that concurrent tests
/// and models do not see each other's reads.
pub fn host_reads() -> u64 {
    HOST_READS.with(Cell::get)
}

/// First prefill chunk when the call can be aborted (see [`prefill`]).
const PREFILL_FIRST_CHUNK: usize = 128;
/// Smallest chunk the adaptive prefill shrinks to.
const PREFILL_MIN_CHUNK: usize = 16;
/// Target upper bound for one prefill step when the call can be aborted.
const PREFILL_STEP_SECS: f64 = 0.5;

/// Prefill chunk sizes. Without an abort flag, always the largest. With
/// one, chunks start small and grow while a chunk takes well under the
/// abort latency we promise (~1 s on any backend), so a slow backend (CPU)
/// still stops promptly and a fast one gets its large chunks back after a
/// few steps.
pub(crate) struct Chunking {
    size: usize,
    max: usize,
    adaptive: bool,
}

impl Chunking {
    pub fn new(max: usize, abortable: bool) -> Self {
        let max = max.max(1);
        Self {
            size: if abortable {
                max.min(PREFILL_FIRST_CHUNK)
            } else {
                max
            },
            max,
            adaptive: abortable,
        }
    }

    /// Positions (columns) of the next chunk.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The last chunk took `secs`.
    pub fn adapt(&mut self, secs: f64) {
        if !self.adaptive {
            return;
        }
        if secs < PREFILL_STEP_SECS / 4.0 {
            self.size = (self.size * 2).min(self.max);
        } else if secs > PREFILL_STEP_SECS {
            self.size = (self.size / 2).max(PREFILL_MIN_CHUNK);
        }
    }
}

/// A queued decoding step whose tokens have not been read yet: int32 `[B]`
/// ids and, when any row asked for log-probabilities, float32 `[B, W]` rows
/// packed by `sampling::logprobs::pack` (ids included, so one read serves).
pub(crate) struct Pending {
    pub tokens: Array,
    pub packed: Option<Array>,
}

/// A token as the stream yields it.
pub(crate) struct StreamToken {
    pub id: u32,
    pub logprob: Option<TokenLogprob>,
}

impl Pending {
    pub fn new(tokens: Array, packed: Option<Array>) -> Result<Self> {
        transforms::async_eval([&tokens].into_iter().chain(packed.as_ref()))?;
        Ok(Self { tokens, packed })
    }

    pub fn rows(&self) -> usize {
        self.tokens.dim(0) as usize
    }

    /// The one host read of a step: every row's id and, for rows with
    /// `top[row] = Some(k)`, its log-probability and k alternatives.
    pub fn read(&self, top: &[Option<usize>]) -> Result<Vec<StreamToken>> {
        HOST_READS.with(|n| n.set(n.get() + 1));
        match &self.packed {
            Some(packed) => {
                let width = packed.dim(1) as usize;
                Ok(host_values::<f32>(packed)?
                    .chunks(width)
                    .zip(top)
                    .map(|(row, k)| StreamToken {
                        id: row[0] as u32,
                        logprob: k.map(|k| logprobs::unpack(row, k)),
                    })
                    .collect())
            }
            None => {
                let tokens = if self.tokens.dtype() == Dtype::Int32 {
                    self.tokens.clone()
                } else {
                    self.tokens.as_dtype(Dtype::Int32)?
                };
                Ok(host_values::<i32>(&tokens)?
                    .iter()
                    .map(|&id| StreamToken {
                        id: id as u32,
                        logprob: None,
                    })
                    .collect())
            }
        }
    }

    /// Keeps rows `keep` (ascending).
    pub fn select(self, keep: &[usize]) -> Result<Self> {
        if keep.len() == self.rows() {
            return Ok(self);
        }
        let index: Vec<i32> = keep.iter().map(|&k| k as i32).collect();
        let index = Array::from_slice(&index, &[index.len() as i32]);
        Ok(Self {
            tokens: self.tokens.take_axis(&index, 0)?,
            packed: self.packed.map(|p| p.take_axis(&index, 0)).transpose()?,
        })
    }

    /// `self`'s rows followed by `other`'s. Packed rows are widened with
    /// zeros to the wider of the two (alternatives are (id, logprob) pairs,
    /// so extra pairs at the end are ignored by `unpack`).
    pub fn concat(self, other: Pending) -> Result<Self> {
        let tokens = ops::concatenate(&[&self.tokens, &other.tokens], 0)?;
        let packed = match (&self.packed, &other.packed) {
            (None, None) => None,
            _ => {
                let width = self
                    .packed
                    .iter()
                    .chain(other.packed.iter())
                    .map(|p| p.dim(1))
                    .max()
                    .unwrap_or(2);
                Some(ops::concatenate(
                    &[self.widened(width)?, other.widened(width)?],
                    0,
                )?)
            }
        };
        Ok(Self { tokens, packed })
    }

    /// Packed rows of `width` columns (built from the ids alone when there are none).
    fn widened(&self, width: i32) -> Result<Array> {
        let rows = self.tokens.dim(0);
        let (base, have) = match &self.packed {
            Some(p) => (p.clone(), p.dim(1)),
            None => (
                self.tokens.reshape(&[rows, 1])?.as_dtype(Dtype::Float32)?,
                1,
            ),
        };
        if have == width {
            return Ok(base);
        }
        let zeros = ops::zeros::<f32>(&[rows, width - have])?;
        Ok(ops::concatenate(&[base, zeros], 1)?)
    }
}

/// The prompt's checks shared by solo and batched generation; returns how
/// many tokens may be generated (`max_tokens`, cut at the model's context).
pub(crate) fn check_prompt(
    model: &dyn LanguageModel,
    prompt: &[u32],
    options: &GenerateOptions,
) -> Result<usize> {
    if prompt.is_empty() {
        return Err(Error::invalid("the prompt must contain at least one token"));
    }
    let vocab = model.vocab_size();
    options.validate(vocab)?;
    if let Some(&bad) = prompt.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::invalid(format!(
            "prompt token {bad} is outside the vocabulary ({vocab})"
        )));
    }
    // The prompt must fit the model's context with room for one new token;
    // generation then stops at the context's end (`finish_reason` "length").
    Ok(match model.context_length() {
        Some(context) if prompt.len() >= context => {
            return Err(Error::PromptTooLong(format!(
                "the prompt has {} tokens but the model's context holds {context} \
                 (max_position_embeddings); shorten the prompt to at most {} tokens",
                prompt.len(),
                context - 1
            )))
        }
        Some(context) => options.max_tokens.min(context - prompt.len()),
        None => options.max_tokens,
    })
}

/// One sequence's token stream over `caches`.
pub(crate) struct TokenStream<'a> {
    model: &'a dyn LanguageModel,
    caches: &'a mut [KvCache],
    /// Ids whose keys/values are in the caches, appended as fed.
    fed: &'a mut Vec<u32>,
    sampler: Sampler,
    top_logprobs: Option<usize>,
    abort: Option<Arc<AtomicBool>>,
    /// The step whose token comes next.
    pending: Option<Pending>,
    max_tokens: usize,
    produced: usize,
    reads: u64,
    aborted: bool,
    /// Constrained decoding: masks each step's logits (see `constraint.rs`).
    constraint: Option<Constraint>,
    /// The constraint admits nothing after the last token: the output is complete.
    complete: bool,
}

/// A stream taken apart after its first step, to join a batch.
pub(crate) struct FirstStep {
    pub sampler: Sampler,
    /// `None` when the stream was aborted during prefill.
    pub pending: Option<Pending>,
    pub max_tokens: usize,
    pub constraint: Option<Constraint>,
}

impl<'a> TokenStream<'a> {
    /// Checks the prompt and options, prefills `prompt[cached..]` but its
    /// last token (chunk by chunk, stopping early on abort) and queues the
    /// first step. `caches` must hold exactly `prompt[..cached]`.
    /// `constraint` is `options.constraint` compiled for this model.
    pub fn start(
        model: &'a dyn LanguageModel,
        caches: &'a mut [KvCache],
        fed: &'a mut Vec<u32>,
        prompt: &[u32],
        cached: usize,
        options: &GenerateOptions,
        constraint: Option<Constraint>,
    ) -> Result<Self> {
        let max_tokens = check_prompt(model, prompt, options)?;
        debug_assert!(cached < prompt.len());
        let sampler = Sampler::new(options.sampler.clone(), model.vocab_size(), 1, &[prompt])?;
        let mut stream = Self {
            model,
            caches,
            fed,
            sampler,
            top_logprobs: options.logprobs,
            abort: options.abort.clone(),
            pending: None,
            max_tokens,
            produced: 0,
            reads: 0,
            aborted: false,
            constraint,
            complete: false,
        };
        let last = prompt.len() - 1;
        if stream.prefill(&prompt[cached..last], options.prefill_chunk_size)? {
            stream.pending = Some(stream.step(&token_array(&prompt[last..]))?);
            stream.fed.push(prompt[last]);
        } else {
            stream.aborted = true;
        }
        Ok(stream)
    }

    fn is_aborted(&self) -> bool {
        self.abort
            .as_ref()
            .is_some_and(|a| a.load(Ordering::Relaxed))
    }

    /// Runs `tokens` through the model into the caches, evaluating the
    /// caches (not the logits: only what later steps need) after each chunk
    /// ([`Chunking`]). False when aborted.
    fn prefill(&mut self, tokens: &[u32], max_chunk: usize) -> Result<bool> {
        let mut chunk = Chunking::new(max_chunk, self.abort.is_some());
        let mut pos = 0;
        while pos < tokens.len() {
            if self.is_aborted() {
                return Ok(false);
            }
            let end = (pos + chunk.size()).min(tokens.len());
            let chunk_start = Instant::now();
            self.model
                .forward(&token_array(&tokens[pos..end]), self.caches, true)?;
            transforms::eval(self.caches.iter().flat_map(|c| c.arrays()))?;
            self.fed.extend_from_slice(&tokens[pos..end]);
            pos = end;
            chunk.adapt(chunk_start.elapsed().as_secs_f64());
        }
        Ok(!self.is_aborted())
    }

    /// Forward of `input` `[1, 1]` (or the last prompt token), sampling, queued.
    fn step(&mut self, input: &Array) -> Result<Pending> {
        let logits = self.forward(input)?;
        self.sample(&logits)
    }

    /// Forward of `input` → `[1, V]` logits (lazy).
    fn forward(&mut self, input: &Array) -> Result<Array> {
        let logits = self.model.forward(input, self.caches, true)?;
        Ok(logits.reshape(&[1, -1])?)
    }

    /// Sampling of `logits` (masked by the constraint's next mask), queued.
    fn sample(&mut self, logits: &Array) -> Result<Pending> {
        let mask = self.constraint.as_mut().map(Constraint::mask).transpose()?;
        let (tokens, packed) =
            self.sampler
                .sample_masked(logits, mask.as_ref(), self.top_logprobs)?;
        Pending::new(tokens, packed)
    }

    /// The next token, or `None` once `max_tokens` were yielded or the
    /// stream was aborted (see [`Self::aborted`]).
    pub fn next(&mut self) -> Result<Option<StreamToken>> {
        let Some(current) = self.pending.take() else {
            return Ok(None);
        };
        if self.is_aborted() {
            self.aborted = true;
            return Ok(None);
        }
        let more = self.produced + 1 < self.max_tokens;
        if self.constraint.is_some() {
            return self.next_constrained(current, more);
        }
        // Queue step n+1 before reading token n (unless n is the last allowed).
        let following = if more {
            Some(self.step(&current.tokens.reshape(&[1, 1])?)?)
        } else {
            None
        };
        let token = self.read(&current, following.is_some())?;
        self.pending = following;
        Ok(Some(token))
    }

    /// [`Self::next`] with a constraint: step n+1's forward pass is queued
    /// before token n is read, as without one; its sampling needs the mask
    /// that token n decides, so it is built after the read, while the device
    /// runs the forward pass.
    ///
    /// The sampling is its own submission (`Pending::new`). Folding it into
    /// step n+2's forward pass (one submission per token) measured 6–17 %
    /// slower on an H200 (`examples/constrained_step_anatomy.rs`): MLX
    /// signals every array of a submission with one event at its end, so the
    /// read of token n+1 would wait for that whole forward pass.
    fn next_constrained(&mut self, current: Pending, more: bool) -> Result<Option<StreamToken>> {
        let logits = if more {
            let logits = self.forward(&current.tokens.reshape(&[1, 1])?)?;
            transforms::async_eval([&logits])?;
            Some(logits)
        } else {
            None
        };
        let token = self.read(&current, logits.is_some())?;
        let constraint = self.constraint.as_mut().expect("constrained stream");
        self.complete = constraint.consume(token.id)?;
        self.pending = match logits {
            Some(logits) if !self.complete => Some(self.sample(&logits)?),
            _ => None,
        };
        Ok(Some(token))
    }

    /// Reads token n; `fed`: step n+1's forward pass consumed it.
    fn read(&mut self, current: &Pending, fed: bool) -> Result<StreamToken> {
        let token = current
            .read(&[self.top_logprobs])?
            .pop()
            .ok_or_else(|| Error::Mlx("a step sampled no token".into()))?;
        self.reads += 1;
        if fed {
            // Step n+1's forward consumed token n: its K/V are in the caches now.
            self.fed.push(token.id);
        }
        self.produced += 1;
        Ok(token)
    }

    /// Whether the constraint ended the output (it admits nothing more).
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// Whether the stream ended because of the abort flag.
    pub fn aborted(&self) -> bool {
        self.aborted
    }

    pub fn host_reads(&self) -> u64 {
        self.reads
    }

    /// The sampler and the queued first step, for the batch engine.
    pub fn into_first_step(self) -> FirstStep {
        FirstStep {
            sampler: self.sampler,
            pending: self.pending,
            max_tokens: self.max_tokens,
            constraint: self.constraint,
        }
    }
}

/// An evaluated array's values on the host (a copy only in the rare case
/// that the array is a strided view).
fn host_values<T: mlx_rs::ArrayElement + Copy>(a: &Array) -> Result<Vec<T>> {
    let read = |a: &Array| -> std::result::Result<Vec<T>, mlx_rs::error::AsSliceError> {
        a.try_as_slice::<T>().map(<[T]>::to_vec)
    };
    match read(a) {
        Ok(v) => Ok(v),
        Err(mlx_rs::error::AsSliceError::NotContiguous) => {
            read(&a.contiguous()?).map_err(|e| Error::Mlx(format!("reading sampled tokens: {e}")))
        }
        Err(e) => Err(Error::Mlx(format!("reading sampled tokens: {e}"))),
    }
}

/// `[1, L]` int32 token array.
pub(crate) fn token_array(ids: &[u32]) -> Array {
    let ids: Vec<i32> = ids.iter().map(|&id| id as i32).collect();
    Array::from_slice(&ids, &[1, ids.len() as i32])
}
