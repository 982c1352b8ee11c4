//! Decoding a batch of 30 s windows: the autoregressive loop.
//!
//! Rows share one prompt or each has its own (shorter ones are left-padded
//! and the padding masked, so a row decodes as it would alone); all rows
//! step together (one step number), the logit filters run as
//! device masks ([`LogitFilters`]), tokens are drawn by the shared on-device
//! [`Sampler`] (argmax at temperature 0), and log-probabilities, no-speech
//! probabilities and finished flags stay on the device. The host reads one
//! small int32 vector per step — the batch's new ids, from which it also knows
//! which rows finished (a finished row keeps emitting end-of-text). Step n+1
//! (forward pass and draw, fed with step n's still-lazy ids) is queued before
//! step n's ids are read, as in LLM generation, so the device never waits for
//! the host. Per-row scores are read once at the end.

use std::{
    cell::Cell,
    sync::atomic::{AtomicBool, Ordering},
};

use mlx_rs::{
    nn::log_softmax,
    ops::{self, indexing::TryIndexOp, softmax_axis},
    transforms::async_eval,
    Array, ArrayElement, Dtype,
};

use super::{
    logit_filters::{FilterOptions, LogitFilters, RuleTokens, TimestampState},
    model::{DecoderState, Whisper},
    tokenizer::{SpecialTokens, TIME_PRECISION},
};
use crate::{
    sampling::{Sampler, SamplerConfig},
    Error, Result,
};

/// Options of one decoding pass.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// 0 = greedy (argmax).
    pub temperature: f32,
    /// Most tokens to sample per window (openai-whisper: half the text context).
    pub sample_len: usize,
    /// Predict timestamp tokens (segment boundaries).
    pub timestamps: bool,
    /// Ids never sampled.
    pub suppress_tokens: Vec<u32>,
    /// Ids suppressed at the first sampled step (blank and end-of-text).
    pub begin_suppress_tokens: Vec<u32>,
    /// Latest first timestamp in seconds (openai-whisper: 1.0).
    pub max_initial_timestamp: Option<f32>,
    /// PRNG seed for temperature sampling.
    pub seed: Option<u64>,
}

/// The decoder prompt of every row: one shared by all rows, or one per row.
#[derive(Debug, Clone, Copy)]
pub enum Prompts<'a> {
    Shared(&'a [u32]),
    PerRow(&'a [Vec<u32>]),
}

impl<'a> From<&'a [u32]> for Prompts<'a> {
    fn from(prompt: &'a [u32]) -> Self {
        Prompts::Shared(prompt)
    }
}

impl<'a> From<&'a Vec<u32>> for Prompts<'a> {
    fn from(prompt: &'a Vec<u32>) -> Self {
        Prompts::Shared(prompt)
    }
}

impl<'a, const N: usize> From<&'a [u32; N]> for Prompts<'a> {
    fn from(prompt: &'a [u32; N]) -> Self {
        Prompts::Shared(prompt)
    }
}

impl<'a> From<&'a [Vec<u32>]> for Prompts<'a> {
    fn from(prompts: &'a [Vec<u32>]) -> Self {
        Prompts::PerRow(prompts)
    }
}

impl<'a> Prompts<'a> {
    /// Each of `rows` rows' prompt.
    fn rows(self, rows: usize) -> Result<Vec<&'a [u32]>> {
        match self {
            Prompts::Shared(prompt) => Ok(vec![prompt; rows]),
            Prompts::PerRow(prompts) if prompts.len() == rows => {
                Ok(prompts.iter().map(Vec::as_slice).collect())
            }
            Prompts::PerRow(prompts) => Err(Error::invalid(format!(
                "{} decoder prompts for {rows} rows",
                prompts.len()
            ))),
        }
    }

    /// The longest prompt's length.
    pub fn longest(self) -> usize {
        match self {
            Prompts::Shared(prompt) => prompt.len(),
            Prompts::PerRow(prompts) => prompts.iter().map(Vec::len).max().unwrap_or(0),
        }
    }

    /// The prompts of `rows` rows, row `r` taking prompt `sources[r]` (rows
    /// that repeat a window: sampled candidates, beams).
    pub fn expand(self, sources: &[usize]) -> Vec<Vec<u32>> {
        match self {
            Prompts::Shared(prompt) => vec![prompt.to_vec(); sources.len()],
            Prompts::PerRow(prompts) => sources.iter().map(|&s| prompts[s].clone()).collect(),
        }
    }
}

/// The outcome for one row.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedWindow {
    /// Sampled ids (text and timestamps), without the final end-of-text.
    pub tokens: Vec<u32>,
    /// Sum of the sampled tokens' log-probabilities, end-of-text included.
    pub sum_logprob: f32,
    /// `sum_logprob / (tokens.len() + 1)`.
    pub avg_logprob: f32,
    /// Probability of `<|nospeech|>` at the start-of-transcript position.
    pub no_speech_prob: f32,
    pub temperature: f32,
    /// Whether end-of-text was sampled (false: stopped at `sample_len`).
    pub finished: bool,
}

/// Decodes the prompt + sampled tokens for every row of `audio_features`
/// `[B, n_audio_ctx, d]`. Every prompt must contain `<|startoftranscript|>`.
pub fn decode_batch<'p>(
    model: &Whisper,
    special: &SpecialTokens,
    audio_features: &Array,
    prompts: impl Into<Prompts<'p>>,
    options: &DecodeOptions,
    abort: Option<&AtomicBool>,
) -> Result<Vec<DecodedWindow>> {
    let prompts = prompts.into();
    let batch = audio_features.dim(0);
    let vocab = model.config().n_vocab;
    let max_steps = check_request(model, prompts.longest(), options)?;
    let filters = build_filters(vocab, special, options)?;
    let sampler_config = SamplerConfig {
        temperature: options.temperature,
        seed: options.seed,
        ..Default::default()
    };
    let mut sampler = Sampler::new(sampler_config, vocab, batch as usize, &[])?;
    let mut timestamps = TimestampState::new(batch as usize, special.timestamp_begin)?;
    let Prefill {
        mut state,
        logits,
        no_speech_prob,
    } = prefill(model, special, audio_features, prompts)?;

    let mut chain = StepChain {
        filters: &filters,
        sampler: &mut sampler,
        timestamps: &mut timestamps,
        eot: Array::from_int(special.eot as i32),
        finished: ops::zeros_dtype(&[batch], Dtype::Bool)?,
        sum_logprob: ops::zeros::<f32>(&[batch])?,
    };
    let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); batch as usize];
    let mut done = vec![false; batch as usize];
    let mut pending = if max_steps > 0 {
        Some(chain.next_ids(&logits, 0)?)
    } else {
        None
    };
    let mut step = 0;
    while let Some(current) = pending.take() {
        if abort.is_some_and(|a| a.load(Ordering::Relaxed)) {
            return Err(Error::Aborted);
        }
        // Queue step n+1 (forward pass and draw, fed with step n's still-lazy
        // ids) before reading step n's ids, so the device never waits for the host.
        if step + 1 < max_steps {
            let logits = model
                .decode(&current.reshape(&[batch, 1])?, &mut state)?
                .try_index((.., -1, ..))?;
            pending = Some(chain.next_ids(&logits, step + 1)?);
        }
        for (row, &id) in to_host::<i32>(&current)?.iter().enumerate() {
            if done[row] {
                continue;
            }
            if id as u32 == special.eot {
                done[row] = true;
            } else {
                tokens[row].push(id as u32);
            }
        }
        if done.iter().all(|&d| d) {
            // The queued step only adds end-of-text (log-probability 0) to finished rows.
            break;
        }
        step += 1;
    }
    let sum_logprob = chain.sum_logprob;
    // One read for both per-row scores: [sums..., no-speech probabilities...].
    let scores = to_host::<f32>(&ops::concatenate(&[&sum_logprob, &no_speech_prob], 0)?)?;
    let (sums, no_speech) = scores.split_at(batch as usize);
    Ok(tokens
        .into_iter()
        .enumerate()
        .map(|(row, tokens)| DecodedWindow {
            avg_logprob: sums[row] / (tokens.len() + 1) as f32,
            sum_logprob: sums[row],
            no_speech_prob: no_speech[row],
            temperature: options.temperature,
            finished: done[row],
            tokens,
        })
        .collect())
}

/// The on-device bookkeeping of a batch's decoding steps: filters, the draw,
/// and per-row finished flags and summed log-probabilities.
struct StepChain<'a> {
    filters: &'a LogitFilters,
    sampler: &'a mut Sampler,
    timestamps: &'a mut TimestampState,
    eot: Array,
    finished: Array,
    sum_logprob: Array,
}

impl StepChain<'_> {
    /// The ids `[B]` drawn from `logits` `[B, V]` at `step` (end-of-text for
    /// rows already finished), queued for evaluation with the running scores.
    fn next_ids(&mut self, logits: &Array, step: usize) -> Result<Array> {
        let batch = logits.dim(0);
        let filtered = self.filters.apply(logits, self.timestamps, step)?;
        let sampled = self.sampler.sample(&filtered)?;
        let next = ops::select(&self.finished, &self.eot, &sampled)?;
        // Scores use the filtered distribution (openai-whisper), before temperature.
        let picked = log_softmax(&filtered, -1)?
            .take_along_axis(&next.reshape(&[batch, 1])?, -1)?
            .reshape(&[batch])?;
        self.sum_logprob =
            self.sum_logprob
                .add(ops::select(&self.finished, Array::from_f32(0.0), &picked)?)?;
        self.finished = self.finished.logical_or(next.eq(&self.eot)?)?;
        self.timestamps.update(&next)?;
        async_eval([&next, &self.sum_logprob, &self.finished])?;
        Ok(next)
    }
}

/// Validates a decoding request; returns how many tokens may be sampled.
pub(crate) fn check_request(
    model: &Whisper,
    prompt_len: usize,
    options: &DecodeOptions,
) -> Result<usize> {
    let n_ctx = model.config().n_text_ctx;
    if prompt_len >= n_ctx {
        return Err(Error::invalid(format!(
            "decoder prompt of {prompt_len} tokens does not fit the {n_ctx}-token context"
        )));
    }
    if !(options.temperature.is_finite() && options.temperature >= 0.0) {
        return Err(Error::invalid(format!(
            "temperature must be ≥ 0, got {}",
            options.temperature
        )));
    }
    Ok(options.sample_len.min(n_ctx - prompt_len))
}

pub(crate) fn build_filters(
    vocab: usize,
    special: &SpecialTokens,
    options: &DecodeOptions,
) -> Result<LogitFilters> {
    LogitFilters::new(FilterOptions {
        vocab_size: vocab,
        tokens: RuleTokens {
            eot: special.eot,
            no_timestamps: special.no_timestamps,
            timestamp_begin: special.timestamp_begin,
        },
        suppress: options.suppress_tokens.clone(),
        suppress_at_begin: options.begin_suppress_tokens.clone(),
        timestamps: options.timestamps,
        max_initial_timestamp_index: options
            .max_initial_timestamp
            .map(|s| (s / TIME_PRECISION).round().max(0.0) as u32),
    })
}

/// The decoder after the prompt.
pub(crate) struct Prefill {
    pub state: DecoderState,
    /// `[B, V]` logits for the first sampled token.
    pub logits: Array,
    /// `[B]` probability of `<|nospeech|>` at the start-of-transcript position.
    pub no_speech_prob: Array,
}

/// Runs every row's prompt through the decoder (left-padded to the longest).
pub(crate) fn prefill(
    model: &Whisper,
    special: &SpecialTokens,
    audio_features: &Array,
    prompts: Prompts,
) -> Result<Prefill> {
    let batch = audio_features.dim(0);
    let rows = prompts.rows(batch as usize)?;
    let longest = prompts.longest();
    let mut ids = Vec::with_capacity(rows.len() * longest);
    let mut padding = Vec::with_capacity(rows.len());
    let mut sot_slots = Vec::with_capacity(rows.len());
    for prompt in &rows {
        let sot = prompt
            .iter()
            .position(|&t| t == special.sot)
            .ok_or_else(|| Error::invalid("decoder prompt lacks <|startoftranscript|>"))?;
        let pad = longest - prompt.len();
        ids.extend(std::iter::repeat_n(special.eot as i32, pad));
        ids.extend(prompt.iter().map(|&t| t as i32));
        padding.push(pad as i32);
        sot_slots.push((pad + sot) as i32);
    }
    let mut state = model.start_decoding(audio_features)?;
    state.set_padding(&padding)?;
    let prompt_batch = Array::from_slice(&ids, &[batch, longest as i32]);
    let prompt_logits = model.decode(&prompt_batch, &mut state)?;
    let at_sot = if sot_slots.iter().all(|&s| s == sot_slots[0]) {
        prompt_logits.try_index((.., sot_slots[0], ..))?
    } else {
        let vocab = prompt_logits.dim(-1);
        let index = ops::broadcast_to(
            Array::from_slice(&sot_slots, &[batch, 1, 1]),
            &[batch, 1, vocab],
        )?;
        prompt_logits
            .take_along_axis(&index, 1)?
            .reshape(&[batch, vocab])?
    }
    .as_dtype(Dtype::Float32)?;
    let no_speech_prob =
        softmax_axis(&at_sot, -1, true)?.try_index((.., special.no_speech as i32))?;
    let logits = prompt_logits.try_index((.., -1, ..))?;
    Ok(Prefill {
        state,
        logits,
        no_speech_prob,
    })
}

thread_local! {
    static HOST_READS: Cell<u64> = const { Cell::new(0) };
}

/// Device→host reads made by Whisper decoding on this thread so far: one per
/// decoding step, plus one per batch for the scores.
pub fn host_reads() -> u64 {
    HOST_READS.with(Cell::get)
}

/// Host copy of a small device array (evaluating it first).
pub(crate) fn to_host<T: ArrayElement + Clone>(array: &Array) -> Result<Vec<T>> {
    HOST_READS.with(|reads| reads.set(reads.get() + 1));
    // A contiguous copy is a new graph node, evaluated behind everything
    // already queued: copy only when the array is not row-contiguous.
    match array.try_as_slice::<T>() {
        Ok(values) => Ok(values.to_vec()),
        Err(mlx_rs::error::AsSliceError::NotContiguous) => array
            .contiguous()?
            .try_as_slice::<T>()
            .map(<[T]>::to_vec)
            .map_err(|e| Error::Mlx(e.to_string())),
        Err(e) => Err(Error::Mlx(e.to_string())),
    }
}

/// Language probabilities for each row of `audio_features`: one decoder step
/// on `<|startoftranscript|>`, restricted to the language tokens. Returns, per
/// row, `(index into languages, probability)` of the best one and all probabilities.
pub fn detect_language(
    model: &Whisper,
    special: &SpecialTokens,
    languages: &[(&'static str, u32)],
    audio_features: &Array,
) -> Result<Vec<(usize, Vec<f32>)>> {
    if languages.is_empty() {
        return Err(Error::invalid(
            "language detection needs a multilingual model",
        ));
    }
    let batch = audio_features.dim(0);
    let mut state = model.start_decoding(audio_features)?;
    let sot = ops::full::<i32>(&[batch, 1], Array::from_int(special.sot as i32))?;
    let logits = model
        .decode(&sot, &mut state)?
        .try_index((.., 0, ..))?
        .as_dtype(Dtype::Float32)?;
    let ids: Vec<i32> = languages.iter().map(|&(_, id)| id as i32).collect();
    let language_logits = logits.take_axis(Array::from_slice(&ids, &[ids.len() as i32]), -1)?;
    let probs = to_host::<f32>(&softmax_axis(&language_logits, -1, true)?)?;
    Ok(probs
        .chunks(languages.len())
        .map(|row| {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i);
            (best, row.to_vec())
        })
        .collect())
}
