//! Silero VAD port against the oracle in tests/fixtures/silero-vad/oracle.json
//! (onnxruntime on the original ONNX + faster-whisper 1.2.1's `vad.py`; made by
//! scripts/fixtures/make_vad_fixtures.py).

mod common;

use std::{ops::Range, path::Path, time::Instant};

use mlx_napi_core::{
    audio::{load_mono, AudioInput},
    vad::{segments::speech_ranges, speech_probabilities, speech_segments, VadOptions},
    ErrorCode,
};

const LIBRIVOX: [&str; 5] = ["0870", "0880", "0890", "0920", "0930"];

fn oracle() -> serde_json::Value {
    common::read_json(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/silero-vad/oracle.json"),
    )
}

/// The oracle's option sets, in our terms.
fn options(value: &serde_json::Value) -> VadOptions {
    let f = |k: &str| value[k].as_f64().map(|v| v as f32);
    VadOptions {
        threshold: f("threshold").unwrap(),
        neg_threshold: f("neg_threshold"),
        min_speech_ms: f("min_speech_duration_ms").unwrap(),
        min_silence_ms: f("min_silence_duration_ms").unwrap(),
        speech_pad_ms: f("speech_pad_ms").unwrap(),
        max_speech_s: f("max_speech_duration_s"),
    }
}

fn ranges(value: &serde_json::Value) -> Vec<Range<usize>> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_u64().unwrap() as usize..r[1].as_u64().unwrap() as usize)
        .collect()
}

fn probs(value: &serde_json::Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn speech_ranges_match_faster_whisper_on_oracle_probabilities() {
    // Needs no audio: the oracle's own probabilities through our segment rules.
    let oracle = oracle();
    let sets = oracle["options"].as_object().unwrap();
    let mut checked = 0;
    for (clip, entry) in oracle["clips"].as_object().unwrap() {
        let p = probs(&entry["probs"]);
        let len = entry["samples"].as_u64().unwrap() as usize;
        for (set, opts) in sets {
            let got = speech_ranges(&p, len, &options(opts));
            assert_eq!(got, ranges(&entry["speech"][set]), "{clip} with {set}");
            checked += 1;
        }
    }
    assert!(checked >= 32);
}

/// The oracle's clips decoded here exactly as the fixture script read them.
fn clip_samples(name: &str) -> Option<Vec<f32>> {
    let wav = |rel: &str, rate| {
        common::shared(&format!("audio/{rel}"))
            .map(|p| load_mono(AudioInput::File(p), rate).unwrap())
    };
    let librivox = |id: &str| {
        wav(
            &format!("librivox/sense_and_sensibility_01_austen_64kb-{id}.wav"),
            16_000,
        )
    };
    match name {
        "jfk" => wav("jfk.wav", 16_000),
        "noise" => wav("Noise.wav", 48_000).map(|s| s.into_iter().step_by(3).collect()),
        "concat" => {
            let mut all = Vec::new();
            for id in LIBRIVOX {
                all.extend(librivox(id)?);
                all.extend([0.0; 8000]);
            }
            all.extend(wav("jfk.wav", 16_000)?);
            all.extend([0.0; 8000]);
            Some(all)
        }
        id => librivox(id),
    }
}

#[test]
fn probabilities_match_onnxruntime() {
    let oracle = oracle();
    let mut worst = 0f32;
    for (clip, entry) in oracle["clips"].as_object().unwrap() {
        let Some(samples) = clip_samples(clip) else {
            return;
        };
        assert_eq!(
            samples.len() as u64,
            entry["samples"].as_u64().unwrap(),
            "{clip}"
        );
        let started = Instant::now();
        let got = speech_probabilities(&samples).unwrap();
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let want = probs(&entry["probs"]);
        assert_eq!(got.len(), want.len(), "{clip}");
        let err = common::max_abs_diff(&got, &want);
        eprintln!(
            "{clip}: {} chunks, max |p - onnxruntime| = {err:.2e}, {ms:.1} ms ({:.1} ms per minute of audio)",
            got.len(),
            ms / (samples.len() as f64 / 16_000.0 / 60.0)
        );
        worst = worst.max(err);
        assert!(err < 1e-3, "{clip}: max |Δp| = {err}");
    }
    eprintln!("worst max |Δp| over all clips: {worst:.2e}");
}

#[test]
fn speech_segments_match_faster_whisper_end_to_end() {
    let oracle = oracle();
    for (clip, entry) in oracle["clips"].as_object().unwrap() {
        let Some(samples) = clip_samples(clip) else {
            return;
        };
        for (set, opts) in oracle["options"].as_object().unwrap() {
            let got = speech_segments(&samples, &options(opts)).unwrap();
            assert_eq!(got, ranges(&entry["speech"][set]), "{clip} with {set}");
        }
    }
}

#[test]
fn noise_and_silence_hold_no_speech() {
    assert!(speech_segments(&[0.0; 48_000], &VadOptions::default())
        .unwrap()
        .is_empty());
    assert!(speech_segments(&[], &VadOptions::default())
        .unwrap()
        .is_empty());
    let Some(noise) = common::shared("audio/Noise.wav") else {
        return;
    };
    // The real 48 kHz file through the real resampler.
    let samples = load_mono(AudioInput::File(noise), 16_000).unwrap();
    assert!(speech_segments(&samples, &VadOptions::default())
        .unwrap()
        .is_empty());
}

#[test]
fn bad_options_are_invalid_argument_errors() {
    let bad = [
        VadOptions {
            threshold: 0.0,
            ..Default::default()
        },
        VadOptions {
            threshold: 1.0,
            ..Default::default()
        },
        VadOptions {
            threshold: f32::NAN,
            ..Default::default()
        },
        VadOptions {
            neg_threshold: Some(0.6),
            ..Default::default()
        },
        VadOptions {
            min_silence_ms: -1.0,
            ..Default::default()
        },
        VadOptions {
            speech_pad_ms: f32::INFINITY,
            ..Default::default()
        },
        VadOptions {
            min_speech_ms: f32::NAN,
            ..Default::default()
        },
        VadOptions {
            max_speech_s: Some(0.5),
            ..Default::default()
        },
    ];
    for options in bad {
        let err = speech_segments(&[0.0; 1000], &options).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{options:?}: {err}");
    }
    VadOptions {
        max_speech_s: Some(1.0),
        ..Default::default()
    }
    .validate()
    .unwrap();
}

/// Speed on 5 minutes of real speech (the oracle's concatenated clips,
/// repeated): `cargo test --release --test vad -- --ignored --nocapture`.
#[test]
#[ignore = "timing report, not a check"]
fn speed_report() {
    let Some(concat) = clip_samples("concat") else {
        return;
    };
    let samples: Vec<f32> = concat.iter().copied().cycle().take(16_000 * 300).collect();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let started = Instant::now();
        let segments = speech_segments(&samples, &VadOptions::default()).unwrap();
        best = best.min(started.elapsed().as_secs_f64() * 1e3);
        assert!(!segments.is_empty());
    }
    eprintln!(
        "VAD: {:.1} ms per minute of audio (best of 3 over 5 min)",
        best / 5.0
    );
}
