//! Whisper token handling on tiny.en's tokenizer.json (which stops before the
//! timestamp tokens).

mod common;

use mlx_napi_core::whisper::{
    tokenizer::{Task, WhisperTokenizer, LANGUAGES},
    WhisperConfig,
};

fn tiny_en() -> Option<(WhisperTokenizer, WhisperConfig)> {
    let dir = common::shared("models/whisper-tiny.en/tokenizer.json")?;
    let dir = dir.parent().unwrap();
    let config = WhisperConfig::load(dir).unwrap();
    Some((
        WhisperTokenizer::load(dir, config.num_languages()).unwrap(),
        config,
    ))
}

#[test]
fn special_ids_and_derived_timestamps() {
    let Some((tokenizer, config)) = tiny_en() else {
        return;
    };
    let s = tokenizer.special();
    assert_eq!(
        (s.eot, s.sot, s.translate, s.transcribe),
        (50256, 50257, 50357, 50358)
    );
    assert_eq!(
        (s.sot_prev, s.no_speech, s.no_timestamps),
        (50360, 50361, 50362)
    );
    // Not in tokenizer.json: the id after <|notimestamps|>.
    assert_eq!(s.timestamp_begin, 50363);
    assert_eq!(
        config.n_vocab - s.timestamp_begin as usize,
        1501,
        "<|0.00|> … <|30.00|>"
    );
    assert!(tokenizer.is_timestamp(51863) && !tokenizer.is_timestamp(50362));
    assert!((tokenizer.timestamp_seconds(50750) - 7.74).abs() < 1e-5);
}

#[test]
fn english_only_prompt_has_no_language_or_task() {
    let Some((tokenizer, _)) = tiny_en() else {
        return;
    };
    assert!(!tokenizer.is_multilingual());
    assert_eq!(
        tokenizer.sot_sequence(None, Task::Transcribe, true),
        vec![50257]
    );
    assert_eq!(
        tokenizer.sot_sequence(None, Task::Transcribe, false),
        vec![50257, 50362]
    );
    assert!(
        tokenizer.language_token("en").is_err(),
        "no language tokens are used by .en models"
    );
}

#[test]
fn multilingual_rules_use_the_vocabulary_order() {
    let Some((tokenizer, _)) = tiny_en() else {
        return;
    };
    let dir = common::shared("models/whisper-tiny.en/tokenizer.json").unwrap();
    // The same vocabulary read as if multilingual: the 99 language tokens sit
    // between <|startoftranscript|> and <|translate|> in LANGUAGES' order.
    let multi = WhisperTokenizer::load(dir.parent().unwrap(), 99).unwrap();
    assert_eq!(multi.languages().len(), 99);
    for (i, &(code, id)) in multi.languages().iter().enumerate() {
        assert_eq!(code, LANGUAGES[i].0);
        assert_eq!(id, 50258 + i as u32, "{code}");
    }
    assert_eq!(multi.language_token("German").unwrap(), 50260);
    assert_eq!(multi.language_code(50260), Some("de"));
    assert_eq!(
        multi.sot_sequence(Some(50260), Task::Translate, true),
        vec![50257, 50260, 50357]
    );
    assert!(multi.language_token("klingon").is_err());
    // 100 languages need <|yue|>, which this vocabulary lacks.
    assert!(WhisperTokenizer::load(dir.parent().unwrap(), 100).is_err());
    let _ = tokenizer;
}

#[test]
fn non_speech_tokens_match_the_checkpoint_list() {
    let Some((tokenizer, config)) = tiny_en() else {
        return;
    };
    let ours = tokenizer.non_speech_tokens().unwrap();
    // The checkpoint's list = openai-whisper's non-speech symbols + special ids.
    let s = tokenizer.special();
    let mut expected: Vec<u32> = config
        .suppress_tokens
        .unwrap()
        .into_iter()
        .filter(|&t| t < s.eot)
        .collect();
    expected.sort();
    assert_eq!(ours, expected);
}

#[test]
fn text_round_trip_ignores_specials_and_timestamps() {
    let Some((tokenizer, _)) = tiny_en() else {
        return;
    };
    let ids = tokenizer
        .encode(" ask not what your country can do for you")
        .unwrap();
    let mut with_specials = vec![50257, 50363];
    with_specials.extend(&ids);
    with_specials.extend([50750, 50256]);
    assert_eq!(
        tokenizer.decode_text(&with_specials).unwrap(),
        " ask not what your country can do for you"
    );
    assert_eq!(tokenizer.encode(" ").unwrap(), vec![220]);
}
