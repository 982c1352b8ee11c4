//! `TranscribeOptions::vad`: transcribe only the speech that Silero VAD finds.
//!
//! The speech ranges are cut out and concatenated, the result is transcribed
//! as usual (either schedule), and every segment's times — and the progress
//! events — are mapped back to the original audio's timeline
//! ([`SpeechTimeline`]). Audio without speech gives no segments and costs no
//! Whisper pass at all. `duration` stays the original's.

use std::{sync::atomic::Ordering, time::Instant};

use super::{
    mel::SAMPLE_RATE, Progress, Segment, TranscribeHooks, TranscribeOptions, Transcription,
    WhisperEngine,
};
use crate::{
    vad::{speech_segments_checked, SpeechTimeline},
    Error, Result,
};

/// 100 mel frames per second (`Segment::seek` is in frames).
const FRAMES_PER_SECOND: f32 = 100.0;

/// `segment`'s times (and window start) on the original timeline.
pub fn restore_segment_times(timeline: &SpeechTimeline, segment: &mut Segment) {
    segment.start = timeline.original_time(segment.start, false);
    segment.end = timeline.original_time(segment.end, true).max(segment.start);
    for word in segment.words.iter_mut().flatten() {
        word.start = timeline.original_time(word.start, false);
        word.end = timeline.original_time(word.end, true).max(word.start);
    }
    let seek_seconds = segment.seek as f32 / FRAMES_PER_SECOND;
    segment.seek =
        (timeline.original_time(seek_seconds, false) * FRAMES_PER_SECOND).round() as usize;
}

impl WhisperEngine {
    /// [`WhisperEngine::transcribe_samples`], with `options.vad` applied first
    /// when it is set.
    pub fn transcribe_speech(
        &self,
        samples: &[f32],
        options: &TranscribeOptions,
        hooks: TranscribeHooks,
    ) -> Result<Transcription> {
        let Some(vad) = &options.vad else {
            return self.transcribe_samples(samples, options, hooks);
        };
        options.validate()?;
        let started = Instant::now();
        let duration = samples.len() as f32 / SAMPLE_RATE as f32;
        let TranscribeHooks {
            abort,
            mut on_progress,
            mut on_segment,
        } = hooks;
        let aborted = || {
            if abort.as_ref().is_some_and(|a| a.load(Ordering::Relaxed)) {
                Err(Error::Aborted)
            } else {
                Ok(())
            }
        };
        let ranges = speech_segments_checked(samples, vad, aborted)?;
        let vad_ms = started.elapsed().as_secs_f64() * 1e3;

        if ranges.is_empty() {
            let (language, language_probability) = self.language_without_speech(options)?;
            if let Some(report) = on_progress.as_mut() {
                report(Progress {
                    processed_seconds: duration,
                    total_seconds: duration,
                });
            }
            let mut result = Transcription {
                text: String::new(),
                language,
                language_probability,
                duration,
                segments: Vec::new(),
                timings: Default::default(),
            };
            result.timings.total_ms = vad_ms;
            return Ok(result);
        }

        let timeline = SpeechTimeline::new(&ranges);
        let speech = SpeechTimeline::concatenate(samples, &ranges);
        let mut report_segment = |segment: &Segment| {
            if let Some(report) = on_segment.as_mut() {
                let mut restored = segment.clone();
                restore_segment_times(&timeline, &mut restored);
                report(&restored);
            }
        };
        let mut report_progress = |p: Progress| {
            if let Some(report) = on_progress.as_mut() {
                report(Progress {
                    processed_seconds: timeline
                        .original_time(p.processed_seconds, true)
                        .min(duration),
                    total_seconds: duration,
                });
            }
        };
        let inner = TranscribeOptions {
            vad: None,
            ..options.clone()
        };
        let mut result = self.transcribe_samples(
            &speech,
            &inner,
            TranscribeHooks {
                abort,
                on_progress: Some(&mut report_progress),
                on_segment: Some(&mut report_segment),
            },
        )?;
        for segment in &mut result.segments {
            restore_segment_times(&timeline, segment);
        }
        result.duration = duration;
        result.timings.total_ms += vad_ms;
        Ok(result)
    }

    /// The language reported when no speech was found: the requested one, or
    /// English (`.en` models, or detection skipped: probability 0).
    fn language_without_speech(&self, options: &TranscribeOptions) -> Result<(String, f32)> {
        let tokenizer = self.tokenizer();
        if !tokenizer.is_multilingual() {
            return Ok(("en".into(), 1.0));
        }
        match &options.language {
            Some(name) => {
                let token = tokenizer.language_token(name)?;
                Ok((tokenizer.language_code(token).unwrap_or("en").into(), 1.0))
            }
            None => Ok(("en".into(), 0.0)),
        }
    }
}
