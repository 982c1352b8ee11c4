//! `loadWhisper()`, the `Whisper` class and the `toSRT` / `toVTT` / `toJSON`
//! formatters.
//!
//! A loaded model lives on its own worker thread (`worker.rs`; MLX streams are
//! per thread, so the engine is built and used there). Options are converted
//! and checked here (types, names, presets) and in the core (ranges). JS
//! callbacks (`onSegment`, `onProgress`) run on the JS thread while the model
//! thread waits for them, so they all run before the promise settles and an
//! `AbortController.abort()` inside one stops the transcription at once; a
//! callback that throws stops it too and the promise rejects with that error.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};

use mlx_napi_core::{
    audio::AudioInput,
    vad::VadOptions,
    whisper::{
        self, default_batch_size,
        subtitles::{self, decimal, Cue},
        Progress, Segment as CoreSegment, Task, Timings, TranscribeHooks, TranscribeOptions,
        Transcription, WhisperEngine, Word as CoreWord,
    },
    Error as CoreError,
};
use napi::{
    bindgen_prelude::{
        Either, Either3, Float32Array, FromNapiValue, JsObjectValue, Null, Object, Uint8Array,
        Unknown,
    },
    threadsafe_function::ThreadsafeFunction,
    Env, JsValue, Status,
};
use napi_derive::napi;

use crate::{
    abort::AbortWatch,
    errors::throw,
    load::{self, HubOptionsJs, KindLoadOptions, ProgressCallback, QuantizeOptions},
    options::{abort_watch, check_options, finite, typed, whole, Kind},
    promise::Settler,
    worker::{self, submit, submit_abortable, WorkerSlot},
};

// ---------------------------------------------------------------- JS shapes

#[napi(object, object_to_js = false)]
pub struct LoadWhisperOptions {
    /// Compute dtype. "auto" (default): float32 on the CPU backend (float16 is
    /// emulated there), the checkpoint's own dtype on a GPU.
    #[napi(ts_type = "'auto' | 'float32' | 'float16' | 'bfloat16'")]
    pub dtype: Option<String>,
    /// Quantize a dense checkpoint's linear and embedding weights while loading.
    pub quantize: Option<QuantizeOptions>,
    /// Folder with `tokenizer.json` when the model folder has none (MLX
    /// community checkpoints), e.g. the matching `openai/whisper-*` folder.
    pub tokenizer_dir: Option<String>,
    /// Called (on the JS thread) as loading progresses (stage "download" while
    /// a repo id's files are fetched).
    #[napi(ts_type = "(progress: LoadProgress) => void")]
    pub on_progress: Option<ProgressCallback>,
    /// Branch, tag or commit of a repo id (default "main"; `owner/name@rev` works too).
    pub revision: Option<String>,
    /// Hub endpoint, token, cache folder and offline mode.
    #[napi(ts_type = "HubOptions")]
    pub hub: Option<HubOptionsJs>,
    /// Stops a download (rejecting with an AbortError); an interrupted download
    /// resumes on the next call.
    #[napi(ts_type = "AbortSignal")]
    #[allow(dead_code)] // read from the raw object, see `abort_watch`
    pub signal: Option<Unknown<'static>>,
}

/// How far a transcription has come (audio seconds).
#[napi(object)]
#[derive(Clone)]
pub struct TranscribeProgress {
    pub seconds_done: f64,
    pub seconds_total: f64,
}

#[napi(object)]
#[derive(Clone)]
pub struct Segment {
    /// 0-based position in `segments`.
    pub id: u32,
    /// Mel frame (10 ms) where the segment's 30 s window started.
    pub seek: u32,
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Token ids, including the segment's timestamp tokens.
    pub tokens: Vec<u32>,
    /// Of the whole window the segment came from (as are the next three).
    pub avg_logprob: f64,
    pub compression_ratio: f64,
    pub no_speech_prob: f64,
    /// Temperature of the decode that was kept (> 0 after a fallback).
    pub temperature: f64,
    /// The segment's words with their times; only with `wordTimestamps: true`.
    pub words: Option<Vec<Word>>,
}

/// One word of a segment (`wordTimestamps: true`).
#[napi(object)]
#[derive(Clone)]
pub struct Word {
    /// The word as it appears in the segment text: leading space included,
    /// punctuation attached (a segment's words concatenate to its text).
    pub word: String,
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    /// Mean probability of the word's tokens (0–1).
    pub probability: f64,
}

#[napi(object)]
pub struct TranscriptionTimings {
    /// Decoding the file and resampling to 16 kHz.
    pub decode_audio_ms: f64,
    pub mel_ms: f64,
    pub encode_ms: f64,
    pub decode_ms: f64,
    /// Word-timestamp alignment (0 without `wordTimestamps`).
    pub word_timestamps_ms: f64,
    pub total_ms: f64,
    /// Processing time / audio duration (< 1 is faster than real time).
    pub real_time_factor: f64,
}

#[napi(object, js_name = "Transcription")]
pub struct TranscriptionJs {
    pub text: String,
    /// Language code, e.g. "en" (given, detected, or "en" for `.en` models).
    pub language: String,
    /// Probability of the detected language (1 when it was not detected).
    pub language_probability: f64,
    /// Seconds of audio.
    pub duration: f64,
    pub segments: Vec<Segment>,
    pub timings: TranscriptionTimings,
}

#[napi(object)]
pub struct LanguageProbability {
    pub language: String,
    pub probability: f64,
}

type SegmentCallback = ThreadsafeFunction<Segment, (), Segment, Status, false>;
type TranscribeProgressCallback =
    ThreadsafeFunction<TranscribeProgress, (), TranscribeProgress, Status, false>;

/// Options of `transcribe()`; every field is optional. Defaults are
/// openai-whisper's (greedy with temperature fallback, timestamps on).
#[napi(object, object_to_js = false, js_name = "TranscribeOptions")]
pub struct TranscribeOptionsJs {
    /// Spoken language (code like "en" or name like "english"), or "auto"
    /// (default): detected on multilingual models, English on `.en` models.
    pub language: Option<String>,
    /// "transcribe" (default) or "translate" (to English; multilingual models).
    #[napi(ts_type = "'transcribe' | 'translate'")]
    pub task: Option<String>,
    /// One temperature, or the fallback sequence (default 0, 0.2, … 1.0).
    #[napi(ts_type = "number | number[]")]
    pub temperature: Option<Either<f64, Vec<f64>>>,
    /// Beam width at temperature 0 (default 1 = greedy).
    pub beam_size: Option<f64>,
    /// Candidates sampled at temperature > 0 (default 5).
    pub best_of: Option<f64>,
    /// Beam search stops after `beamSize × patience` finished hypotheses (default 1).
    pub patience: Option<f64>,
    /// Windows decoded together (default 8 on a GPU, 1 on the CPU). Above 1
    /// the audio is cut into windows of at most 30 s that end in pauses, and a
    /// window's unfinished tail is decoded again in the next batch: no words
    /// are lost, but windows are not conditioned on previous text.
    pub batch_size: Option<f64>,
    /// `lowMemory` (batch 1), `balanced` (8) or `maxSpeed` (16); an explicit
    /// `batchSize` wins.
    #[napi(ts_type = "'lowMemory' | 'balanced' | 'maxSpeed'")]
    pub preset: Option<String>,
    /// Prompt each window with the text so far (default true; batch size 1 only).
    pub condition_on_previous_text: Option<bool>,
    /// Stop conditioning after a window decoded above this temperature (default 0.5).
    pub prompt_reset_on_temperature: Option<f64>,
    /// Text that primes the first window (names, spelling, style).
    pub initial_prompt: Option<String>,
    /// Above this gzip ratio a window is re-decoded (default 2.4; null: never).
    #[napi(ts_type = "number | null")]
    pub compression_ratio_threshold: Option<Either<f64, Null>>,
    /// Below this average log-probability a window is re-decoded (default -1; null: never).
    #[napi(ts_type = "number | null")]
    pub logprob_threshold: Option<Either<f64, Null>>,
    /// Above this no-speech probability a low-confidence window is silence
    /// (default 0.6; null: never).
    #[napi(ts_type = "number | null")]
    pub no_speech_threshold: Option<Either<f64, Null>>,
    /// Segment timestamps (default true); false gives one segment per window.
    pub timestamps: Option<bool>,
    /// Word-level timestamps in `segment.words` (default false), from the
    /// decoder's cross-attention (openai-whisper's method, as faster-whisper).
    /// Costs one extra decoder pass per 30 s window; segment `start`/`end` then
    /// follow the first and last word.
    pub word_timestamps: Option<bool>,
    /// Latest first timestamp in a window, seconds (default 1; null: no limit).
    #[napi(ts_type = "number | null")]
    pub max_initial_timestamp: Option<Either<f64, Null>>,
    /// Most tokens per window (default 224).
    pub sample_len: Option<f64>,
    /// Token ids never produced (default: the checkpoint's list).
    pub suppress_tokens: Option<Vec<f64>>,
    /// Suppress a blank first token (default true).
    pub suppress_blank: Option<bool>,
    /// Seed of the sampler at temperature > 0.
    pub seed: Option<f64>,
    /// Sample rate of Float32Array PCM input (required for it).
    pub sample_rate: Option<f64>,
    // --- VAD (see vad_options) ---
    /// Transcribe only the speech Silero VAD finds (default false): `true` for
    /// the defaults, or an object to tune them. Segment times stay on the
    /// original audio's timeline; audio without speech gives no segments.
    #[napi(ts_type = "boolean | VadOptions")]
    pub vad: Option<Either<bool, VadOptionsJs>>,
    // --- end VAD ---
    /// Rejects the promise with an AbortError (code ABORT_ERR) at the next step.
    #[napi(ts_type = "AbortSignal")]
    #[allow(dead_code)] // read from the raw object, see `abort_watch`
    pub signal: Option<Unknown<'static>>,
    /// Called after each window (the model waits for it).
    #[napi(ts_type = "(progress: TranscribeProgress) => void")]
    pub on_progress: Option<TranscribeProgressCallback>,
    /// Called with each segment as soon as it is final (the model waits for it).
    #[napi(ts_type = "(segment: Segment) => void")]
    pub on_segment: Option<SegmentCallback>,
}

// --- VAD (binding of mlx_napi_core::vad) ---
/// Voice-activity-detection settings (Silero VAD v6 run in-process;
/// faster-whisper's `vad_filter` rules). Every field is optional.
#[napi(object, object_to_js = false, js_name = "VadOptions")]
pub struct VadOptionsJs {
    /// A 32 ms chunk with a speech probability at or above this is speech (default 0.5).
    pub threshold: Option<f64>,
    /// Speech ends below this probability (default `max(threshold − 0.15, 0.01)`).
    pub neg_threshold: Option<f64>,
    /// Shorter speech (before padding) is dropped, ms (default 250).
    pub min_speech_ms: Option<f64>,
    /// Silence must last this long to end speech, ms (default 2000).
    pub min_silence_ms: Option<f64>,
    /// Padding kept on both sides of each speech range, ms (default 400).
    pub speech_pad_ms: Option<f64>,
    /// Longer speech is split, at its last pause if it has one, seconds (default: no limit).
    pub max_speech_s: Option<f64>,
}

/// `vad: true | { … }` → core options (ranges are checked in the core).
fn vad_options(value: Option<Either<bool, VadOptionsJs>>) -> Result<Option<VadOptions>, CoreError> {
    let o = match value {
        None | Some(Either::A(false)) => return Ok(None),
        Some(Either::A(true)) => return Ok(Some(VadOptions::default())),
        Some(Either::B(o)) => o,
    };
    let mut out = VadOptions::default();
    if let Some(v) = finite("vad.threshold", o.threshold)? {
        out.threshold = v;
    }
    out.neg_threshold = finite("vad.negThreshold", o.neg_threshold)?;
    for (name, value, slot) in [
        ("vad.minSpeechMs", o.min_speech_ms, &mut out.min_speech_ms),
        (
            "vad.minSilenceMs",
            o.min_silence_ms,
            &mut out.min_silence_ms,
        ),
        ("vad.speechPadMs", o.speech_pad_ms, &mut out.speech_pad_ms),
    ] {
        if let Some(v) = finite(name, value)? {
            *slot = v;
        }
    }
    out.max_speech_s = finite("vad.maxSpeechS", o.max_speech_s)?;
    Ok(Some(out))
}
// --- end VAD ---

/// A timed piece of text; `Segment`s qualify.
#[napi(object, object_to_js = false)]
pub struct TimedText {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Read only with `{ wordLevel: true }`.
    pub words: Option<Vec<TimedWord>>,
}

/// A timed word; `Word`s qualify.
#[napi(object, object_to_js = false)]
pub struct TimedWord {
    pub start: f64,
    pub end: f64,
    pub word: String,
}

/// Options of `toSRT` / `toVTT`.
#[napi(object, object_to_js = false)]
pub struct SubtitleOptions {
    /// One cue per word instead of per segment (default false). Needs
    /// `segment.words`, i.e. a transcription made with `wordTimestamps: true`.
    pub word_level: Option<bool>,
}

/// What `toSRT` / `toVTT` read: a `Transcription` qualifies.
#[napi(object, object_to_js = false)]
pub struct SubtitleSource {
    pub segments: Vec<TimedText>,
}

// ---------------------------------------------------------- core → JS values

fn segment_to_js(s: &CoreSegment) -> Segment {
    Segment {
        id: s.id as u32,
        seek: s.seek as u32,
        start: decimal(s.start),
        end: decimal(s.end),
        text: s.text.clone(),
        tokens: s.tokens.clone(),
        avg_logprob: decimal(s.avg_logprob),
        compression_ratio: decimal(s.compression_ratio),
        no_speech_prob: decimal(s.no_speech_prob),
        temperature: decimal(s.temperature),
        words: s.words.as_ref().map(|words| {
            words
                .iter()
                .map(|w| Word {
                    word: w.word.clone(),
                    start: decimal(w.start),
                    end: decimal(w.end),
                    probability: decimal(w.probability),
                })
                .collect()
        }),
    }
}

fn transcription_to_js(t: Transcription) -> TranscriptionJs {
    let timings = &t.timings;
    TranscriptionJs {
        segments: t.segments.iter().map(segment_to_js).collect(),
        timings: TranscriptionTimings {
            decode_audio_ms: timings.decode_audio_ms,
            mel_ms: timings.mel_ms,
            encode_ms: timings.encode_ms,
            decode_ms: timings.decode_ms,
            word_timestamps_ms: timings.word_timestamps_ms,
            total_ms: timings.total_ms,
            real_time_factor: timings.real_time_factor,
        },
        language_probability: decimal(t.language_probability),
        duration: decimal(t.duration),
        language: t.language,
        text: t.text,
    }
}

fn transcription_from_js(t: TranscriptionJs) -> Transcription {
    let timings = t.timings;
    Transcription {
        text: t.text,
        language: t.language,
        language_probability: t.language_probability as f32,
        duration: t.duration as f32,
        segments: t
            .segments
            .into_iter()
            .map(|s| CoreSegment {
                id: s.id as usize,
                seek: s.seek as usize,
                start: s.start as f32,
                end: s.end as f32,
                text: s.text,
                tokens: s.tokens,
                avg_logprob: s.avg_logprob as f32,
                compression_ratio: s.compression_ratio as f32,
                no_speech_prob: s.no_speech_prob as f32,
                temperature: s.temperature as f32,
                words: s.words.map(|words| {
                    words
                        .into_iter()
                        .map(|w| CoreWord {
                            word: w.word,
                            start: w.start as f32,
                            end: w.end as f32,
                            probability: w.probability as f32,
                        })
                        .collect()
                }),
            })
            .collect(),
        timings: Timings {
            decode_audio_ms: timings.decode_audio_ms,
            mel_ms: timings.mel_ms,
            encode_ms: timings.encode_ms,
            decode_ms: timings.decode_ms,
            word_timestamps_ms: timings.word_timestamps_ms,
            total_ms: timings.total_ms,
            real_time_factor: timings.real_time_factor,
        },
    }
}

// ------------------------------------------------------- option conversion

/// The audio argument, owned so it can move to the model thread. PCM needs
/// `sampleRate` from the options, so it is completed in `audio_input`.
enum AudioArg {
    Path(String),
    Encoded(Vec<u8>),
    Pcm(Vec<f32>),
}

fn audio_arg(env: &Env, audio: Unknown) -> Result<AudioArg, CoreError> {
    let converted = unsafe {
        Either3::<String, Float32Array, Uint8Array>::from_napi_value(env.raw(), audio.raw())
    };
    match converted {
        Ok(Either3::A(path)) => Ok(AudioArg::Path(path)),
        Ok(Either3::B(pcm)) => Ok(AudioArg::Pcm(pcm.to_vec())),
        Ok(Either3::C(bytes)) => Ok(AudioArg::Encoded(bytes.to_vec())),
        Err(_) => Err(crate::options::type_error(
            "audio",
            "a file path (string), an encoded file (Buffer or Uint8Array) or mono PCM \
             (Float32Array)",
            &audio,
        )),
    }
}

fn audio_input(arg: AudioArg, sample_rate: Option<f64>) -> Result<AudioInput, CoreError> {
    Ok(match arg {
        AudioArg::Path(path) if path.is_empty() => {
            return Err(CoreError::invalid("the audio path is empty"))
        }
        AudioArg::Path(path) => AudioInput::File(path.into()),
        AudioArg::Encoded(bytes) => AudioInput::Encoded(bytes),
        AudioArg::Pcm(samples) => {
            let rate = whole("sampleRate", sample_rate, 1000.0, 1_000_000.0)?.ok_or_else(|| {
                CoreError::invalid("sampleRate is required with Float32Array PCM input")
            })?;
            AudioInput::Pcm {
                samples,
                sample_rate: rate as u32,
            }
        }
    })
}

/// Type-checked JS options → core options (+ the callbacks).
struct Parsed {
    options: TranscribeOptions,
    sample_rate: Option<f64>,
    on_progress: Option<TranscribeProgressCallback>,
    on_segment: Option<SegmentCallback>,
}

fn transcribe_options(o: Option<TranscribeOptionsJs>) -> Result<Parsed, CoreError> {
    let mut out = TranscribeOptions::default();
    let Some(o) = o else {
        return Ok(Parsed {
            options: out,
            sample_rate: None,
            on_progress: None,
            on_segment: None,
        });
    };
    out.language = match o.language.as_deref() {
        None | Some("auto") => None,
        Some("") => return Err(CoreError::invalid("language must not be empty")),
        Some(name) => Some(name.to_string()),
    };
    out.task = match o.task.as_deref() {
        None | Some("transcribe") => Task::Transcribe,
        Some("translate") => Task::Translate,
        Some(other) => {
            return Err(CoreError::invalid(format!(
                "task must be 'transcribe' or 'translate', got {other:?}"
            )))
        }
    };
    if let Some(t) = o.temperature {
        let list = match t {
            Either::A(one) => vec![one],
            Either::B(many) => many,
        };
        out.temperatures = list
            .into_iter()
            .map(|t| match finite("temperature", Some(t))? {
                Some(t) if t >= 0.0 => Ok(t),
                _ => Err(CoreError::invalid(format!(
                    "temperature must be ≥ 0, got {t}"
                ))),
            })
            .collect::<Result<_, _>>()?;
    }
    let batch_from_preset = match o.preset.as_deref() {
        None => None,
        Some("lowMemory") => Some(1),
        Some("balanced") => Some(8),
        Some("maxSpeed") => Some(16),
        Some(other) => {
            return Err(CoreError::invalid(format!(
                "preset must be 'lowMemory', 'balanced' or 'maxSpeed', got {other:?}"
            )))
        }
    };
    out.batch_size = whole("batchSize", o.batch_size, 1.0, 256.0)?
        .map(|n| n as usize)
        .or(batch_from_preset)
        .unwrap_or(out.batch_size);
    if let Some(n) = whole("beamSize", o.beam_size, 1.0, 32.0)? {
        out.beam_size = n as usize;
    }
    if let Some(n) = whole("bestOf", o.best_of, 1.0, 32.0)? {
        out.best_of = n as usize;
    }
    if let Some(p) = finite("patience", o.patience)? {
        out.patience = p;
    }
    if let Some(t) = finite("promptResetOnTemperature", o.prompt_reset_on_temperature)? {
        out.prompt_reset_on_temperature = t;
    }
    out.condition_on_previous_text = o
        .condition_on_previous_text
        .unwrap_or(out.condition_on_previous_text);
    out.initial_prompt = o.initial_prompt;
    // A number sets a threshold, `null` turns it off, undefined keeps the default.
    let threshold = |name: &str, value: Option<Either<f64, Null>>, default: Option<f32>| {
        Ok::<_, CoreError>(match value {
            None => default,
            Some(Either::B(Null)) => None,
            Some(Either::A(v)) => finite(name, Some(v))?,
        })
    };
    out.compression_ratio_threshold = threshold(
        "compressionRatioThreshold",
        o.compression_ratio_threshold,
        out.compression_ratio_threshold,
    )?;
    out.logprob_threshold = threshold(
        "logprobThreshold",
        o.logprob_threshold,
        out.logprob_threshold,
    )?;
    out.no_speech_threshold = threshold(
        "noSpeechThreshold",
        o.no_speech_threshold,
        out.no_speech_threshold,
    )?;
    out.max_initial_timestamp = threshold(
        "maxInitialTimestamp",
        o.max_initial_timestamp,
        out.max_initial_timestamp,
    )?;
    if out.max_initial_timestamp.is_some_and(|t| t < 0.0) {
        return Err(CoreError::invalid("maxInitialTimestamp must be ≥ 0"));
    }
    out.timestamps = o.timestamps.unwrap_or(out.timestamps);
    out.word_timestamps = o.word_timestamps.unwrap_or(out.word_timestamps);
    out.sample_len = whole("sampleLen", o.sample_len, 1.0, 448.0)?.map(|n| n as usize);
    out.suppress_blank = o.suppress_blank.unwrap_or(out.suppress_blank);
    if let Some(ids) = o.suppress_tokens {
        out.suppress_tokens = Some(
            ids.into_iter()
                .map(|id| whole("suppressTokens[]", Some(id), 0.0, f64::from(u32::MAX)))
                .map(|r| r.map(|id| id.unwrap_or_default() as u32))
                .collect::<Result<_, _>>()?,
        );
    }
    out.seed = whole("seed", o.seed, 0.0, 9_007_199_254_740_991.0)?;
    out.vad = vad_options(o.vad)?;
    Ok(Parsed {
        options: out,
        sample_rate: o.sample_rate,
        on_progress: o.on_progress,
        on_segment: o.on_segment,
    })
}

impl KindLoadOptions for LoadWhisperOptions {
    /// `tokenizerDir`.
    type Own = Option<String>;
    const FIELDS: &'static [(&'static str, Kind)] = &[("tokenizerDir", Kind::String)];
    fn split(self) -> (load::CommonLoadJs, Option<String>) {
        let common = load::CommonLoadJs {
            dtype: self.dtype,
            quantize: self.quantize,
            on_progress: self.on_progress,
            revision: self.revision,
            hub: self.hub,
        };
        (common, self.tokenizer_dir)
    }
}

/// The fields of `TranscribeOptions` with their JS types (a new option must be
/// listed here: unknown names are rejected).
const TRANSCRIBE_FIELDS: &[(&str, Kind)] = &[
    ("language", Kind::String),
    ("task", Kind::String),
    ("temperature", Kind::NumberOrNumbers),
    ("beamSize", Kind::Number),
    ("bestOf", Kind::Number),
    ("patience", Kind::Number),
    ("batchSize", Kind::Number),
    ("preset", Kind::String),
    ("conditionOnPreviousText", Kind::Boolean),
    ("promptResetOnTemperature", Kind::Number),
    ("initialPrompt", Kind::String),
    ("compressionRatioThreshold", Kind::NumberOrNull),
    ("logprobThreshold", Kind::NumberOrNull),
    ("noSpeechThreshold", Kind::NumberOrNull),
    ("timestamps", Kind::Boolean),
    ("wordTimestamps", Kind::Boolean),
    ("maxInitialTimestamp", Kind::NumberOrNull),
    ("sampleLen", Kind::Number),
    ("suppressTokens", Kind::Numbers),
    ("suppressBlank", Kind::Boolean),
    ("seed", Kind::Number),
    ("sampleRate", Kind::Number),
    ("vad", Kind::BooleanOrObject),
    ("signal", Kind::Signal),
    ("onProgress", Kind::Function),
    ("onSegment", Kind::Function),
];

/// `vad: { … }`'s fields.
const VAD_FIELDS: &[(&str, Kind)] = &[
    ("threshold", Kind::Number),
    ("negThreshold", Kind::Number),
    ("minSpeechMs", Kind::Number),
    ("minSilenceMs", Kind::Number),
    ("speechPadMs", Kind::Number),
    ("maxSpeechS", Kind::Number),
];

const DETECT_FIELDS: &[(&str, Kind)] = &[("sampleRate", Kind::Number), ("signal", Kind::Signal)];
/// `warmup(options)`'s fields.
const WARMUP_FIELDS: &[(&str, Kind)] = &[("batchSize", Kind::Number)];

/// Checks `options.vad`'s field names and types when it is an object.
fn check_vad(options: &Option<Object>) -> Result<(), CoreError> {
    let Some(o) = options else { return Ok(()) };
    let vad: Option<Unknown> = o
        .get_named_property("vad")
        .map_err(|e| CoreError::invalid(format!("options.vad: {}", e.reason)))?;
    match vad {
        Some(v) if v.get_type().ok() == Some(napi::ValueType::Object) => {
            check_options("options.vad", Some(v), VAD_FIELDS).map(|_| ())
        }
        _ => Ok(()),
    }
}

/// Reads the raw options object: JS types first (`TypeError`s naming the
/// option), the signal, then the typed fields (ranges by the core).
fn read_options(
    env: &Env,
    options: Option<Unknown>,
) -> napi::Result<(Result<Parsed, CoreError>, AbortWatch)> {
    let options = match check_options("options", options, TRANSCRIBE_FIELDS) {
        Ok(o) => o,
        Err(e) => return Ok((Err(e), AbortWatch::new(env, None)?)),
    };
    let watch = abort_watch(env, &options)?;
    if let Err(e) = check_vad(&options) {
        return Ok((Err(e), watch));
    }
    let parsed = match typed::<TranscribeOptionsJs>(env, &options) {
        Ok(o) => transcribe_options(o),
        Err(e) => Err(CoreError::invalid(format!(
            "invalid transcribe options: {}",
            e.reason
        ))),
    };
    Ok((parsed, watch))
}

// ------------------------------------------------------------ JS callbacks

/// Runs JS callbacks from the model thread and waits for each, keeping the
/// first exception one throws (which also stops the transcription).
struct Callbacks {
    on_progress: Option<TranscribeProgressCallback>,
    on_segment: Option<SegmentCallback>,
    thrown: Mutex<Option<napi::Error>>,
    stop: Arc<AtomicBool>,
}

impl Callbacks {
    fn call<T>(&self, callback: &ThreadsafeFunction<T, (), T, Status, false>, value: T)
    where
        T: napi::bindgen_prelude::ToNapiValue + 'static,
    {
        if self.thrown.lock().unwrap().is_some() {
            return;
        }
        let error = crate::callback::call_and_wait(callback, value);
        if let Some(error) = error {
            *self.thrown.lock().unwrap() = Some(error);
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    fn progress(&self, p: Progress) {
        if let Some(cb) = &self.on_progress {
            self.call(
                cb,
                TranscribeProgress {
                    seconds_done: decimal(p.processed_seconds),
                    seconds_total: decimal(p.total_seconds),
                },
            );
        }
    }

    fn segment(&self, s: &CoreSegment) {
        if let Some(cb) = &self.on_segment {
            self.call(cb, segment_to_js(s));
        }
    }
}

/// How a transcription ended: the core's result, or a callback's exception.
enum Outcome {
    Done(Box<Transcription>),
    CallbackThrew(napi::Error),
}

fn run_transcription(
    engine: &WhisperEngine,
    input: AudioInput,
    options: &TranscribeOptions,
    abort: Arc<AtomicBool>,
    callbacks: Callbacks,
) -> Result<Outcome, CoreError> {
    let mut on_progress = |p: Progress| callbacks.progress(p);
    let mut on_segment = |s: &CoreSegment| callbacks.segment(s);
    let hooks = TranscribeHooks {
        abort: Some(abort.clone()),
        on_progress: callbacks
            .on_progress
            .is_some()
            .then_some(&mut on_progress as &mut dyn FnMut(Progress)),
        on_segment: callbacks
            .on_segment
            .is_some()
            .then_some(&mut on_segment as &mut dyn FnMut(&CoreSegment)),
    };
    let result = engine.transcribe(input, options, hooks);
    // The callbacks (thread-safe functions) are released here, on settling.
    let thrown = callbacks.thrown.lock().unwrap().take();
    match thrown {
        Some(error) => Ok(Outcome::CallbackThrew(error)),
        // An abort raised in the last callback (after the core's last check)
        // still rejects: a signal that fired never yields a result.
        None if abort.load(Ordering::SeqCst) => Err(CoreError::Aborted),
        None => result.map(|t| Outcome::Done(Box::new(t))),
    }
}

// -------------------------------------------------------------- loadWhisper

struct Loaded {
    n_mels: u32,
    multilingual: bool,
    languages: Vec<String>,
    dtype: String,
    vocab_size: u32,
}

/// Loads a Whisper model folder, or a Hugging Face repo id (from the local
/// cache, downloaded into it when missing), on a new model thread. Resolves
/// with a `Whisper`.
#[napi(
    js_name = "loadWhisper",
    ts_args_type = "source: string, options?: LoadWhisperOptions",
    ts_return_type = "Promise<Whisper>"
)]
pub fn load_whisper<'env>(
    env: &'env Env,
    source: Unknown,
    options: Option<Unknown>,
) -> napi::Result<Object<'env>> {
    let slot: WorkerSlot<WhisperEngine> = Arc::new(Mutex::new(None));
    let js_slot = slot.clone();
    let (mut settler, promise) = Settler::new(
        env,
        move |_env, (loaded, thrown): (Loaded, Option<napi::Error>)| {
            if let Some(thrown) = thrown {
                // onProgress threw: the load fails with its exception and the
                // model thread ends (closing the queue drops the model).
                js_slot.lock().unwrap().take();
                return Err(thrown);
            }
            Ok(JsWhisper {
                worker: js_slot,
                info: loaded,
            })
        },
    )?;
    let request = load::request::<LoadWhisperOptions, _, _>(env, &mut settler, &source, options);
    let Some((request, settler)) = settler.ok_or_settle(request) else {
        return Ok(promise);
    };
    let load = move || {
        let reporter = load::Reporter::new(request.progress);
        let engine = WhisperEngine::load(
            &request.source,
            whisper::LoadOptions {
                dtype: request.dtype,
                quantize: request.quantize,
                tokenizer_dir: request.own.map(Into::into),
                progress: Some(&mut |p| reporter.report(p)),
                hub: request.hub,
                abort: Some(request.abort),
            },
        )?;
        let config = engine.model().config();
        let tokenizer = engine.tokenizer();
        let loaded = Loaded {
            n_mels: config.n_mels as u32,
            multilingual: tokenizer.is_multilingual(),
            languages: tokenizer
                .languages()
                .iter()
                .map(|(code, _)| code.to_string())
                .collect(),
            dtype: format!("{:?}", engine.model().dtype()).to_lowercase(),
            vocab_size: config.n_vocab as u32,
        };
        Ok((engine, (loaded, reporter.thrown())))
    };
    worker::start_model("mlx-napi-whisper", &slot, settler, load).map_err(|e| throw(env, e))?;
    Ok(promise)
}

// ------------------------------------------------------------------ Whisper

/// A loaded Whisper model. Calls are queued on the model's own thread.
#[napi(js_name = "Whisper")]
pub struct JsWhisper {
    worker: WorkerSlot<WhisperEngine>,
    info: Loaded,
}

#[napi]
impl JsWhisper {
    /// Mel bins the model reads (80, or 128 for large-v3 models).
    #[napi(getter)]
    pub fn n_mels(&self) -> u32 {
        self.info.n_mels
    }

    /// Whether the model knows several languages (false for `.en` models).
    #[napi(getter)]
    pub fn multilingual(&self) -> bool {
        self.info.multilingual
    }

    /// Language codes the model knows (empty for `.en` models).
    #[napi(getter)]
    pub fn languages(&self) -> Vec<String> {
        self.info.languages.clone()
    }

    /// The compute dtype the weights were loaded in.
    #[napi(getter)]
    pub fn dtype(&self) -> String {
        self.info.dtype.clone()
    }

    #[napi(getter)]
    pub fn vocab_size(&self) -> u32 {
        self.info.vocab_size
    }

    /// Transcribes a file path, an encoded file in memory (Buffer/Uint8Array:
    /// WAV, FLAC, MP3, Ogg Vorbis/Opus, M4A, WebM…) or mono PCM (Float32Array
    /// with `sampleRate`).
    #[napi(ts_return_type = "Promise<Transcription>")]
    pub fn transcribe<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string | Uint8Array | Float32Array")] audio: Unknown,
        #[napi(ts_arg_type = "TranscribeOptions")] options: Option<Unknown>,
    ) -> napi::Result<Object<'env>> {
        let (parsed, mut watch) = read_options(env, options)?;
        let (mut settler, promise) = Settler::new(env, |_env, outcome: Outcome| match outcome {
            Outcome::Done(t) => Ok(transcription_to_js(*t)),
            Outcome::CallbackThrew(error) => Err(error),
        })?;
        let abort = watch.flag();
        let aborted = watch.aborted();
        let hooks = watch.hooks();
        settler.on_settle(move |env| watch.release(env));
        let prepared = (|| {
            let parsed = parsed?;
            let input = audio_input(audio_arg(env, audio)?, parsed.sample_rate)?;
            if aborted {
                return Err(CoreError::Aborted);
            }
            Ok((parsed, input))
        })();
        let Some(((parsed, input), settler)) = settler.ok_or_settle(prepared) else {
            return Ok(promise);
        };
        let callbacks = Callbacks {
            on_progress: parsed.on_progress,
            on_segment: parsed.on_segment,
            thrown: Mutex::new(None),
            stop: abort.clone(),
        };
        let options = parsed.options;
        submit_abortable(&self.worker, settler, Some(&hooks), move |engine| {
            run_transcription(engine, input, &options, abort, callbacks)
        });
        Ok(promise)
    }

    /// Spoken-language probabilities of the first 30 s, most likely first.
    /// Needs a multilingual model (`.en` models reject with ERR_INVALID_ARG).
    #[napi(ts_return_type = "Promise<LanguageProbability[]>")]
    pub fn detect_language<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string | Uint8Array | Float32Array")] audio: Unknown,
        #[napi(ts_arg_type = "{ sampleRate?: number, signal?: AbortSignal }")] options: Option<
            Unknown,
        >,
    ) -> napi::Result<Object<'env>> {
        let (options, checked) = match check_options("options", options, DETECT_FIELDS) {
            Ok(o) => (o, Ok(())),
            Err(e) => (None, Err(e)),
        };
        let mut watch = abort_watch(env, &options)?;
        let (mut settler, promise) =
            Settler::new(env, |_env, ranked: Vec<(&'static str, f32)>| {
                Ok(ranked
                    .into_iter()
                    .map(|(code, p)| LanguageProbability {
                        language: code.to_string(),
                        probability: decimal(p),
                    })
                    .collect::<Vec<_>>())
            })?;
        let (abort, aborted, hooks) = (watch.flag(), watch.aborted(), watch.hooks());
        settler.on_settle(move |env| watch.release(env));
        let prepared = (|| {
            checked?;
            let sample_rate = match &options {
                Some(o) => o
                    .get_named_property::<Option<f64>>("sampleRate")
                    .map_err(|_| CoreError::invalid("sampleRate must be a number"))?,
                None => None,
            };
            let input = audio_input(audio_arg(env, audio)?, sample_rate)?;
            if aborted {
                return Err(CoreError::Aborted);
            }
            Ok(input)
        })();
        match prepared {
            Ok(input) => submit_abortable(&self.worker, settler, Some(&hooks), move |engine| {
                // Queued calls ahead of this one may have taken a while.
                if abort.load(Ordering::SeqCst) {
                    return Err(CoreError::Aborted);
                }
                engine.detect_language(input)
            }),
            Err(e) => settler.settle(Err(e)),
        }
        Ok(promise)
    }

    /// Readies the model for transcriptions: MLX compiles its GPU kernels on
    /// first use (seconds on CUDA), and the first batch of a shape allocates
    /// its buffers. Transcribes a quiet tone: one second at batch 1,
    /// `batchSize` × 30 s otherwise (filling every row of the batch).
    /// Resolves with the time it took in ms.
    ///
    /// `options.batchSize`: the batch size the transcriptions will use
    /// (default: the backend's default `batchSize`, 8 on a GPU and 1 on the CPU).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn warmup<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "{ batchSize?: number }")] options: Option<Unknown>,
    ) -> napi::Result<Object<'env>> {
        let (settler, promise) = Settler::new(env, |_env, ms: f64| Ok(ms))?;
        let batch_size = (|| {
            let options = check_options("options", options, WARMUP_FIELDS)?;
            let batch = match &options {
                Some(o) => o
                    .get_named_property::<Option<f64>>("batchSize")
                    .map_err(|_| CoreError::invalid("batchSize must be a number"))?,
                None => None,
            };
            Ok(whole("batchSize", batch, 1.0, 256.0)?
                .map_or_else(default_batch_size, |b| b as usize))
        })();
        match batch_size {
            Ok(batch_size) => submit(&self.worker, settler, move |engine| {
                engine.warmup(batch_size)
            }),
            Err(e) => settler.settle(Err(e)),
        }
        Ok(promise)
    }

    /// Frees the model once the running call (if any) ends; queued calls and
    /// later calls reject with
    /// `ERR_DISPOSED`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn dispose<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let (settler, promise) = Settler::new(env, |_env, ()| Ok(()))?;
        worker::dispose(&self.worker, settler, |_: &mut WhisperEngine| {});
        Ok(promise)
    }
}

// --------------------------------------------------------------- formatters

/// The cues of a segment list: one per segment, or one per word with
/// `wordLevel` (an error when a segment has no `words`).
fn cues<'a>(
    source: &'a SubtitleSource,
    options: Option<&SubtitleOptions>,
) -> Result<Vec<Cue<'a>>, CoreError> {
    if !options.and_then(|o| o.word_level).unwrap_or(false) {
        return Ok(source
            .segments
            .iter()
            .map(|s| Cue {
                start: s.start,
                end: s.end,
                text: &s.text,
            })
            .collect());
    }
    let mut cues = Vec::new();
    for (i, segment) in source.segments.iter().enumerate() {
        let words = segment.words.as_ref().ok_or_else(|| {
            CoreError::invalid(format!(
                "wordLevel needs word timings, but segments[{i}] has no `words`: transcribe \
                 with wordTimestamps: true"
            ))
        })?;
        cues.extend(words.iter().map(|w| Cue {
            start: w.start,
            end: w.end,
            text: &w.word,
        }));
    }
    Ok(cues)
}

/// SubRip subtitles (`HH:MM:SS,mmm`) of a transcription's segments (or words).
#[napi(js_name = "toSRT")]
pub fn to_srt(
    env: Env,
    #[napi(
        ts_arg_type = "Pick<Transcription, 'segments'> | { segments: { start: number, end: number, text: string, words?: { start: number, end: number, word: string }[] }[] }"
    )]
    transcription: SubtitleSource,
    options: Option<SubtitleOptions>,
) -> napi::Result<String> {
    let cues = cues(&transcription, options.as_ref()).map_err(|e| throw(&env, e))?;
    Ok(subtitles::to_srt(&cues))
}

/// WebVTT subtitles (`HH:MM:SS.mmm`) of a transcription's segments (or words).
#[napi(js_name = "toVTT")]
pub fn to_vtt(
    env: Env,
    #[napi(
        ts_arg_type = "Pick<Transcription, 'segments'> | { segments: { start: number, end: number, text: string, words?: { start: number, end: number, word: string }[] }[] }"
    )]
    transcription: SubtitleSource,
    options: Option<SubtitleOptions>,
) -> napi::Result<String> {
    let cues = cues(&transcription, options.as_ref()).map_err(|e| throw(&env, e))?;
    Ok(subtitles::to_vtt(&cues))
}

/// The transcription as pretty-printed JSON (the same field names).
#[napi(js_name = "toJSON")]
pub fn to_json(transcription: TranscriptionJs) -> String {
    subtitles::to_json(&transcription_from_js(transcription))
}
