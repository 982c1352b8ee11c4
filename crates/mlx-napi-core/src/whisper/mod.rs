//! Whisper speech-to-text on MLX.
//!
//! * [`WhisperEngine`]: a loaded model (network, tokenizer, mel front end) and
//!   [`WhisperEngine::transcribe`] for files, encoded buffers or PCM.
//! * [`mel`]: log-mel spectrogram on the device; [`model`]: the network
//!   ([`config`] + [`weights`] read either checkpoint layout);
//!   [`tokenizer`]: special, language and timestamp tokens;
//!   [`logit_filters`] + [`decode`] / [`beam`]: batched greedy, sampled or
//!   beam-search decoding with Whisper's token rules;
//!   [`transcribe`]: long-form windows, segments and temperature fallback;
//!   [`subtitles`]: SRT / WebVTT / JSON renderings of a transcription;
//!   [`vad_filter`]: `TranscribeOptions::vad` (speech-only audio, times mapped back).
//!   [`alignment`]: word timestamps (cross-attention + DTW).

pub mod alignment;
pub mod beam;
pub mod config;
pub mod decode;
pub mod logit_filters;
pub mod mel;
pub mod model;
pub mod subtitles;
pub mod tokenizer;
pub mod transcribe;
pub mod vad_filter;
pub mod weights;
pub mod windows;

use std::{
    path::{Path, PathBuf},
    sync::{atomic::AtomicBool, Arc},
    time::Instant,
};

pub use alignment::Word;
pub use config::WhisperConfig;
pub use tokenizer::Task;
pub use transcribe::{
    default_batch_size, Progress, Segment, Timings, TranscribeHooks, TranscribeOptions,
    Transcription,
};

use crate::{
    audio::{self, AudioInput},
    loading::{hub::HubOptions, resolve_model_source, DtypeChoice, LoadProgress, QuantSpec},
    Error, Result,
};
use mel::{LogMel, SAMPLE_RATE};
use model::Whisper;
use tokenizer::WhisperTokenizer;

/// How to load a Whisper model.
#[derive(Default)]
pub struct LoadOptions<'a> {
    /// Compute dtype; `Auto` = float32 on the CPU, the checkpoint's on a GPU.
    pub dtype: DtypeChoice,
    /// Quantize dense linear/embedding weights at load (affine); layers whose
    /// width is not a multiple of the group size stay dense.
    pub quantize: Option<QuantSpec>,
    /// Folder holding `tokenizer.json` when the model folder has none (MLX
    /// community checkpoints ship without one).
    pub tokenizer_dir: Option<PathBuf>,
    /// Called as files are downloaded (repo ids), weight files are read and
    /// the model is built.
    pub progress: Option<&'a mut dyn FnMut(&LoadProgress)>,
    /// Revision, endpoint, token, cache and offline mode for repo ids.
    pub hub: HubOptions,
    /// Stops a download of a repo id's files.
    pub abort: Option<Arc<AtomicBool>>,
}

/// A loaded Whisper model, ready to transcribe.
pub struct WhisperEngine {
    model: Whisper,
    tokenizer: WhisperTokenizer,
    log_mel: LogMel,
}

impl WhisperEngine {
    /// Loads from a local folder or a Hugging Face repo id (taken from the
    /// local cache, downloaded into it when missing).
    pub fn load(source: &str, mut options: LoadOptions) -> Result<Self> {
        let dir = resolve_model_source(
            source,
            &options.hub,
            options.abort.as_deref(),
            options
                .progress
                .as_mut()
                .map(|p| &mut **p as &mut dyn FnMut(&LoadProgress)),
        )?;
        if let Some(abort) = &options.abort {
            if abort.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::Aborted);
            }
        }
        Self::load_dir(&dir, options)
    }

    pub fn load_dir(dir: &Path, options: LoadOptions) -> Result<Self> {
        crate::runtime::init();
        let LoadOptions {
            dtype,
            quantize,
            tokenizer_dir,
            progress,
            ..
        } = options;
        let quantize = quantize.map(QuantSpec::validate).transpose()?;
        let mut report = LoadProgress::reporter(progress);
        let checkpoint = weights::load_checkpoint(dir, dtype, quantize, |done, total| {
            report("weights", done, total)
        })?;
        let tokenizer_dir = tokenizer_dir.as_deref().unwrap_or(dir);
        if !tokenizer_dir.join("tokenizer.json").exists() {
            return Err(Error::ModelNotFound(format!(
                "no tokenizer.json in {}: pass the tokenizerDir option (e.g. the matching \
                 openai/whisper-* folder)",
                tokenizer_dir.display()
            )));
        }
        let tokenizer = WhisperTokenizer::load(tokenizer_dir, checkpoint.config.num_languages())?;
        let special = tokenizer.special();
        if special.timestamp_begin as usize >= checkpoint.config.n_vocab {
            return Err(Error::format(format!(
                "tokenizer's first timestamp id {} is outside the model's {} logits",
                special.timestamp_begin, checkpoint.config.n_vocab
            )));
        }
        let log_mel = LogMel::new(checkpoint.config.n_mels)?;
        let model = Whisper::from_weights(checkpoint.config, checkpoint.tree, checkpoint.dtype)?;
        crate::runtime::guard_exit_again();
        Ok(WhisperEngine {
            model,
            tokenizer,
            log_mel,
        })
    }

    pub fn model(&self) -> &Whisper {
        &self.model
    }

    pub fn tokenizer(&self) -> &WhisperTokenizer {
        &self.tokenizer
    }

    pub fn log_mel(&self) -> &LogMel {
        &self.log_mel
    }

    /// Spoken-language probabilities of the first 30 s of `input`, most likely
    /// first, as `(code, probability)`. Needs a multilingual model.
    pub fn detect_language(&self, input: AudioInput) -> Result<Vec<(&'static str, f32)>> {
        let languages = self.tokenizer.languages();
        if languages.is_empty() {
            return Err(Error::invalid(
                "language detection needs a multilingual model",
            ));
        }
        let samples = audio::load_mono(input, SAMPLE_RATE)?;
        if samples.is_empty() {
            return Err(Error::AudioDecode("the audio has no samples".into()));
        }
        let mel = self.log_mel.compute(&samples, mel::CHUNK_SAMPLES)?;
        let window = mel::window_frames(&mel, 0, samples.len() / mel::HOP_LENGTH)?;
        let features = self.model.encode(&window.expand_dims(0)?)?;
        let (_, probs) =
            decode::detect_language(&self.model, self.tokenizer.special(), languages, &features)?
                .remove(0);
        let mut ranked: Vec<(&'static str, f32)> =
            languages.iter().map(|&(code, _)| code).zip(probs).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(ranked)
    }

    /// Decodes, resamples to 16 kHz mono and transcribes `input`.
    pub fn transcribe(
        &self,
        input: AudioInput,
        options: &TranscribeOptions,
        hooks: TranscribeHooks,
    ) -> Result<Transcription> {
        let start = Instant::now();
        let samples = audio::load_mono(input, SAMPLE_RATE)?;
        let decode_audio_ms = start.elapsed().as_secs_f64() * 1e3;
        if samples.is_empty() {
            return Err(Error::AudioDecode("the audio has no samples".into()));
        }
        // VAD (when options.vad is set) wraps the usual transcription.
        let result = self.transcribe_speech(&samples, options, hooks);
        crate::runtime::guard_exit_again();
        let mut result = result?;
        let timings = &mut result.timings;
        timings.decode_audio_ms = decode_audio_ms;
        timings.total_ms += decode_audio_ms;
        timings.real_time_factor = if result.duration > 0.0 {
            timings.total_ms / 1e3 / f64::from(result.duration)
        } else {
            0.0
        };
        Ok(result)
    }
}
