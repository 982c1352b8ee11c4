//! tiny.en transcriptions against faster-whisper's oracle
//! (../shared/reference/whisper-tiny.en-faster-whisper.json).
//!
//! One engine is loaded once and shared; tests take turns on it (the MLX CPU
//! encoder is the slow part: ~10 s per 30 s window here).

mod common;

use std::sync::{atomic::AtomicBool, mpsc, Arc, Mutex, OnceLock};

use mlx_napi_core::{
    audio::AudioInput,
    whisper::{
        LoadOptions, Progress, Segment, TranscribeHooks, TranscribeOptions, Transcription,
        WhisperEngine,
    },
    ErrorCode,
};

/// Runs `f` on the thread that owns the shared tiny.en engine (MLX streams are
/// per thread, so a model is loaded and used on one thread), or returns `None`
/// when the model is not in ../shared.
fn with_engine<R: Send + 'static>(
    f: impl FnOnce(&WhisperEngine) -> R + Send + 'static,
) -> Option<R> {
    type Job = Box<dyn FnOnce(&WhisperEngine) + Send>;
    static WORKER: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    let worker = WORKER.get_or_init(|| {
        let dir = common::shared("models/whisper-tiny.en/model.safetensors")?;
        let (send, receive) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            let engine =
                WhisperEngine::load_dir(dir.parent().unwrap(), LoadOptions::default()).unwrap();
            for job in receive {
                job(&engine);
            }
        });
        Some(Mutex::new(send))
    });
    let sender = worker
        .as_ref()?
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let (reply, result) = mpsc::channel();
    sender
        .send(Box::new(move |engine: &WhisperEngine| {
            // A panic here must not kill the worker: hand it back to the test.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(engine)));
            let _ = reply.send(outcome);
        }))
        .unwrap();
    match result.recv().expect("engine thread died") {
        Ok(value) => Some(value),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn oracle(file: &str) -> serde_json::Value {
    let path = common::shared("reference/whisper-tiny.en-faster-whisper.json").unwrap();
    let all = common::read_json(&path);
    all["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["file"] == format!("audio/{file}"))
        .unwrap_or_else(|| panic!("{file} not in the oracle"))
        .clone()
}

/// The README's normalization: lower case, hyphens → spaces, no punctuation,
/// single spaces.
fn normalize(text: &str) -> String {
    let lowered = text.to_lowercase().replace('-', " ");
    let kept: String = lowered
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn transcribe_file(engine: &WhisperEngine, file: &str) -> Option<Transcription> {
    let path = common::shared(&format!("audio/{file}"))?;
    Some(
        engine
            .transcribe(
                AudioInput::File(path),
                &TranscribeOptions::default(),
                TranscribeHooks::default(),
            )
            .unwrap(),
    )
}

fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let r: Vec<&str> = reference.split_whitespace().collect();
    let h: Vec<&str> = hypothesis.split_whitespace().collect();
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(rw != hw)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[h.len()] as f64 / r.len() as f64
}

#[test]
fn jfk_wav_matches_faster_whisper() {
    with_engine(|engine| {
        let Some(result) = transcribe_file(engine, "jfk.wav") else {
            return;
        };
        let expected = oracle("jfk.wav");
        let greedy = &expected["greedy"];
        println!("{result:#?}");
        assert_eq!(
            normalize(&result.text),
            normalize(greedy["text"].as_str().unwrap())
        );
        assert_eq!(result.language, "en");
        assert!((result.duration - 11.0).abs() < 1e-3);
        let want = greedy["segments"].as_array().unwrap();
        assert_eq!(result.segments.len(), want.len(), "{:?}", result.segments);
        for (got, want) in result.segments.iter().zip(want) {
            assert!(
                (got.start - want["start"].as_f64().unwrap() as f32).abs() <= 0.5,
                "{got:?}"
            );
            assert!(
                (got.end - want["end"].as_f64().unwrap() as f32).abs() <= 0.5,
                "{got:?}"
            );
            assert!(
                (got.no_speech_prob - want["no_speech_prob"].as_f64().unwrap() as f32).abs() < 0.01,
                "{got:?}"
            );
            assert_eq!(got.temperature, 0.0);
        }
        // Float32 on the same window: ids equal up to the first near-tie (step 15).
        let ours: Vec<u32> = result
            .segments
            .iter()
            .flat_map(|s| s.tokens.clone())
            .collect();
        let theirs: Vec<u32> = want
            .iter()
            .flat_map(|s| {
                s["tokens"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_u64().unwrap() as u32)
            })
            .collect();
        assert_eq!(ours[..15], theirs[..15]);
        if ours == theirs {
            let avg = want[0]["avg_logprob"].as_f64().unwrap() as f32;
            assert!(
                (result.segments[0].avg_logprob - avg).abs() < 0.02,
                "{result:?}"
            );
        }
        let timings = &result.timings;
        assert!(
            timings.encode_ms > 0.0 && timings.decode_ms > 0.0 && timings.real_time_factor > 0.0
        );
    });
}

#[test]
fn jfk_mp3_gives_the_same_words_and_streams_segments() {
    with_engine(|engine| {
        let Some(path) = common::shared("audio/jfk.mp3") else {
            return;
        };
        let mut seen: Vec<Segment> = Vec::new();
        let mut progress = Vec::new();
        let mut on_segment = |s: &Segment| seen.push(s.clone());
        let mut on_progress = |p: Progress| progress.push(p.processed_seconds);
        let hooks = TranscribeHooks {
            abort: None,
            on_progress: Some(&mut on_progress),
            on_segment: Some(&mut on_segment),
        };
        let result = engine
            .transcribe(AudioInput::File(path), &TranscribeOptions::default(), hooks)
            .unwrap();
        let expected = oracle("jfk.mp3");
        assert_eq!(
            normalize(&result.text),
            normalize(expected["greedy"]["text"].as_str().unwrap())
        );
        assert!(!seen.is_empty());
        assert_eq!(seen, result.segments);
        assert_eq!(progress.last().copied(), Some(11.0));
    });
}

#[test]
fn jfk_beam_search_matches_faster_whisper_beam5() {
    with_engine(|engine| {
        let Some(path) = common::shared("audio/jfk.wav") else {
            return;
        };
        let options = TranscribeOptions {
            beam_size: 5,
            ..Default::default()
        };
        let result = engine
            .transcribe(AudioInput::File(path), &options, TranscribeHooks::default())
            .unwrap();
        let expected = oracle("jfk.wav");
        println!("beam 5: {:?}", result.text);
        assert_eq!(
            normalize(&result.text),
            normalize(expected["beam5"]["text"].as_str().unwrap())
        );
        assert!(result.segments.iter().all(|s| s.temperature == 0.0));
    });
}

#[test]
fn noise_has_no_text() {
    with_engine(|engine| {
        let Some(result) = transcribe_file(engine, "Noise.wav") else {
            return;
        };
        assert_eq!(result.text, "");
        assert!(result.segments.is_empty());
    });
}

#[test]
fn librivox_word_error_rate_is_within_the_reference() {
    with_engine(|engine| {
        let clip = "sense_and_sensibility_01_austen_64kb-0930";
        let Some(result) = transcribe_file(engine, &format!("librivox/{clip}.wav")) else {
            return;
        };
        let reference = "he might even have been made amiable himself";
        let oracle_text = oracle(&format!("librivox/{clip}.wav"))["greedy"]["text"]
            .as_str()
            .unwrap()
            .to_string();
        let ours = word_error_rate(reference, &normalize(&result.text));
        let theirs = word_error_rate(reference, &normalize(&oracle_text));
        println!(
            "WER ours {ours:.3} faster-whisper {theirs:.3}: {:?}",
            result.text
        );
        assert!(
            ours <= theirs + 0.02,
            "WER {ours} vs reference {theirs}: {:?}",
            result.text
        );
    });
}

#[test]
fn abort_flag_stops_with_abort_error() {
    with_engine(|engine| {
        let abort = Arc::new(AtomicBool::new(true));
        let hooks = TranscribeHooks {
            abort: Some(abort),
            ..Default::default()
        };
        let pcm = AudioInput::Pcm {
            samples: vec![0.0; 16_000],
            sample_rate: 16_000,
        };
        let err = engine
            .transcribe(pcm, &TranscribeOptions::default(), hooks)
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Aborted);
    });
}

#[test]
fn rejects_bad_options() {
    with_engine(|engine| {
        let pcm = || AudioInput::Pcm {
            samples: vec![0.0; 1600],
            sample_rate: 16_000,
        };
        for options in [
            TranscribeOptions {
                temperatures: vec![],
                ..Default::default()
            },
            TranscribeOptions {
                temperatures: vec![-1.0],
                ..Default::default()
            },
            TranscribeOptions {
                batch_size: 0,
                ..Default::default()
            },
            TranscribeOptions {
                language: Some("de".into()),
                ..Default::default()
            },
        ] {
            let err = engine
                .transcribe(pcm(), &options, TranscribeHooks::default())
                .unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument, "{options:?}: {err}");
        }
        let empty = AudioInput::Pcm {
            samples: vec![],
            sample_rate: 16_000,
        };
        let err = engine
            .transcribe(
                empty,
                &TranscribeOptions::default(),
                TranscribeHooks::default(),
            )
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::AudioDecode);
    });
}
