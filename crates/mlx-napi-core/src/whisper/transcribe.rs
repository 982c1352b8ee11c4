//! Long-form transcription: 30 s windows, segments, temperature fallback.
//!
//! Two schedules:
//! * `batch_size == 1` (default): openai-whisper's seek loop. Each window starts
//!   where the previous one's last complete segment ended and is conditioned on
//!   the text so far (`<|startofprev|>` prompt).
//! * `batch_size > 1`: the audio is cut in pauses ([`super::windows`]) into up
//!   to `batch_size` sections, each read by its own seek loop (conditioned on
//!   its own text); the sections' current windows are decoded as one batch,
//!   one row each. Cutting in pauses and resuming after the last complete
//!   segment is what keeps every word.
//!
//! Temperature 0 decodes greedily or, with `beam_size > 1`, by beam search;
//! higher temperatures sample `best_of` candidates. Either way a window whose
//! result looks wrong — too repetitive (gzip compression ratio), too unlikely
//! (average log-probability) — is decoded again at the next temperature,
//! unless it is silence (no-speech probability); in a batch, all windows that
//! need it are re-decoded together as one batch.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, OnceLock,
    },
    time::Instant,
};

use flate2::{write::ZlibEncoder, Compression};
use mlx_rs::{ops, ops::indexing::TryIndexOp, Array};

use super::{
    alignment::{Word, WordAligner},
    beam::{beam_search_batch, BeamOptions},
    decode::{decode_batch, DecodeOptions, DecodedWindow, Prompts},
    mel::{window_frames, HOP_LENGTH, N_FRAMES, SAMPLE_RATE},
    tokenizer::{Task, WhisperTokenizer},
    windows::{Planner, Skipped, WordRate},
    WhisperEngine,
};
use crate::{Error, Result};

/// Options of [`WhisperEngine::transcribe`]; `Default` matches openai-whisper /
/// faster-whisper's defaults (greedy with fallback, timestamps on).
#[derive(Debug, Clone, PartialEq)]
pub struct TranscribeOptions {
    /// Spoken language code or name; `None` = detect from the first window
    /// (multilingual models) or English (`.en` models).
    pub language: Option<String>,
    pub task: Task,
    /// Tried in order until a window passes the thresholds.
    pub temperatures: Vec<f32>,
    /// Above this gzip compression ratio the text is deemed repetitive.
    pub compression_ratio_threshold: Option<f32>,
    /// Below this average log-probability the decode is deemed failed.
    pub logprob_threshold: Option<f32>,
    /// Above this no-speech probability (and with a low log-probability) a
    /// window is silence: no fallback, and its text is dropped.
    pub no_speech_threshold: Option<f32>,
    /// Prompt each window with the previous windows' text (seek schedule only).
    pub condition_on_previous_text: bool,
    /// Stop conditioning after a window decoded above this temperature.
    pub prompt_reset_on_temperature: f32,
    /// Text to prompt the first window with (vocabulary, spelling, style).
    pub initial_prompt: Option<String>,
    /// Predict timestamps (segment boundaries); off = one segment per window.
    pub timestamps: bool,
    /// Latest first timestamp in a window, seconds.
    pub max_initial_timestamp: Option<f32>,
    /// Suppress the blank token and end-of-text at the first step.
    pub suppress_blank: bool,
    /// Ids never sampled; `None` = the checkpoint's `suppress_tokens` (else
    /// openai-whisper's non-speech symbol list).
    pub suppress_tokens: Option<Vec<u32>>,
    /// Windows decoded together; > 1 switches to the batched schedule
    /// (windows cut in pauses). Default: [`default_batch_size`].
    pub batch_size: usize,
    /// Candidates sampled per window at temperature > 0 (the likeliest is kept).
    pub best_of: usize,
    /// Beam width at temperature 0; 1 = greedy.
    pub beam_size: usize,
    /// Beam search stops after `round(beam_size × patience)` ended hypotheses.
    pub patience: f32,
    /// Most tokens per window; `None` = half the decoder context (224).
    pub sample_len: Option<usize>,
    pub seed: Option<u64>,
    /// Transcribe only what Silero VAD finds to be speech (see `vad_filter.rs`);
    /// `None` = the whole audio.
    pub vad: Option<crate::vad::VadOptions>,
    /// Time every word (`Segment::words`) by cross-attention alignment; segment
    /// bounds then follow the words (see `alignment.rs`).
    pub word_timestamps: bool,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            language: None,
            task: Task::Transcribe,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: Some(2.4),
            logprob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            condition_on_previous_text: true,
            prompt_reset_on_temperature: 0.5,
            initial_prompt: None,
            timestamps: true,
            max_initial_timestamp: Some(1.0),
            suppress_blank: true,
            suppress_tokens: None,
            batch_size: default_batch_size(),
            best_of: 5,
            beam_size: 1,
            patience: 1.0,
            sample_len: None,
            seed: None,
            vad: None,
            word_timestamps: false,
        }
    }
}

/// Windows decoded together unless the caller says otherwise: 8 on a GPU,
/// the largest batch measured at the sequential loop's word error rate on
/// long-form speech (4.9× mlx-whisper on an H200; batch 16 is 6.8× at 0.44
/// points more errors, benchmark/RESULTS.md 2026-11-25); 1 on the CPU, where
/// batching adds no throughput (the encoder is compute-bound).
pub fn default_batch_size() -> usize {
    if crate::backend::default_device_is_gpu() {
        8
    } else {
        1
    }
}

impl TranscribeOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.temperatures.is_empty() {
            return Err(Error::invalid("temperatures must not be empty"));
        }
        if let Some(t) = self
            .temperatures
            .iter()
            .find(|t| !(t.is_finite() && **t >= 0.0))
        {
            return Err(Error::invalid(format!(
                "temperatures must be finite and ≥ 0, got {t}"
            )));
        }
        for (name, value) in [
            (
                "compressionRatioThreshold",
                self.compression_ratio_threshold,
            ),
            ("logprobThreshold", self.logprob_threshold),
            ("noSpeechThreshold", self.no_speech_threshold),
            ("maxInitialTimestamp", self.max_initial_timestamp),
        ] {
            if value.is_some_and(|v| !v.is_finite()) {
                return Err(Error::invalid(format!("{name} must be a finite number")));
            }
        }
        if !(1..=256).contains(&self.batch_size) {
            return Err(Error::invalid(format!(
                "batchSize must be in 1..=256, got {}",
                self.batch_size
            )));
        }
        if !(1..=32).contains(&self.best_of) {
            return Err(Error::invalid(format!(
                "bestOf must be in 1..=32, got {}",
                self.best_of
            )));
        }
        if !(1..=32).contains(&self.beam_size) {
            return Err(Error::invalid(format!(
                "beamSize must be in 1..=32, got {}",
                self.beam_size
            )));
        }
        if !(self.patience.is_finite() && self.patience > 0.0) {
            return Err(Error::invalid(format!(
                "patience must be > 0, got {}",
                self.patience
            )));
        }
        // Decodes run batch_size × best_of (or × beam_size) rows at once.
        let width = self.best_of.max(self.beam_size);
        if self.batch_size * width > 1024 {
            return Err(Error::invalid(format!(
                "batchSize × max(bestOf, beamSize) must be ≤ 1024 (e.g. batchSize 256 with bestOf ≤ 4), got {} × {width}",
                self.batch_size
            )));
        }
        if self.sample_len == Some(0) {
            return Err(Error::invalid("sampleLen must be ≥ 1"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub id: usize,
    /// Mel frame where the segment's window started.
    pub seek: usize,
    /// Seconds from the start of the audio.
    pub start: f32,
    pub end: f32,
    pub text: String,
    /// Ids including the segment's timestamp tokens.
    pub tokens: Vec<u32>,
    /// Of the whole window the segment came from (as are the next three).
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
    pub temperature: f32,
    /// The segment's words; `None` unless `word_timestamps` is on.
    pub words: Option<Vec<Word>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    /// Decoding the audio file and resampling (0 for raw 16 kHz PCM).
    pub decode_audio_ms: f64,
    pub mel_ms: f64,
    pub encode_ms: f64,
    pub decode_ms: f64,
    /// Word timestamps' alignment passes (0 without `word_timestamps`).
    pub word_timestamps_ms: f64,
    pub total_ms: f64,
    /// Processing time / audio duration (< 1 is faster than real time).
    pub real_time_factor: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transcription {
    pub text: String,
    pub language: String,
    pub language_probability: f32,
    /// Seconds of audio.
    pub duration: f32,
    pub segments: Vec<Segment>,
    pub timings: Timings,
}

/// How far a transcription has come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub processed_seconds: f32,
    pub total_seconds: f32,
}

/// Optional cancellation and callbacks (called on the transcribing thread).
#[derive(Default)]
pub struct TranscribeHooks<'a> {
    /// Checked before every decoding step; set it (from any thread) to stop
    /// with `ABORT_ERR`.
    pub abort: Option<Arc<AtomicBool>>,
    pub on_progress: Option<&'a mut dyn FnMut(Progress)>,
    /// Each segment as soon as it is final.
    pub on_segment: Option<&'a mut dyn FnMut(&Segment)>,
}

impl TranscribeHooks<'_> {
    fn check_abort(&self) -> Result<()> {
        if self
            .abort
            .as_ref()
            .is_some_and(|a| a.load(Ordering::Relaxed))
        {
            Err(Error::Aborted)
        } else {
            Ok(())
        }
    }
}

/// A window's decoder prompt: `<|startofprev|>` and the last `max_prompt` context
/// tokens (when there is context), then the start-of-transcript sequence.
fn decoder_prompt(
    sot_prev: u32,
    context: &[u32],
    max_prompt: usize,
    sot_sequence: &[u32],
) -> Vec<u32> {
    let mut prompt = Vec::new();
    if !context.is_empty() {
        prompt.push(sot_prev);
        prompt.extend_from_slice(&context[context.len().saturating_sub(max_prompt)..]);
    }
    prompt.extend_from_slice(sot_sequence);
    prompt
}

/// `len(text) / len(zlib(text))`: high for repetitive text (hallucination loops).
pub fn compression_ratio(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing to a Vec cannot fail.
    encoder.write_all(text.as_bytes()).expect("in-memory write");
    let compressed = encoder.finish().expect("in-memory write");
    text.len() as f32 / compressed.len() as f32
}

/// Thresholds that decide whether a window is decoded again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FallbackThresholds {
    pub compression_ratio: Option<f32>,
    pub logprob: Option<f32>,
    pub no_speech: Option<f32>,
}

/// openai-whisper's rule: retry a repetitive or unlikely result, unless the
/// window is probably silence.
pub fn needs_fallback(result: &DecodedWindow, ratio: f32, t: &FallbackThresholds) -> bool {
    if t.no_speech
        .is_some_and(|threshold| result.no_speech_prob > threshold)
    {
        return false;
    }
    t.compression_ratio
        .is_some_and(|threshold| ratio > threshold)
        || t.logprob
            .is_some_and(|threshold| result.avg_logprob < threshold)
}

/// openai-whisper's silence rule: drop the window when no speech is likely and
/// the text is not confidently decoded.
pub fn is_silence(result: &DecodedWindow, t: &FallbackThresholds) -> bool {
    match t.no_speech {
        Some(threshold) if result.no_speech_prob > threshold => {
            !t.logprob.is_some_and(|lp| result.avg_logprob > lp)
        }
        _ => false,
    }
}

/// A window's final decode with its text and compression ratio.
struct WindowResult {
    decoded: DecodedWindow,
    compression_ratio: f32,
}

/// Per-transcription constants.
struct Plan<'a> {
    engine: &'a WhisperEngine,
    options: &'a TranscribeOptions,
    decode: DecodeOptions,
    thresholds: FallbackThresholds,
}

impl Plan<'_> {
    fn tokenizer(&self) -> &WhisperTokenizer {
        self.engine.tokenizer()
    }

    /// Decodes every row of `features` with the same `prompt`, retrying the rows
    /// that need it at the next temperature, all of them in one batch.
    fn decode_with_fallback(
        &self,
        features: &Array,
        prompts: Prompts,
        hooks: &TranscribeHooks,
        timings: &mut Timings,
    ) -> Result<Vec<WindowResult>> {
        let rows = features.dim(0) as usize;
        let mut results: Vec<Option<WindowResult>> = (0..rows).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..rows).collect();
        for (attempt, &temperature) in self.options.temperatures.iter().enumerate() {
            if pending.is_empty() {
                break;
            }
            let candidates = if temperature > 0.0 {
                self.options.best_of
            } else {
                1
            };
            // Row r of the batch is window pending[r / candidates].
            let order: Vec<i32> = pending
                .iter()
                .flat_map(|&w| std::iter::repeat_n(w as i32, candidates))
                .collect();
            let batch = if order.len() == rows && candidates == 1 {
                features.clone()
            } else {
                features.take_axis(Array::from_slice(&order, &[order.len() as i32]), 0)?
            };
            // Per-row prompts follow their windows into the batch's rows.
            let row_prompts;
            let prompts = match prompts {
                Prompts::Shared(_) => prompts,
                Prompts::PerRow(_) => {
                    let sources: Vec<usize> = order.iter().map(|&w| w as usize).collect();
                    row_prompts = prompts.expand(&sources);
                    Prompts::PerRow(&row_prompts)
                }
            };
            let options = DecodeOptions {
                temperature,
                seed: self.decode.seed.map(|s| s.wrapping_add(attempt as u64)),
                ..self.decode.clone()
            };
            let start = Instant::now();
            let (model, special, abort) = (
                self.engine.model(),
                self.tokenizer().special(),
                hooks.abort.as_deref(),
            );
            let decoded = if temperature == 0.0 && self.options.beam_size > 1 {
                let beam = BeamOptions {
                    beam_size: self.options.beam_size,
                    patience: self.options.patience,
                };
                beam_search_batch(model, special, &batch, prompts, &options, beam, abort)?
            } else {
                decode_batch(model, special, &batch, prompts, &options, abort)?
            };
            timings.decode_ms += start.elapsed().as_secs_f64() * 1e3;
            trace(|| {
                let longest = decoded.iter().map(|d| d.tokens.len()).max().unwrap_or(0);
                format!(
                    "decode {} rows at T {temperature}: longest {longest} tokens, {:.1} ms",
                    order.len(),
                    start.elapsed().as_secs_f64() * 1e3
                )
            });
            let mut still_pending = Vec::new();
            for (window, group) in pending.iter().zip(decoded.chunks(candidates)) {
                let best = group
                    .iter()
                    .max_by(|a, b| candidate_score(a).total_cmp(&candidate_score(b)))
                    .expect("one candidate per window at least")
                    .clone();
                let text = self.tokenizer().decode_text(&best.tokens)?;
                let ratio = compression_ratio(&text);
                if needs_fallback(&best, ratio, &self.thresholds) {
                    still_pending.push(*window);
                }
                results[*window] = Some(WindowResult {
                    decoded: best,
                    compression_ratio: ratio,
                });
            }
            pending = still_pending;
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every window decoded"))
            .collect())
    }
}

/// `MLX_NAPI_TRACE_WHISPER=1` prints the schedule to stderr: each round of
/// the batched schedule, each decode pass (rows, temperature, longest output,
/// time) and each re-read of skipped speech. A diagnostic for speed and lost
/// words (the benchmarks' child processes inherit it), not an API.
fn trace(message: impl FnOnce() -> String) {
    static ON: OnceLock<bool> = OnceLock::new();
    let on = *ON.get_or_init(|| {
        std::env::var_os("MLX_NAPI_TRACE_WHISPER").is_some_and(|v| !v.is_empty() && v != "0")
    });
    if on {
        eprintln!("whisper: {}", message());
    }
}

/// Seconds at mel frame `frame`.
fn seconds(frame: usize) -> f32 {
    frame as f32 * HOP_LENGTH as f32 / SAMPLE_RATE as f32
}

/// openai-whisper's ranking of sampled candidates: mean log-probability.
fn candidate_score(d: &DecodedWindow) -> f32 {
    d.sum_logprob / d.tokens.len().max(1) as f32
}

/// Splits a window's tokens into segments at timestamp pairs.
///
/// Returns the segments as `(start_s, end_s, tokens)` relative to the window
/// and how many mel frames the window consumed: up to the last complete
/// segment, or the whole window when it ended cleanly. Both schedules decode
/// the rest of the window again (the batched one in a later batch).
fn split_segments(
    tokenizer: &WhisperTokenizer,
    tokens: &[u32],
    window_frames: usize,
) -> (Vec<(f32, f32, Vec<u32>)>, usize) {
    let is_ts = |t: u32| tokenizer.is_timestamp(t);
    let window_seconds = (window_frames * HOP_LENGTH) as f32 / SAMPLE_RATE as f32;
    let single_timestamp_ending =
        tokens.len() >= 2 && !is_ts(tokens[tokens.len() - 2]) && is_ts(tokens[tokens.len() - 1]);
    let consecutive: Vec<usize> = (1..tokens.len())
        .filter(|&i| is_ts(tokens[i - 1]) && is_ts(tokens[i]))
        .collect();
    let mut segments = Vec::new();
    if consecutive.is_empty() {
        // No closed segment: the whole window is one segment, ending at its last
        // timestamp when there is one past zero.
        let end = tokens
            .iter()
            .rev()
            .find(|&&t| is_ts(t))
            .filter(|&&t| t != tokenizer.special().timestamp_begin)
            .map_or(window_seconds, |&t| tokenizer.timestamp_seconds(t));
        segments.push((0.0, end, tokens.to_vec()));
        return (segments, window_frames);
    }
    let mut slices = consecutive;
    if single_timestamp_ending {
        slices.push(tokens.len());
    }
    let mut last = 0;
    for &cut in &slices {
        let piece = &tokens[last..cut];
        // Timestamps past the window's audio (a window shorter than 30 s)
        // are clamped to its end, so segments never overlap the next window.
        let start = tokenizer.timestamp_seconds(piece[0]).min(window_seconds);
        let end = tokenizer
            .timestamp_seconds(piece[piece.len() - 1])
            .min(window_seconds);
        segments.push((start, end, piece.to_vec()));
        last = cut;
    }
    if single_timestamp_ending {
        return (segments, window_frames);
    }
    // Resume right after the last complete segment (2 mel frames per timestamp step).
    let last_timestamp = tokens[last - 1] - tokenizer.special().timestamp_begin;
    let consumed = (last_timestamp as usize * 2).clamp(1, window_frames);
    (segments, consumed)
}

impl WhisperEngine {
    /// Readies MLX for transcriptions that decode `batch_size` windows
    /// together; returns the time it took in ms. MLX compiles its GPU
    /// kernels on first use (seconds on CUDA, then cached on disk), and each
    /// process loads the kernels of every shape it meets once.
    ///
    /// Batch 1 transcribes one second of a quiet tone (8 tokens at most).
    /// A larger batch transcribes `batch_size` × 30 s of it with the default
    /// options, which walks the batched schedule (its rounds, re-reads and
    /// temperature fallbacks) as real speech does. Measured on an H200
    /// (tiny.en, 21.3 minutes at batch 16, three processes each): the first
    /// transcription took 2.2–2.4 s after the batch-1 warm-up and 1.5–1.6 s
    /// after this one (1.0–1.3 s); the next ones take 1.2–1.4 s. A shallower
    /// warm-up (`batch_size` windows decoded once from the longest prompt)
    /// left it at 1.7–2.5 s. On the CPU backend the batched warm-up is
    /// greedy and 8 tokens per window: there the decoding itself is the
    /// cost (a hallucinating random-weight model took 4.7 minutes with the
    /// default options at batch 2), and MLX compiles its CPU kernels per
    /// shape, which this still does.
    pub fn warmup(&self, batch_size: usize) -> Result<f64> {
        let mut options = TranscribeOptions {
            batch_size,
            ..Default::default()
        };
        if batch_size == 1 || !crate::backend::default_device_is_gpu() {
            options.temperatures = vec![0.0];
            options.sample_len = Some(8);
        }
        options.validate()?;
        let seconds = if batch_size > 1 { 30 * batch_size } else { 1 };
        let rate = SAMPLE_RATE as f32;
        let samples: Vec<f32> = (0..seconds * SAMPLE_RATE as usize)
            .map(|i| 0.05 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate).sin())
            .collect();
        let result = self.transcribe_samples(&samples, &options, TranscribeHooks::default())?;
        Ok(result.timings.total_ms)
    }

    /// Transcribes 16 kHz mono `samples` (see [`WhisperEngine::transcribe`]).
    pub fn transcribe_samples(
        &self,
        samples: &[f32],
        options: &TranscribeOptions,
        mut hooks: TranscribeHooks,
    ) -> Result<Transcription> {
        options.validate()?;
        let started = Instant::now();
        let duration = samples.len() as f32 / SAMPLE_RATE as f32;
        let mut timings = Timings::default();
        hooks.check_abort()?;

        let mel_start = Instant::now();
        let mel = self.log_mel().compute(samples, super::mel::CHUNK_SAMPLES)?;
        mel.eval()?;
        timings.mel_ms = mel_start.elapsed().as_secs_f64() * 1e3;
        let content_frames = samples.len() / HOP_LENGTH;

        let tokenizer = self.tokenizer();
        let special = *tokenizer.special();
        let suppress_tokens = match &options.suppress_tokens {
            Some(ids) => ids.clone(),
            None => match &self.model().config().suppress_tokens {
                Some(ids) => ids.clone(),
                None => {
                    let mut ids = tokenizer.non_speech_tokens()?;
                    ids.extend([
                        special.transcribe,
                        special.translate,
                        special.sot,
                        special.sot_prev,
                    ]);
                    ids
                }
            },
        };
        let begin_suppress_tokens = if options.suppress_blank {
            match &self.model().config().begin_suppress_tokens {
                Some(ids) => ids.clone(),
                None => {
                    let mut ids = tokenizer.encode(" ")?;
                    ids.push(special.eot);
                    ids
                }
            }
        } else {
            Vec::new()
        };
        let plan = Plan {
            engine: self,
            options,
            decode: DecodeOptions {
                temperature: 0.0,
                sample_len: options
                    .sample_len
                    .unwrap_or(self.model().config().n_text_ctx / 2),
                timestamps: options.timestamps,
                suppress_tokens,
                begin_suppress_tokens,
                max_initial_timestamp: options.max_initial_timestamp,
                seed: options.seed,
            },
            thresholds: FallbackThresholds {
                compression_ratio: options.compression_ratio_threshold,
                logprob: options.logprob_threshold,
                no_speech: options.no_speech_threshold,
            },
        };

        // The batched schedule reads sections cut in pauses, its windows end in
        // pauses; the sequential one's first window is the first 30 s.
        let (sections, first_window) = if options.batch_size > 1 && content_frames > 0 {
            let planner = Planner::new(samples, content_frames);
            let sections = planner.sections(options.batch_size);
            let first = (0, planner.window_end(0, sections[0].1));
            (Some((planner, sections)), first)
        } else {
            (None, (0, content_frames.min(N_FRAMES)))
        };

        // Language: given, English-only, or detected on the first window (whose
        // encoder output is then reused for decoding it).
        let mut first_features: Option<Array> = None;
        let (language_token, language, language_probability) = if !tokenizer.is_multilingual() {
            (None, "en".to_string(), 1.0)
        } else if let Some(name) = &options.language {
            let token = tokenizer.language_token(name)?;
            (
                Some(token),
                tokenizer.language_code(token).unwrap_or("en").to_string(),
                1.0,
            )
        } else {
            let features =
                self.encode_windows(&mel, &[first_window], &mut timings, hooks.abort.as_deref())?;
            let start = Instant::now();
            let detected = super::decode::detect_language(
                self.model(),
                &special,
                tokenizer.languages(),
                &features,
            )?;
            timings.decode_ms += start.elapsed().as_secs_f64() * 1e3;
            first_features = Some(features);
            let (best, probs) = &detected[0];
            let (code, token) = tokenizer.languages()[*best];
            (Some(token), code.to_string(), probs[*best])
        };
        if let (Some(name), false) = (&options.language, tokenizer.is_multilingual()) {
            let wanted = name.to_ascii_lowercase();
            if wanted != "en" && wanted != "english" {
                return Err(Error::invalid(format!(
                    "this English-only model cannot transcribe language {name:?}"
                )));
            }
        }
        if options.task == Task::Translate && !tokenizer.is_multilingual() {
            return Err(Error::invalid("translation needs a multilingual model"));
        }
        let sot_sequence = tokenizer.sot_sequence(language_token, options.task, options.timestamps);
        let initial_prompt = match &options.initial_prompt {
            Some(text) if !text.trim().is_empty() => {
                tokenizer.encode(&format!(" {}", text.trim()))?
            }
            _ => Vec::new(),
        };

        let mut run = Run {
            segments: Vec::new(),
            hooks: &mut hooks,
            duration,
            words: options.word_timestamps.then(|| {
                WordAligner::new(
                    self.model(),
                    tokenizer,
                    language_token,
                    &language,
                    options.task,
                )
            }),
        };
        if let Some((planner, sections)) = sections {
            self.transcribe_sections(
                &plan,
                &mel,
                &planner,
                &sections,
                &sot_sequence,
                &initial_prompt,
                first_features,
                &mut run,
                &mut timings,
            )?;
        } else {
            self.transcribe_sequential(
                &plan,
                &mel,
                content_frames,
                &sot_sequence,
                &initial_prompt,
                first_features,
                &mut run,
                &mut timings,
            )?;
        }
        timings.word_timestamps_ms = run.words.as_ref().map_or(0.0, |w| w.elapsed_ms);
        let segments = run.segments;
        let text = segments.iter().map(|s| s.text.as_str()).collect::<String>();
        timings.total_ms = started.elapsed().as_secs_f64() * 1e3;
        timings.real_time_factor = if duration > 0.0 {
            timings.total_ms / 1e3 / f64::from(duration)
        } else {
            0.0
        };
        Ok(Transcription {
            text,
            language,
            language_probability,
            duration,
            segments,
            timings,
        })
    }

    /// Encoder output `[n, 1500, d]` for windows `(start frame, content frames)`.
    fn encode_windows(
        &self,
        mel: &Array,
        windows: &[(usize, usize)],
        timings: &mut Timings,
        abort: Option<&AtomicBool>,
    ) -> Result<Array> {
        let start = Instant::now();
        let frames = windows
            .iter()
            .map(|&(seek, content)| window_frames(mel, seek, content))
            .collect::<Result<Vec<_>>>()?;
        let batch = ops::stack(&frames, 0)?;
        let features = self.model().encode_abortable(&batch, abort)?;
        features.eval()?;
        timings.encode_ms += start.elapsed().as_secs_f64() * 1e3;
        Ok(features)
    }

    #[allow(clippy::too_many_arguments)]
    fn transcribe_sequential(
        &self,
        plan: &Plan,
        mel: &Array,
        content_frames: usize,
        sot_sequence: &[u32],
        initial_prompt: &[u32],
        mut first_features: Option<Array>,
        run: &mut Run,
        timings: &mut Timings,
    ) -> Result<()> {
        let tokenizer = self.tokenizer();
        let max_prompt = self.model().config().n_text_ctx / 2 - 1;
        let mut all_tokens: Vec<u32> = initial_prompt.to_vec();
        let mut prompt_reset_since = 0;
        let mut seek = 0;
        while seek < content_frames {
            run.hooks.check_abort()?;
            let window = (content_frames - seek).min(N_FRAMES);
            let features = match first_features.take() {
                Some(f) if seek == 0 => f,
                _ => self.encode_windows(
                    mel,
                    &[(seek, window)],
                    timings,
                    run.hooks.abort.as_deref(),
                )?,
            };
            let prompt = decoder_prompt(
                tokenizer.special().sot_prev,
                &all_tokens[prompt_reset_since..],
                max_prompt,
                sot_sequence,
            );
            let result = plan
                .decode_with_fallback(&features, Prompts::Shared(&prompt), run.hooks, timings)?
                .remove(0);
            let offset = seek as f32 * HOP_LENGTH as f32 / SAMPLE_RATE as f32;
            if is_silence(&result.decoded, &plan.thresholds) {
                seek += window;
                run.progress(seek);
                continue;
            }
            let (pieces, consumed) = split_segments(tokenizer, &result.decoded.tokens, window);
            let before = run.segments.len();
            run.add(
                tokenizer,
                seek,
                offset,
                pieces,
                &result,
                Some((&features, window)),
            )?;
            if !plan.options.condition_on_previous_text
                || result.decoded.temperature > plan.options.prompt_reset_on_temperature
            {
                prompt_reset_since = all_tokens.len();
            }
            all_tokens.extend(
                run.segments[before..]
                    .iter()
                    .flat_map(|s| s.tokens.iter().copied()),
            );
            seek += consumed;
            // With word timestamps, openai-whisper resumes after the last word.
            let resume = run
                .words
                .as_ref()
                .map(|w| w.resume_frame(&result.decoded.tokens, seek - consumed));
            seek = resume.flatten().unwrap_or(seek);
            run.progress(seek.min(content_frames));
        }
        Ok(())
    }

    /// The batched schedule: the audio is split at pauses into up to
    /// `batch_size` contiguous sections of about equal length, and each
    /// section is read by its own seek loop — windows ending in pauses, each
    /// starting after the previous one's last complete segment and prompted
    /// with the section's own text so far, as in [`Self::transcribe_sequential`]
    /// — while the sections' current windows are decoded together, one row
    /// each (prompts of different lengths are padded and masked). Sections end
    /// in pauses, so no sentence straddles two; segments are handed out in
    /// time order (a later section's wait until the earlier ones are done).
    /// Rows of finished sections take over the rest of sections that fell
    /// behind ([`Planner::take_over_point`]).
    #[allow(clippy::too_many_arguments)]
    fn transcribe_sections(
        &self,
        plan: &Plan,
        mel: &Array,
        planner: &Planner,
        sections: &[(usize, usize)],
        sot_sequence: &[u32],
        initial_prompt: &[u32],
        mut first_features: Option<Array>,
        run: &mut Run,
        timings: &mut Timings,
    ) -> Result<()> {
        let tokenizer = self.tokenizer();
        let sot_prev = tokenizer.special().sot_prev;
        let max_prompt = self.model().config().n_text_ctx / 2 - 1;
        let mut readers: Vec<SectionReader> = sections
            .iter()
            .map(|&(start, end)| SectionReader::new(start, end, initial_prompt))
            .collect();
        let mut next_to_emit = 0;
        // Words per second of speech over every section read so far: a
        // segment far below it passed over speech (see `skipped_speech`).
        let mut word_rate = WordRate::default();
        let is_active = |r: &SectionReader| r.seek < r.end;
        loop {
            run.hooks.check_abort()?;
            // Rows left idle by finished sections take over the rest of the
            // section with the most audio beyond its next window, as a new
            // section right after it (so segments still come out in order).
            while readers.iter().filter(|r| is_active(r)).count() < plan.options.batch_size {
                let furthest = (0..readers.len())
                    .filter(|&i| is_active(&readers[i]))
                    .filter_map(|i| {
                        let r = &readers[i];
                        let cut =
                            planner.take_over_point(r.seek, r.limit.unwrap_or(r.end), r.end)?;
                        Some((r.end - cut, i, cut))
                    })
                    .max();
                let Some((_, i, cut)) = furthest else { break };
                let end = std::mem::replace(&mut readers[i].end, cut);
                trace(|| {
                    format!(
                        "an idle row takes over {:.1}–{:.1} s",
                        seconds(cut),
                        seconds(end)
                    )
                });
                readers.insert(i + 1, SectionReader::new(cut, end, initial_prompt));
            }
            let active: Vec<usize> = (0..readers.len())
                .filter(|&i| is_active(&readers[i]))
                .collect();
            if active.is_empty() {
                break;
            }
            let windows: Vec<(usize, usize)> = active
                .iter()
                .map(|&i| {
                    let r = &readers[i];
                    let end = r.limit.map_or(r.end, |limit| limit.min(r.end));
                    (r.seek, planner.window_end(r.seek, end) - r.seek)
                })
                .collect();
            trace(|| {
                let spans: Vec<String> = active
                    .iter()
                    .zip(&windows)
                    .map(|(i, &(seek, n))| format!("#{i} {:.1}+{:.1}", seconds(seek), seconds(n)))
                    .collect();
                format!("round: {} sections: {}", active.len(), spans.join(", "))
            });
            // The language-detection pass already encoded section 0's first window.
            let features = match first_features.take() {
                Some(first) if active[0] == 0 && readers[0].seek == 0 => {
                    if windows.len() > 1 {
                        let abort = run.hooks.abort.as_deref();
                        let rest = self.encode_windows(mel, &windows[1..], timings, abort)?;
                        ops::concatenate(&[first, rest], 0)?
                    } else {
                        first
                    }
                }
                _ => self.encode_windows(mel, &windows, timings, run.hooks.abort.as_deref())?,
            };
            let prompts: Vec<Vec<u32>> = active
                .iter()
                .map(|&i| {
                    let r = &readers[i];
                    decoder_prompt(
                        sot_prev,
                        &r.context[r.prompt_reset_since..],
                        max_prompt,
                        sot_sequence,
                    )
                })
                .collect();
            let results = plan.decode_with_fallback(
                &features,
                Prompts::PerRow(&prompts),
                run.hooks,
                timings,
            )?;
            let rows = active.iter().zip(&windows).zip(results).enumerate();
            for (row, ((&i, &(seek, window)), result)) in rows {
                let reader = &mut readers[i];
                // A limit bounds only the one window after a skip.
                reader.limit = None;
                if is_silence(&result.decoded, &plan.thresholds) {
                    reader.seek += window;
                    continue;
                }
                let (pieces, consumed) = split_segments(tokenizer, &result.decoded.tokens, window);
                let offset = seek as f32 * HOP_LENGTH as f32 / SAMPLE_RATE as f32;
                let audio = features.try_index(row as i32..row as i32 + 1)?;
                let words = run.words.as_mut().map(|w| (w, &audio, window));
                let mut segments = segments_of(tokenizer, seek, offset, pieces, &result, words)?;
                // Speech the model jumped over is read again, prompted with
                // the text before it, in a window that ends where it resumed;
                // skipped again from the same frame, in two halves split at a
                // pause; a third time, it is accepted as it is.
                let skipped = skipped_speech(
                    planner,
                    &segments,
                    seek,
                    seek + consumed,
                    word_rate.typical(),
                )
                .and_then(|skip| match reader.reread {
                    Some(r) if r.same_start(skip.resume) && !r.halved => planner
                        .split_point(skip.resume, skip.limit)
                        .map(|mid| (Skipped { limit: mid, ..skip }, true)),
                    Some(r) if r.same_start(skip.resume) => None,
                    _ => Some((skip, false)),
                });
                if !plan.options.condition_on_previous_text
                    || result.decoded.temperature > plan.options.prompt_reset_on_temperature
                {
                    reader.prompt_reset_since = reader.context.len();
                }
                if let Some((skip, _)) = &skipped {
                    segments.truncate(skip.keep);
                }
                for segment in &segments {
                    word_rate.add(planner, span_of(segment));
                }
                reader
                    .context
                    .extend(segments.iter().flat_map(|s| s.tokens.iter().copied()));
                reader.segments.extend(segments);
                if let Some((skip, halved)) = skipped {
                    trace(|| {
                        format!(
                            "section #{i}: speech skipped, read {:.1}–{:.1} s again{}",
                            seconds(skip.resume),
                            seconds(skip.limit),
                            if halved { " (first half)" } else { "" }
                        )
                    });
                    reader.seek = skip.resume.max(seek);
                    reader.limit = Some(skip.limit);
                    reader.reread = Some(Reread {
                        from: skip.resume,
                        halved,
                    });
                    continue;
                }
                reader.seek += consumed;
                // With word timestamps, openai-whisper resumes after the last word.
                let resume = run
                    .words
                    .as_ref()
                    .map(|w| w.resume_frame(&result.decoded.tokens, seek));
                reader.seek = resume.flatten().unwrap_or(reader.seek);
            }
            // Hand out what is final: everything of the finished leading
            // sections, and what the first unfinished one has so far.
            while next_to_emit < readers.len() {
                let reader = &mut readers[next_to_emit];
                for segment in reader.segments.drain(..) {
                    run.push(segment);
                }
                if reader.seek < reader.end {
                    break;
                }
                next_to_emit += 1;
            }
            let done: usize = readers.iter().map(|r| r.seek.min(r.end) - r.start).sum();
            run.progress(done);
        }
        Ok(())
    }
}

/// One section's seek loop in the batched schedule.
struct SectionReader {
    seek: usize,
    start: usize,
    end: usize,
    /// Tokens of the section's segments so far (after the initial prompt).
    context: Vec<u32>,
    prompt_reset_since: usize,
    /// Segments not yet handed out.
    segments: Vec<Segment>,
    /// Re-reading skipped speech: the next window ends by this frame.
    limit: Option<usize>,
    /// The last re-read of skipped speech (bounded: see [`Reread`]).
    reread: Option<Reread>,
}

impl SectionReader {
    /// A seek loop over frames `start..end`, prompted with `initial_prompt`.
    fn new(start: usize, end: usize, initial_prompt: &[u32]) -> Self {
        SectionReader {
            seek: start,
            start,
            end,
            context: initial_prompt.to_vec(),
            prompt_reset_since: 0,
            segments: Vec::new(),
            limit: None,
            reread: None,
        }
    }
}

/// A re-read of skipped speech: where it started, and whether it already
/// covered only the first half of the span. A skip found again from the same
/// frame is read in halves once, then accepted as is (no endless loop).
#[derive(Clone, Copy)]
struct Reread {
    from: usize,
    halved: bool,
}

impl Reread {
    /// Within a second of where it started: the same skip (the model's
    /// timestamps move a little between reads of the same audio).
    fn same_start(&self, resume: usize) -> bool {
        resume.abs_diff(self.from) <= SAMPLE_RATE as usize / HOP_LENGTH
    }
}

/// Speech a decoded window's segments passed over (see
/// [`Planner::skipped_speech`]), within the part of the window it consumed.
fn skipped_speech(
    planner: &Planner,
    segments: &[Segment],
    window_start: usize,
    window_end: usize,
    typical_rate: Option<f64>,
) -> Option<Skipped> {
    let spans: Vec<(usize, usize, usize)> = segments.iter().map(span_of).collect();
    planner.skipped_speech(window_start, window_end, &spans, typical_rate)
}

/// A segment as (start frame, end frame, words).
fn span_of(segment: &Segment) -> (usize, usize, usize) {
    let frame = |t: f32| {
        (t * SAMPLE_RATE as f32 / HOP_LENGTH as f32)
            .round()
            .max(0.0) as usize
    };
    (
        frame(segment.start),
        frame(segment.end),
        segment.text.split_whitespace().count(),
    )
}

/// The segments of one decoded window (ids are given when they are handed out),
/// with their words when `words` is given (the aligner, the window's encoder
/// output `[1, n_audio_ctx, d]` and its mel frames).
fn segments_of(
    tokenizer: &WhisperTokenizer,
    seek: usize,
    offset: f32,
    pieces: Vec<(f32, f32, Vec<u32>)>,
    result: &WindowResult,
    words: Option<(&mut WordAligner, &Array, usize)>,
) -> Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for (start, end, tokens) in pieces {
        segments.push(Segment {
            id: 0,
            seek,
            start: offset + start,
            end: offset + end,
            text: tokenizer.decode_text(&tokens)?,
            tokens,
            avg_logprob: result.decoded.avg_logprob,
            compression_ratio: result.compression_ratio,
            no_speech_prob: result.decoded.no_speech_prob,
            temperature: result.decoded.temperature,
            words: None,
        });
    }
    // Words are timed over the window's whole text, empty segments included
    // (as openai-whisper and faster-whisper do); segment bounds follow them.
    if let Some((aligner, features, frames)) = words {
        aligner.add_words(features, frames, &mut segments)?;
    }
    // Instantaneous or empty segments carry nothing (openai-whisper drops them too).
    segments.retain(|s| !s.text.trim().is_empty() && s.start != s.end);
    Ok(segments)
}

/// Segments produced so far and the caller's hooks.
struct Run<'h, 'a> {
    segments: Vec<Segment>,
    hooks: &'h mut TranscribeHooks<'a>,
    duration: f32,
    /// Word timing (`word_timestamps`).
    words: Option<WordAligner<'h>>,
}

impl Run<'_, '_> {
    fn add(
        &mut self,
        tokenizer: &WhisperTokenizer,
        seek: usize,
        offset: f32,
        pieces: Vec<(f32, f32, Vec<u32>)>,
        result: &WindowResult,
        audio: Option<(&Array, usize)>,
    ) -> Result<()> {
        let words = self.words.as_mut().zip(audio).map(|(w, (f, n))| (w, f, n));
        for segment in segments_of(tokenizer, seek, offset, pieces, result, words)? {
            self.push(segment);
        }
        Ok(())
    }

    /// Numbers `segment`, hands it to the caller's callback and keeps it.
    fn push(&mut self, mut segment: Segment) {
        segment.id = self.segments.len();
        if let Some(callback) = self.hooks.on_segment.as_mut() {
            callback(&segment);
        }
        self.segments.push(segment);
    }

    fn progress(&mut self, frames_done: usize) {
        let processed = (frames_done * HOP_LENGTH) as f32 / SAMPLE_RATE as f32;
        let total = self.duration;
        if let Some(callback) = self.hooks.on_progress.as_mut() {
            callback(Progress {
                processed_seconds: processed.min(total),
                total_seconds: total,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(avg_logprob: f32, no_speech_prob: f32) -> DecodedWindow {
        DecodedWindow {
            tokens: vec![1, 2, 3],
            sum_logprob: avg_logprob * 4.0,
            avg_logprob,
            no_speech_prob,
            temperature: 0.0,
            finished: true,
        }
    }

    const DEFAULTS: FallbackThresholds = FallbackThresholds {
        compression_ratio: Some(2.4),
        logprob: Some(-1.0),
        no_speech: Some(0.6),
    };

    #[test]
    fn compression_ratio_flags_repetition() {
        let normal = "And so my fellow Americans, ask not what your country can do for you.";
        assert!(
            compression_ratio(normal) < 1.5,
            "{}",
            compression_ratio(normal)
        );
        let looped = "I'm going to go to the store. ".repeat(12);
        assert!(
            compression_ratio(&looped) > 2.4,
            "{}",
            compression_ratio(&looped)
        );
        assert_eq!(compression_ratio(""), 0.0);
    }

    #[test]
    fn fallback_decisions_follow_thresholds() {
        // Confident and not repetitive: keep.
        assert!(!needs_fallback(&decoded(-0.3, 0.1), 1.2, &DEFAULTS));
        // Repetitive: retry.
        assert!(needs_fallback(&decoded(-0.3, 0.1), 3.0, &DEFAULTS));
        // Unlikely: retry.
        assert!(needs_fallback(&decoded(-1.5, 0.1), 1.2, &DEFAULTS));
        // Unlikely but silence: no retry.
        assert!(!needs_fallback(&decoded(-1.5, 0.9), 1.2, &DEFAULTS));
        // Thresholds off: never retry.
        let off = FallbackThresholds {
            compression_ratio: None,
            logprob: None,
            no_speech: None,
        };
        assert!(!needs_fallback(&decoded(-5.0, 0.1), 9.0, &off));
    }

    #[test]
    fn silence_needs_low_confidence_too() {
        assert!(is_silence(&decoded(-1.18, 0.926), &DEFAULTS)); // Noise.wav's numbers
        assert!(!is_silence(&decoded(-0.5, 0.926), &DEFAULTS));
        assert!(!is_silence(&decoded(-1.18, 0.3), &DEFAULTS));
        let no_logprob = FallbackThresholds {
            logprob: None,
            ..DEFAULTS
        };
        assert!(is_silence(&decoded(-0.1, 0.9), &no_logprob));
    }
}
