//! Long-form quality of the batched schedule (issue: batched Whisper lost
//! words at window edges: one run of 4–20 words per 30 s cut). On > 3 minutes
//! of speech (tests/common/longform.rs) whisper tiny.en's batched
//! transcription must lose no run of words (its longest run of deleted
//! reference words is no longer than the sequential loop's, nor than 5) and
//! its word error rate must stay within 1.5 points of the sequential loop's.
//! Why 1.5 and not the 0.5: on this 559-word set tiny.en's
//! recognition of the synthetic voices moves by about ±1 point between
//! schedules that lose nothing (9.1–10.9 % measured); the 0.5-point bar is
//! measured on 21 minutes on the GPU (benchmark/RESULTS.md).

mod common;

use common::{longform, wer};
use mlx_napi_core::whisper::{LoadOptions, TranscribeHooks, TranscribeOptions, WhisperEngine};

#[test]
fn batched_keeps_every_word_of_long_form_speech() {
    let Some(model) = common::shared("models/whisper-tiny.en/model.safetensors") else {
        return;
    };
    let set = longform::build(&common::shared_dir(), 0);
    assert!(set.duration_s() >= 180.0, "{} s", set.duration_s());
    let engine = WhisperEngine::load_dir(model.parent().unwrap(), LoadOptions::default()).unwrap();
    let reference = set.reference();
    let mut rates = Vec::new();
    let mut runs = Vec::new();
    for batch_size in [1, 8] {
        let options = TranscribeOptions {
            batch_size,
            ..Default::default()
        };
        let result = engine
            .transcribe_samples(&set.samples, &options, TranscribeHooks::default())
            .unwrap();
        let rate = wer::wer(&reference, &result.text);
        let run = wer::longest_deletion_run(&reference, &result.text);
        eprintln!(
            "batch {batch_size}: WER {rate:.2} % over {} words, longest deleted run {run}, \
             {:.1} s of audio in {:.1} s",
            wer::normalize(&reference).len(),
            set.duration_s(),
            result.timings.total_ms / 1e3
        );
        rates.push(rate);
        runs.push(run);
    }
    let (sequential, batched) = (rates[0], rates[1]);
    // A sanity bound: tiny.en reads this set at ~10 % (the synthetic voices are hard).
    assert!(sequential < 15.0, "sequential WER {sequential:.2} %");
    assert!(
        runs[1] <= runs[0].max(5),
        "batched transcript lost a run of {} words (sequential: {})",
        runs[1],
        runs[0]
    );
    assert!(
        batched <= sequential + 1.5,
        "batched WER {batched:.2} % vs sequential {sequential:.2} %"
    );
}
