mod common;

use mlx_napi_core::tokenizer::{ChatMessage, Tokenizer};

fn smollm2() -> Option<Tokenizer> {
    common::smollm2_dir().map(|dir| Tokenizer::load(&dir).unwrap())
}

#[test]
fn ids_tokens_and_decoding_match_the_reference() {
    let (Some(tok), Some(reference)) = (
        smollm2(),
        common::shared("reference/smollm2-tokenizer.json"),
    ) else {
        return;
    };
    let reference = common::read_json(&reference);
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 14);
    assert_eq!(
        tok.vocab_size(),
        reference["vocab_size_with_added_tokens"].as_u64().unwrap() as usize
    );
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        assert_eq!(tok.encode(text, false).unwrap(), expected, "ids of {name}");
        assert_eq!(
            tok.encode(text, true).unwrap(),
            expected,
            "ids (special) of {name}"
        );
        let tokens: Vec<String> = serde_json::from_value(case["tokens"].clone()).unwrap();
        let ours: Vec<String> = expected
            .iter()
            .map(|&id| tok.inner().id_to_token(id).unwrap())
            .collect();
        assert_eq!(ours, tokens, "tokens of {name}");
        assert_eq!(
            tok.decode(&expected, false).unwrap(),
            case["decoded"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            tok.decode(&expected, true).unwrap(),
            case["decoded_skip_special_tokens"].as_str().unwrap(),
            "{name}"
        );
    }
}

#[test]
fn stream_decoder_reassembles_every_reference_string() {
    let (Some(tok), Some(reference)) = (
        smollm2(),
        common::shared("reference/smollm2-tokenizer.json"),
    ) else {
        return;
    };
    let reference = common::read_json(&reference);
    for case in reference["cases"].as_array().unwrap() {
        let ids: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        let mut decoder = tok.stream_decoder(false);
        let mut text = String::new();
        for &id in &ids {
            let piece = decoder.push(id).unwrap();
            // Pieces are valid UTF-8 by type; they must never carry a
            // replacement char for a split multi-byte character.
            assert!(
                !piece.contains('\u{FFFD}'),
                "{}: piece {piece:?}",
                case["name"]
            );
            text.push_str(&piece);
        }
        text.push_str(&decoder.finish().unwrap());
        assert_eq!(text, case["decoded"].as_str().unwrap(), "{}", case["name"]);
    }
}

#[test]
fn stream_decoder_holds_back_split_characters() {
    let Some(tok) = smollm2() else { return };
    // Emoji are several byte-level tokens each.
    let text = "a 👩‍👩‍👧 b 🇫🇷 c 日本語";
    let ids = tok.encode(text, false).unwrap();
    assert!(ids.len() > text.chars().count() / 2);
    let mut decoder = tok.stream_decoder(false);
    let mut held_back = 0;
    let mut out = String::new();
    for &id in &ids {
        let piece = decoder.push(id).unwrap();
        if piece.is_empty() {
            held_back += 1;
        }
        out.push_str(&piece);
    }
    out.push_str(&decoder.finish().unwrap());
    assert_eq!(out, text);
    assert!(held_back > 0, "some tokens must end mid-character");
}

#[test]
fn chat_template_matches_the_reference_prompts() {
    let (Some(tok), Some(reference)) = (smollm2(), common::shared("reference/smollm2-greedy.json"))
    else {
        return;
    };
    let reference = common::read_json(&reference);
    let mut checked = 0;
    for prompt in reference["prompts"].as_array().unwrap() {
        if prompt["kind"] != "chat" {
            continue;
        }
        let messages: Vec<ChatMessage> = prompt["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let rendered = tok.apply_chat_template(&messages, true).unwrap();
        assert_eq!(rendered, prompt["prompt"].as_str().unwrap());
        let expected: Vec<u32> =
            serde_json::from_value(prompt["prompt_token_ids"].clone()).unwrap();
        assert_eq!(tok.encode(&rendered, false).unwrap(), expected);
        checked += 1;
    }
    assert_eq!(checked, 2);
    // Without the generation prompt the assistant header is absent.
    let plain = tok
        .apply_chat_template(&[ChatMessage::new("user", "hi")], false)
        .unwrap();
    assert!(
        plain.ends_with("<|im_start|>user\nhi<|im_end|>\n"),
        "{plain:?}"
    );
    assert_eq!(tok.eos_token(), Some("<|im_end|>"));
}

#[test]
fn template_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let Some(src) = common::smollm2_dir() else {
        return;
    };
    std::fs::copy(
        src.join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("chat_template.jinja"),
        "{% if messages|length == 0 %}{{ raise_exception('need messages') }}{% endif %}{{ messages[0].content }}",
    )
    .unwrap();
    let tok = Tokenizer::load(dir.path()).unwrap();
    let err = tok.apply_chat_template(&[], true).unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_INVALID_ARG");
    assert!(err.to_string().contains("need messages"), "{err}");
    assert_eq!(
        tok.apply_chat_template(&[ChatMessage::new("user", "x")], true)
            .unwrap(),
        "x"
    );
    // A syntax error fails at load.
    std::fs::write(dir.path().join("chat_template.jinja"), "{% if %}").unwrap();
    let err = Tokenizer::load(dir.path()).err().unwrap();
    assert_eq!(err.code().as_str(), "ERR_MODEL_FORMAT");
    // No tokenizer.json at all.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        Tokenizer::load(empty.path()).err().unwrap().code().as_str(),
        "ERR_MODEL_NOT_FOUND"
    );
}

/// SentencePiece-style decoders drop the leading space of the first token
/// only; streamed pieces must still carry the spaces between words.
#[test]
fn stream_decoder_keeps_inner_spaces_with_a_metaspace_decoder() {
    use tokenizers::{decoders::metaspace::Metaspace, models::wordlevel::WordLevel};
    let vocab = [("▁Hello", 0u32), ("▁world", 1), ("!", 2), ("▁é", 3)]
        .into_iter()
        .map(|(t, i)| (t.to_string(), i))
        .collect();
    let model = WordLevel::builder()
        .vocab(vocab)
        .unk_token("!".into())
        .build()
        .unwrap();
    let mut inner = tokenizers::Tokenizer::new(model);
    inner.with_decoder(Some(Metaspace::default()));
    let tok = Tokenizer::from_tokenizer(inner);
    let ids = [0, 1, 2, 3, 1];
    assert_eq!(tok.decode(&ids, false).unwrap(), "Hello world! é world");
    let mut decoder = tok.stream_decoder(false);
    let pieces: Vec<String> = ids.iter().map(|&id| decoder.push(id).unwrap()).collect();
    assert_eq!(pieces, vec!["Hello", " world", "!", " é", " world"]);
    assert_eq!(decoder.finish().unwrap(), "");
}

/// Gemma 3's chat template (as its checkpoints ship it; committed beside the
/// gemma3 fixture): the system message folds into the first user turn,
/// `assistant` becomes `model`, list contents are read item by item, roles
/// must alternate. Expected output rendered with Python's jinja2 the way
/// transformers does (trim/lstrip blocks).
#[test]
fn gemma3_chat_template_renders_as_transformers_does() {
    use tokenizers::models::wordlevel::WordLevel;
    let dir = tempfile::tempdir().unwrap();
    let vocab = [("<bos>", 0u32), ("x", 1)]
        .into_iter()
        .map(|(t, i)| (t.to_string(), i))
        .collect();
    let model = WordLevel::builder()
        .vocab(vocab)
        .unk_token("x".into())
        .build()
        .unwrap();
    tokenizers::Tokenizer::new(model)
        .save(dir.path().join("tokenizer.json"), false)
        .unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"bos_token": "<bos>", "eos_token": "<eos>"}"#,
    )
    .unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/gemma3/chat_template.jinja"),
        dir.path().join("chat_template.jinja"),
    )
    .unwrap();
    let tok = Tokenizer::load(dir.path()).unwrap();
    let messages = serde_json::json!([
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": " Hi "},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": [{"type": "text", "text": "Bye"}]},
    ]);
    assert_eq!(
        tok.apply_chat_template_json(&messages, true, None).unwrap(),
        "<bos><start_of_turn>user\nYou are terse.\n\nHi<end_of_turn>\n<start_of_turn>model\n\
         Hello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    );
    let err = tok
        .apply_chat_template(
            &[
                ChatMessage::new("assistant", "first"),
                ChatMessage::new("user", "x"),
            ],
            true,
        )
        .unwrap_err();
    assert!(err.to_string().contains("must alternate"), "{err}");
}
