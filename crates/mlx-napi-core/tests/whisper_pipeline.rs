//! The long-form transcription loop on a random-weight fixture (fast on CPU):
//! window scheduling, segments, batching, temperature fallback and language
//! detection. Uses tiny.en's tokenizer from ../shared.

mod common;

use std::path::{Path, PathBuf};

use mlx_napi_core::{
    audio::AudioInput,
    whisper::{
        windows::{plan_windows, Planner},
        LoadOptions, Task, TranscribeHooks, TranscribeOptions, Transcription, WhisperEngine,
    },
    ErrorCode,
};
use mlx_rs::{ops, Array};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn tokenizer_dir() -> Option<PathBuf> {
    common::shared("models/whisper-tiny.en/tokenizer.json")
        .map(|p| p.parent().unwrap().to_path_buf())
}

fn engine(dir: &Path) -> Option<WhisperEngine> {
    let options = LoadOptions {
        tokenizer_dir: Some(tokenizer_dir()?),
        ..Default::default()
    };
    Some(WhisperEngine::load_dir(dir, options).unwrap())
}

/// `seconds` of a 16 kHz test tone (the random model does not care what it hears).
fn tone(seconds: f32) -> AudioInput {
    let n = (seconds * 16_000.0) as usize;
    let samples = (0..n)
        .map(|i| 0.3 * (i as f32 * 0.05).sin() * (i as f32 * 0.0003).cos())
        .collect();
    AudioInput::Pcm {
        samples,
        sample_rate: 16_000,
    }
}

/// Options under which the random model's output is kept as is.
fn keep_everything() -> TranscribeOptions {
    TranscribeOptions {
        temperatures: vec![0.0],
        compression_ratio_threshold: None,
        logprob_threshold: None,
        no_speech_threshold: None,
        sample_len: Some(24),
        ..Default::default()
    }
}

fn run(engine: &WhisperEngine, audio: AudioInput, options: &TranscribeOptions) -> Transcription {
    engine
        .transcribe(audio, options, TranscribeHooks::default())
        .unwrap()
}

fn check_segments(result: &Transcription) {
    for pair in result.segments.windows(2) {
        assert!(
            pair[0].start <= pair[1].start,
            "segments out of order: {:?}",
            result.segments
        );
    }
    for (i, s) in result.segments.iter().enumerate() {
        assert_eq!(s.id, i);
        let window_start = s.seek as f32 * 0.01;
        assert!(
            s.start >= window_start - 1e-3 && s.end <= window_start + 30.0 + 1e-3,
            "{s:?}"
        );
        assert!(s.start < s.end, "{s:?}");
        assert!(!s.text.trim().is_empty());
    }
    let joined: String = result.segments.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(joined, result.text);
}

#[test]
fn long_audio_is_cut_into_windows() {
    let Some(engine) = engine(&fixture("whisper-random-80")) else {
        return;
    };
    // 65 s: three windows at least, each ≤ 30 s and cut at the quietest point
    // near its end (the tone's amplitude dips every ~1.3 s).
    let AudioInput::Pcm { samples, .. } = tone(65.0) else {
        unreachable!()
    };
    let planned = plan_windows(&samples, samples.len() / 160);
    assert!(planned.len() >= 3, "{planned:?}");
    assert!(planned.iter().all(|&(_, frames)| frames <= 3000));
    assert!(planned[0].1 > 2500, "cut too early: {planned:?}");
    // With batch 3: three sections, each read by its own seek loop.
    let sections = Planner::new(&samples, samples.len() / 160).sections(3);
    assert_eq!(sections.len(), 3, "{sections:?}");
    let batched = run(
        &engine,
        tone(65.0),
        &TranscribeOptions {
            batch_size: 3,
            ..keep_everything()
        },
    );
    check_segments(&batched);
    let seeks: Vec<usize> = batched.segments.iter().map(|s| s.seek).collect();
    // Every section is read (its first window may be read again from a later
    // frame when the model skipped speech, as random weights do on a tone).
    for &(start, end) in &sections {
        assert!(
            seeks.iter().any(|&seek| (start..end).contains(&seek)),
            "no window of section {start}..{end}: {seeks:?}"
        );
    }
    assert!((batched.duration - 65.0).abs() < 1e-3);

    // Batch 2 splits the audio differently, but each section is read whole and
    // segments come out in time order.
    let two_sections = run(
        &engine,
        tone(65.0),
        &TranscribeOptions {
            batch_size: 2,
            ..keep_everything()
        },
    );
    check_segments(&two_sections);
    assert!(two_sections
        .segments
        .windows(2)
        .all(|p| p[0].seek <= p[1].seek && p[0].start <= p[1].start));

    // The sequential schedule re-reads from the last complete segment.
    let sequential = run(&engine, tone(65.0), &keep_everything());
    check_segments(&sequential);
    assert!(sequential
        .segments
        .windows(2)
        .all(|p| p[0].seek <= p[1].seek));
    assert!(sequential.segments.last().unwrap().seek >= 3000);
}

#[test]
fn forced_fallback_reaches_the_last_temperature_for_every_window() {
    let Some(engine) = engine(&fixture("whisper-random-80")) else {
        return;
    };
    // Every decode "fails" (average log-probability below 10⁹): each window is
    // retried at every temperature, the failed ones together as one batch.
    let options = TranscribeOptions {
        temperatures: vec![0.0, 0.5, 1.0],
        logprob_threshold: Some(1e9),
        best_of: 2,
        batch_size: 4,
        seed: Some(1),
        ..keep_everything()
    };
    let result = run(&engine, tone(45.0), &options);
    assert!(!result.segments.is_empty());
    assert!(
        result.segments.iter().all(|s| s.temperature == 1.0),
        "{:?}",
        result.segments
    );
    // Thresholds off: the first (greedy) decode stands.
    let result = run(
        &engine,
        tone(45.0),
        &TranscribeOptions {
            temperatures: vec![0.0, 0.5, 1.0],
            ..keep_everything()
        },
    );
    assert!(result.segments.iter().all(|s| s.temperature == 0.0));
    // A compression-ratio threshold below any text's ratio forces fallback too.
    let options = TranscribeOptions {
        temperatures: vec![0.0, 1.0],
        compression_ratio_threshold: Some(0.0),
        seed: Some(2),
        ..keep_everything()
    };
    let result = run(&engine, tone(10.0), &options);
    assert!(result.segments.iter().all(|s| s.temperature == 1.0));
    // Silence wins over fallback: everything is "no speech" with threshold 0.
    let options = TranscribeOptions {
        no_speech_threshold: Some(0.0),
        logprob_threshold: Some(1e9),
        temperatures: vec![0.0, 1.0],
        ..keep_everything()
    };
    let result = run(&engine, tone(10.0), &options);
    assert!(result.segments.is_empty(), "{:?}", result.segments);
    assert_eq!(result.text, "");
}

#[test]
fn initial_prompt_and_timestamp_options_change_the_prompt() {
    let Some(engine) = engine(&fixture("whisper-random-80")) else {
        return;
    };
    let plain = run(&engine, tone(5.0), &keep_everything());
    let prompted = run(
        &engine,
        tone(5.0),
        &TranscribeOptions {
            initial_prompt: Some("Glossary: MLX, Whisper.".into()),
            ..keep_everything()
        },
    );
    assert_ne!(
        plain.segments, prompted.segments,
        "the prompt is part of the decoder input"
    );
    let untimed = run(
        &engine,
        tone(5.0),
        &TranscribeOptions {
            timestamps: false,
            ..keep_everything()
        },
    );
    let tb = engine.tokenizer().special().timestamp_begin;
    assert!(untimed
        .segments
        .iter()
        .all(|s| s.tokens.iter().all(|&t| t < tb)));
    assert!(untimed
        .segments
        .iter()
        .all(|s| s.start == 0.0 && (s.end - 5.0).abs() < 1e-3));
}

/// The random fixture with one extra vocabulary row: 51865 tokens make it
/// "multilingual" (99 language tokens), which tiny.en's tokenizer also lists.
fn multilingual_fixture() -> tempfile::TempDir {
    let src = fixture("whisper-random-80");
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::read_json(&src.join("config.json"));
    config["vocab_size"] = serde_json::json!(51865);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        src.join("generation_config.json"),
        dir.path().join("generation_config.json"),
    )
    .unwrap();
    let mut tensors = Array::load_safetensors(src.join("model.safetensors")).unwrap();
    let name = "model.decoder.embed_tokens.weight";
    let table = tensors.remove(name).unwrap();
    let extra = ops::zeros_dtype(&[1, 8], table.dtype()).unwrap();
    tensors.insert(name.into(), ops::concatenate(&[table, extra], 0).unwrap());
    Array::save_safetensors(tensors, None, dir.path().join("model.safetensors")).unwrap();
    dir
}

#[test]
fn multilingual_models_detect_or_take_the_language() {
    let dir = multilingual_fixture();
    let Some(engine) = engine(dir.path()) else {
        return;
    };
    assert!(engine.tokenizer().is_multilingual());
    let detected = run(&engine, tone(3.0), &keep_everything());
    let codes: Vec<&str> = engine
        .tokenizer()
        .languages()
        .iter()
        .map(|(c, _)| *c)
        .collect();
    assert!(
        codes.contains(&detected.language.as_str()),
        "{}",
        detected.language
    );
    assert!(detected.language_probability > 0.0 && detected.language_probability <= 1.0);
    let given = run(
        &engine,
        tone(3.0),
        &TranscribeOptions {
            language: Some("german".into()),
            ..keep_everything()
        },
    );
    assert_eq!(
        (given.language.as_str(), given.language_probability),
        ("de", 1.0)
    );
    let translated = run(
        &engine,
        tone(3.0),
        &TranscribeOptions {
            language: Some("de".into()),
            task: Task::Translate,
            ..keep_everything()
        },
    );
    assert_eq!(translated.language, "de");
    let ranked = engine.detect_language(tone(3.0)).unwrap();
    assert_eq!(ranked.len(), 99);
    assert_eq!(
        ranked[0],
        (detected.language.as_str(), detected.language_probability)
    );
    assert!(ranked.windows(2).all(|w| w[0].1 >= w[1].1));
    assert!((ranked.iter().map(|r| r.1).sum::<f32>() - 1.0).abs() < 1e-3);
    let err = engine
        .transcribe(
            tone(1.0),
            &TranscribeOptions {
                language: Some("xx".into()),
                ..keep_everything()
            },
            TranscribeHooks::default(),
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}

#[test]
fn english_only_models_refuse_translation() {
    let Some(engine) = engine(&fixture("whisper-random-80")) else {
        return;
    };
    let options = TranscribeOptions {
        task: Task::Translate,
        ..keep_everything()
    };
    let err = engine
        .transcribe(tone(1.0), &options, TranscribeHooks::default())
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    let err = engine.detect_language(tone(1.0)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}

#[test]
fn missing_tokenizer_is_reported() {
    let err = WhisperEngine::load_dir(&fixture("whisper-random-80"), LoadOptions::default())
        .err()
        .unwrap();
    assert_eq!(err.code(), ErrorCode::ModelNotFound);
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}
