//! Long-form quality of the batched schedule (issue: batched Whisper lost
//! words at window edges). On > 3 minutes of speech (tests/common/longform.rs)
//! whisper tiny.en's batched transcription must have a word error rate no
//! more than 0.5 points above the sequential seek loop's.

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
    for batch_size in [1, 8] {
        let options = TranscribeOptions {
            batch_size,
            ..Default::default()
        };
        let result = engine
            .transcribe_samples(&set.samples, &options, TranscribeHooks::default())
            .unwrap();
        let rate = wer::wer(&reference, &result.text);
        eprintln!(
            "batch {batch_size}: WER {rate:.2} % over {} words, {:.1} s of audio in {:.1} s",
            wer::normalize(&reference).len(),
            set.duration_s(),
            result.timings.total_ms / 1e3
        );
        rates.push(rate);
    }
    let (sequential, batched) = (rates[0], rates[1]);
    // A sanity bound: tiny.en reads this set at ~10 % (the synthetic voices are hard).
    assert!(sequential < 15.0, "sequential WER {sequential:.2} %");
    assert!(
        batched <= sequential + 0.5,
        "batched WER {batched:.2} % vs sequential {sequential:.2} %"
    );
}
