//! `TranscribeOptions::vad` with Whisper tiny.en (../shared): noise gives no
//! segments, and cutting real speech down to what the VAD keeps loses no words.

mod common;

use mlx_napi_core::{
    audio::{load_mono, AudioInput},
    vad::VadOptions,
    whisper::{LoadOptions, Segment, TranscribeHooks, TranscribeOptions, WhisperEngine},
    ErrorCode,
};

const LIBRIVOX: [&str; 5] = ["0870", "0880", "0890", "0920", "0930"];
const JFK: &str = "and so my fellow americans ask not what your country can do for you ask \
                   what you can do for your country";

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '-')
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Fraction of `reference` words matched in order (longest common subsequence).
fn coverage(reference: &[String], hypothesis: &[String]) -> f64 {
    let mut row = vec![0usize; hypothesis.len() + 1];
    for r in reference {
        let mut diagonal = 0;
        for (j, h) in hypothesis.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if r == h {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[hypothesis.len()] as f64 / reference.len() as f64
}

fn check_segments(segments: &[Segment], duration: f32) {
    let mut previous_end = 0.0;
    for s in segments {
        assert!(s.start >= previous_end - 0.02, "{segments:#?}");
        assert!(
            s.start <= s.end && s.end <= duration + 0.02,
            "{s:?} past {duration}"
        );
        previous_end = s.end;
    }
}

#[test]
fn vad_transcription_drops_noise_and_keeps_every_word() {
    let Some(model) = common::shared("models/whisper-tiny.en/model.safetensors") else {
        return;
    };
    let (Some(noise), Some(jfk), Some(librivox)) = (
        common::shared("audio/Noise.wav"),
        common::shared("audio/jfk.wav"),
        common::shared("audio/librivox/transcription"),
    ) else {
        return;
    };
    let engine = WhisperEngine::load(
        model.parent().unwrap().to_str().unwrap(),
        LoadOptions::default(),
    )
    .unwrap();
    let vad_default = TranscribeOptions {
        vad: Some(VadOptions::default()),
        ..Default::default()
    };

    // Noise: nothing, without running Whisper; progress still reaches the end.
    let mut progress = Vec::new();
    let mut on_progress = |p| progress.push(p);
    let result = engine
        .transcribe(
            AudioInput::File(noise),
            &vad_default,
            TranscribeHooks {
                on_progress: Some(&mut on_progress),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(
        result.segments.is_empty() && result.text.is_empty(),
        "{result:?}"
    );
    assert!(
        (result.duration - 1.408).abs() < 0.01,
        "{}",
        result.duration
    );
    assert_eq!(progress.last().unwrap().processed_seconds, result.duration);

    // Real speech: the five LibriVox clips and jfk.wav with 2 s of silence after
    // each, which the VAD (default settings: faster-whisper's) removes.
    let reference_text = std::fs::read_to_string(librivox).unwrap();
    let mut reference = Vec::new();
    let mut samples = Vec::new();
    for id in LIBRIVOX {
        let path = common::shared(&format!(
            "audio/librivox/sense_and_sensibility_01_austen_64kb-{id}.wav"
        ))
        .unwrap();
        samples.extend(load_mono(AudioInput::File(path), 16_000).unwrap());
        samples.extend([0.0; 32_000]);
        let line = reference_text.lines().find(|l| l.contains(id)).unwrap();
        reference.extend(
            words(&line.replace("<s>", "").replace("</s>", ""))
                .into_iter()
                .filter(|w| !w.contains(id)),
        );
    }
    samples.extend(load_mono(AudioInput::File(jfk), 16_000).unwrap());
    samples.extend([0.0; 32_000]);
    reference.extend(words(JFK));
    let duration = samples.len() as f32 / 16_000.0;

    let mut streamed = Vec::new();
    let mut on_segment = |s: &Segment| streamed.push(s.clone());
    let pcm = || AudioInput::Pcm {
        samples: samples.clone(),
        sample_rate: 16_000,
    };
    let with_vad = engine
        .transcribe(
            pcm(),
            &vad_default,
            TranscribeHooks {
                on_segment: Some(&mut on_segment),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        streamed, with_vad.segments,
        "onSegment sees the mapped segments"
    );
    assert_eq!(with_vad.duration, duration);
    check_segments(&with_vad.segments, duration);
    let without = engine
        .transcribe(
            pcm(),
            &TranscribeOptions::default(),
            TranscribeHooks::default(),
        )
        .unwrap();
    let covered = coverage(&reference, &words(&with_vad.text));
    let covered_without = coverage(&reference, &words(&without.text));
    eprintln!(
        "reference words transcribed: {:.1} % with VAD, {:.1} % without\n  VAD: {}\n  all: {}",
        covered * 100.0,
        covered_without * 100.0,
        with_vad.text,
        without.text
    );
    assert!(covered >= 0.99 * covered_without, "VAD lost words");
    // The gaps were cut: fewer seconds went through Whisper.
    assert!(with_vad.segments.len() >= 2);
    // jfk.wav starts at 34.73 s (after 2 s gaps): its last words must be timed
    // there, not on the shortened timeline; the kept range ends at most one
    // 400 ms pad after the clip.
    let jfk_start = (113_600 + 47_840 + 84_800 + 96_800 + 52_640 + 5 * 32_000) as f32 / 16_000.0;
    let last = with_vad.segments.last().unwrap();
    assert!(
        last.start > jfk_start && last.end > jfk_start + 9.0 && last.end <= jfk_start + 11.42,
        "{last:?}"
    );

    // Bad VAD options are range errors; the engine stays usable.
    let bad = TranscribeOptions {
        vad: Some(VadOptions {
            threshold: 1.5,
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = engine
        .transcribe(pcm(), &bad, TranscribeHooks::default())
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
}
