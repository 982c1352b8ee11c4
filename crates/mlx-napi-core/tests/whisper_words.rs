//! Word timestamps of tiny.en against faster-whisper's (an independent
//! implementation: CTranslate2's alignment + faster-whisper's post-processing),
//! stored in tests/fixtures/whisper-word-timestamps/faster-whisper.json by
//! scripts/fixtures/gen_word_timestamps.py. Needs ../shared (skips without it).

mod common;

use mlx_napi_core::{
    audio::AudioInput,
    whisper::{LoadOptions, TranscribeHooks, TranscribeOptions, Transcription, WhisperEngine},
};

/// Start and end of every word within this many seconds of faster-whisper's.
const TOLERANCE_S: f64 = 0.1;

fn oracle() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/whisper-word-timestamps/faster-whisper.json");
    common::read_json(&path)
}

fn engine() -> Option<WhisperEngine> {
    let weights = common::shared("models/whisper-tiny.en/model.safetensors")?;
    Some(WhisperEngine::load_dir(weights.parent().unwrap(), LoadOptions::default()).unwrap())
}

fn transcribe(
    engine: &WhisperEngine,
    file: &str,
    options: &TranscribeOptions,
) -> Option<Transcription> {
    let path = common::shared(&format!("audio/{file}"))?;
    Some(
        engine
            .transcribe(AudioInput::File(path), options, TranscribeHooks::default())
            .unwrap(),
    )
}

/// `(word, start, end, probability)` of every word, in order.
fn our_words(t: &Transcription) -> Vec<(String, f64, f64, f64)> {
    t.segments
        .iter()
        .flat_map(|s| s.words.as_ref().expect("words requested").iter())
        .map(|w| {
            (
                w.word.clone(),
                f64::from(w.start),
                f64::from(w.end),
                f64::from(w.probability),
            )
        })
        .collect()
}

fn their_words(result: &serde_json::Value) -> Vec<(String, f64, f64, f64)> {
    result["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["words"].as_array().unwrap().iter())
        .map(|w| {
            (
                w["word"].as_str().unwrap().to_string(),
                w["start"].as_f64().unwrap(),
                w["end"].as_f64().unwrap(),
                w["probability"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Same words; returns the largest start, end and probability differences.
fn compare(
    file: &str,
    ours: &[(String, f64, f64, f64)],
    theirs: &[(String, f64, f64, f64)],
) -> (f64, f64, f64) {
    let texts = |w: &[(String, f64, f64, f64)]| w.iter().map(|w| w.0.clone()).collect::<Vec<_>>();
    assert_eq!(texts(ours), texts(theirs), "{file}: words differ");
    let mut worst = (0.0f64, 0.0f64, 0.0f64);
    for (a, b) in ours.iter().zip(theirs) {
        println!(
            "{file}: {:>14} ours {:6.2}–{:6.2} p {:.3} | faster-whisper {:6.2}–{:6.2} p {:.3}",
            a.0, a.1, a.2, a.3, b.1, b.2, b.3
        );
        worst.0 = worst.0.max((a.1 - b.1).abs());
        worst.1 = worst.1.max((a.2 - b.2).abs());
        worst.2 = worst.2.max((a.3 - b.3).abs());
    }
    worst
}

#[test]
fn word_timestamps_match_faster_whisper() {
    let Some(engine) = engine() else { return };
    let oracle = oracle();
    let options = TranscribeOptions {
        word_timestamps: true,
        ..Default::default()
    };
    let mut overall = (0.0f64, 0.0f64, 0.0f64);
    for result in oracle["results"].as_array().unwrap() {
        let file = result["file"].as_str().unwrap();
        let Some(ours) = transcribe(&engine, file, &options) else {
            return;
        };
        assert_eq!(ours.text, result["text"].as_str().unwrap(), "{file}: text");
        let (start, end, probability) = compare(file, &our_words(&ours), &their_words(result));
        println!(
            "{file}: max |Δstart| {start:.3} s, max |Δend| {end:.3} s, max |Δp| {probability:.3}"
        );
        assert!(
            start <= TOLERANCE_S && end <= TOLERANCE_S,
            "{file}: Δstart {start}, Δend {end}"
        );
        assert!(
            probability < 0.05,
            "{file}: word probabilities differ by {probability}"
        );
        // Segment bounds follow the words, as in faster-whisper.
        let segments = result["segments"].as_array().unwrap();
        assert_eq!(ours.segments.len(), segments.len(), "{file}: segments");
        for (a, b) in ours.segments.iter().zip(segments) {
            assert!((f64::from(a.start) - b["start"].as_f64().unwrap()).abs() <= TOLERANCE_S);
            assert!((f64::from(a.end) - b["end"].as_f64().unwrap()).abs() <= TOLERANCE_S);
            let joined: String = a
                .words
                .as_ref()
                .unwrap()
                .iter()
                .map(|w| w.word.as_str())
                .collect();
            assert_eq!(joined, a.text, "{file}: a segment's words spell its text");
        }
        overall = (
            overall.0.max(start),
            overall.1.max(end),
            overall.2.max(probability),
        );
    }
    println!(
        "all files: max |Δstart| {:.3} s, max |Δend| {:.3} s, max |Δp| {:.3}",
        overall.0, overall.1, overall.2
    );

    // Independent windows (batch_size > 1) time the same words on a single window.
    let batched = TranscribeOptions {
        word_timestamps: true,
        batch_size: 2,
        ..Default::default()
    };
    let first = &oracle["results"][0];
    let file = first["file"].as_str().unwrap();
    let ours = transcribe(&engine, file, &batched).unwrap();
    let (start, end, _) = compare(file, &our_words(&ours), &their_words(first));
    assert!(
        start <= TOLERANCE_S && end <= TOLERANCE_S,
        "batched {file}: Δstart {start}, Δend {end}"
    );

    // Off by default (the other whisper tests check that segments then carry no words).
    assert!(!TranscribeOptions::default().word_timestamps);
}

/// Languages without spaces split into characters; a character spread over
/// several byte tokens stays whole; English splits at spaces with punctuation
/// apart (merged later).
#[test]
fn tokens_split_into_words() {
    use mlx_napi_core::whisper::{alignment, tokenizer::WhisperTokenizer};
    let Some(dir) = common::shared("models/whisper-tiny.en/tokenizer.json") else {
        return;
    };
    let tokenizer = WhisperTokenizer::load(dir.parent().unwrap(), 0).unwrap();
    let text = "你好，世界";
    let tokens = tokenizer.encode(text).unwrap();
    let pieces = alignment::split_on_unicode(&tokenizer, &tokens).unwrap();
    let words: Vec<&str> = pieces.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(words, vec!["你", "好", "，", "世", "界"]);
    assert_eq!(
        pieces.iter().map(|(_, t)| t.len()).sum::<usize>(),
        tokens.len()
    );

    let tokens = tokenizer.encode(" Hello, wonderful world.").unwrap();
    let words: Vec<String> = alignment::split_on_spaces(&tokenizer, &tokens)
        .unwrap()
        .into_iter()
        .map(|(w, _)| w)
        .collect();
    assert_eq!(words, vec![" Hello", ",", " wonderful", " world", "."]);
}
