//! Constrained decoding on SmolLM2-135M (CPU): JSON schemas, any JSON
//! object, Lark and GBNF grammars and regexes, alone, in a batch and in a chat
//! session; coded errors before decoding. Sampling at temperature 1 with
//! many seeds, so that the mask — not the model's preference — is what
//! keeps the output valid.

mod common;

use std::ops::ControlFlow;

use mlx_napi_core::{
    llm::{
        host_reads, ConstraintSpec, FinishReason, GenerateOptions, GenerationResult, Llm,
        LoadOptions, Prompt,
    },
    sampling::SamplerConfig,
    tokenizer::ChatMessage,
    ErrorCode,
};
use serde_json::{json, Value};

fn load() -> Option<Llm> {
    let Some(dir) = common::smollm2_dir() else {
        eprintln!("skipping: ../shared/models/smollm2-135m-instruct-4bit not found");
        return None;
    };
    Some(Llm::load(dir.to_str().unwrap(), LoadOptions::default()).unwrap())
}

fn sampled(seed: u64, max_tokens: usize, constraint: ConstraintSpec) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        sampler: SamplerConfig {
            temperature: 1.0,
            seed: Some(seed),
            ..Default::default()
        },
        constraint: Some(constraint),
        ..Default::default()
    }
}

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "maxLength": 12 },
            "age": { "type": "integer", "minimum": 0, "maximum": 120 },
            "role": { "enum": ["admin", "user", "guest"] },
            "tags": {
                "type": "array",
                "items": { "type": "string", "maxLength": 8 },
                "maxItems": 3
            },
            "address": {
                "type": "object",
                "properties": {
                    "city": { "type": "string", "maxLength": 10 },
                    "zip": { "type": "integer", "minimum": 10000, "maximum": 99999 }
                },
                "required": ["city", "zip"],
                "additionalProperties": false
            }
        },
        "required": ["name", "age", "role", "tags", "address"],
        "additionalProperties": false
    })
}

/// The schema's rules, checked by hand (the JS tests use a full validator).
fn check_person(v: &Value) -> Result<(), String> {
    let o = v.as_object().ok_or("not an object")?;
    let keys: Vec<&str> = o.keys().map(String::as_str).collect();
    for k in ["name", "age", "role", "tags", "address"] {
        if !o.contains_key(k) {
            return Err(format!("missing {k}"));
        }
    }
    if keys.len() != 5 {
        return Err(format!("extra keys: {keys:?}"));
    }
    if o["name"].as_str().ok_or("name")?.chars().count() > 12 {
        return Err("name too long".into());
    }
    let age = o["age"].as_i64().ok_or("age not an integer")?;
    if !(0..=120).contains(&age) {
        return Err(format!("age {age} out of range"));
    }
    if !["admin", "user", "guest"].contains(&o["role"].as_str().ok_or("role")?) {
        return Err("role not in enum".into());
    }
    let tags = o["tags"].as_array().ok_or("tags")?;
    if tags.len() > 3
        || tags
            .iter()
            .any(|t| t.as_str().is_none_or(|t| t.chars().count() > 8))
    {
        return Err("bad tags".into());
    }
    let addr = o["address"].as_object().ok_or("address")?;
    if addr.len() != 2 || addr["city"].as_str().is_none_or(|c| c.chars().count() > 10) {
        return Err("bad address".into());
    }
    let zip = addr["zip"].as_i64().ok_or("zip")?;
    if !(10000..=99999).contains(&zip) {
        return Err(format!("zip {zip} out of range"));
    }
    Ok(())
}

#[test]
fn json_schema_outputs_always_validate() {
    let Some(llm) = load() else { return };
    let prompt = [ChatMessage::new(
        "user",
        "Describe a user of a website as JSON.",
    )];
    for seed in 0..6 {
        let options = sampled(seed, 200, ConstraintSpec::JsonSchema(person_schema()));
        let before = host_reads();
        let r = llm
            .generate(Prompt::Messages(&prompt), &options, &mut |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(
            r.finish_reason,
            FinishReason::Stop,
            "seed {seed}: {}",
            r.text
        );
        let v: Value = serde_json::from_str(&r.text)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}: {}", r.text));
        check_person(&v).unwrap_or_else(|e| panic!("seed {seed}: {e}: {}", r.text));
        // Still one device→host read per generated token.
        assert_eq!(host_reads() - before, r.token_ids.len() as u64);
    }
}

/// A whole JSON object, or (cut by maxTokens) the start of one.
fn assert_json_object(r: &GenerationResult) {
    if r.finish_reason == FinishReason::Stop {
        let v: Value = serde_json::from_str(&r.text).unwrap_or_else(|e| panic!("{e}: {}", r.text));
        assert!(v.is_object(), "{}", r.text);
    } else {
        assert!(r.text.starts_with('{'), "{}", r.text);
    }
}

#[test]
fn json_object_regex_and_lark() {
    let Some(llm) = load() else { return };
    let prompt = Prompt::Text("Here is some data:");
    for seed in 0..4 {
        let r = llm
            .generate(
                prompt,
                &sampled(seed, 120, ConstraintSpec::JsonObject),
                &mut |_| ControlFlow::Continue(()),
            )
            .unwrap();
        assert_json_object(&r);

        let rx = ConstraintSpec::Regex(r"(yes|no), [0-9]{2,4}".into());
        let r = llm
            .generate(prompt, &sampled(seed, 20, rx), &mut |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
        let (word, digits) = r
            .text
            .split_once(", ")
            .unwrap_or_else(|| panic!("{}", r.text));
        assert!(word == "yes" || word == "no", "{}", r.text);
        assert!((2..=4).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(r.finish_reason, FinishReason::Stop);

        let lark = ConstraintSpec::Lark(
            "start: color \" \" animal\ncolor: \"red\" | \"green\" | \"blue\"\nanimal: \"cat\" | \"dog\"".into(),
        );
        let r = llm
            .generate(prompt, &sampled(seed, 20, lark), &mut |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
        let (c, a) = r
            .text
            .split_once(' ')
            .unwrap_or_else(|| panic!("{}", r.text));
        assert!(
            ["red", "green", "blue"].contains(&c) && ["cat", "dog"].contains(&a),
            "{}",
            r.text
        );
    }
}

#[test]
fn constrained_rows_decode_in_one_batch() {
    let Some(llm) = load() else { return };
    let messages = [ChatMessage::new(
        "user",
        "Describe a user of a website as JSON.",
    )];
    let text = "Once upon a time";
    let prompts = [
        Prompt::Messages(&messages),
        Prompt::Text(text),
        Prompt::Messages(&messages),
        Prompt::Text(text),
    ];
    // One options value for all rows: two batches, one constrained and
    // one free, show both kinds of step; the mixed case is the JS test's.
    let constrained = sampled(7, 200, ConstraintSpec::JsonSchema(person_schema()));
    for r in llm.generate_batch(&prompts, &constrained, 4) {
        let r = r.unwrap();
        let v: Value = serde_json::from_str(&r.text).unwrap_or_else(|e| panic!("{e}: {}", r.text));
        check_person(&v).unwrap_or_else(|e| panic!("{e}: {}", r.text));
    }
}

#[test]
fn chat_turns_with_a_schema_keep_the_session() {
    let Some(llm) = load() else { return };
    let mut session = llm.chat_session();
    let schema = json!({
        "type": "object",
        "properties": { "answer": { "enum": ["yes", "no"] } },
        "required": ["answer"],
        "additionalProperties": false
    });
    let ask = |q: &str| [ChatMessage::new("user", q)];
    let r = llm
        .chat(
            &mut session,
            &ask("Is the sky blue?"),
            &sampled(1, 40, ConstraintSpec::JsonSchema(schema.clone())),
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap();
    assert_eq!(r.finish_reason, FinishReason::Stop, "{}", r.text);
    let v: Value = serde_json::from_str(&r.text).unwrap();
    assert!(v["answer"] == "yes" || v["answer"] == "no", "{}", r.text);
    assert_eq!(session.messages().len(), 2);
    // A bad schema on the next turn is refused and leaves the session as it was.
    let err = llm
        .chat(
            &mut session,
            &ask("And grass?"),
            &sampled(1, 40, ConstraintSpec::JsonSchema(json!({"type": "wat"}))),
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidSchema);
    assert_eq!(session.messages().len(), 2);
    let cached = session.cached_token_ids().len();
    assert!(cached > 0);
    let r = llm
        .chat(
            &mut session,
            &ask("And grass?"),
            &sampled(2, 40, ConstraintSpec::JsonSchema(schema)),
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap();
    serde_json::from_str::<Value>(&r.text).unwrap();
    // The earlier turns came from the cache.
    assert!(r.usage.prefilled_tokens < r.usage.prompt_tokens);
}

/// JSON in GBNF, as llama.cpp's grammars write it (terminal rules for
/// strings, numbers and blanks; recursive values).
const JSON_GBNF: &str = r#"
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::=
  "{" ws (
    string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws
array  ::=
  "[" ws (
    value
    ("," ws value)*
  )? "]" ws
string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
  )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9]{1,3})? ws
# blanks, bounded
ws ::= | " " | "\n" [ \t]{0,20}
"#;

#[test]
fn gbnf_grammars_hold_at_temperature_one() {
    let Some(llm) = load() else { return };
    let prompt = Prompt::Text("Here is some data:");
    // Without a type, a grammar with `::=` rules is GBNF.
    let spec = ConstraintSpec::from_options(None, Some((None, JSON_GBNF.into()))).unwrap();
    assert_eq!(spec, Some(ConstraintSpec::Gbnf(JSON_GBNF.into())));
    let list = ConstraintSpec::Gbnf(
        "root ::= item{1,3}\nitem ::= \"- \" word (\" \" word){0,2} \"\\n\"\nword ::= [a-z]{1,10}\n"
            .into(),
    );
    for seed in 0..3 {
        let r = llm
            .generate(
                prompt,
                &sampled(seed, 100, spec.clone().unwrap()),
                &mut |_| ControlFlow::Continue(()),
            )
            .unwrap();
        assert_json_object(&r);

        let r = llm
            .generate(prompt, &sampled(seed, 150, list.clone()), &mut |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(r.finish_reason, FinishReason::Stop, "{:?}", r.text);
        let lines: Vec<&str> = r
            .text
            .strip_suffix('\n')
            .unwrap_or("")
            .split('\n')
            .collect();
        assert!((1..=3).contains(&lines.len()), "{:?}", r.text);
        for line in lines {
            let words: Vec<&str> = line
                .strip_prefix("- ")
                .unwrap_or_else(|| panic!("{:?}", r.text))
                .split(' ')
                .collect();
            assert!((1..=3).contains(&words.len()), "{:?}", r.text);
            assert!(
                words
                    .iter()
                    .all(|w| (1..=10).contains(&w.len())
                        && w.bytes().all(|b| b.is_ascii_lowercase())),
                "{:?}",
                r.text
            );
        }
    }
}

#[test]
fn invalid_and_impossible_constraints_are_coded_errors() {
    let Some(llm) = load() else { return };
    let prompt = Prompt::Text("Hi");
    let run = |spec: ConstraintSpec| {
        llm.generate(prompt, &sampled(0, 8, spec), &mut |_| {
            ControlFlow::Continue(())
        })
    };
    let cases = [
        (
            ConstraintSpec::JsonSchema(json!({"type": "wat"})),
            ErrorCode::InvalidSchema,
        ),
        (
            ConstraintSpec::JsonSchema(json!("a string")),
            ErrorCode::InvalidSchema,
        ),
        (
            ConstraintSpec::JsonSchema(json!({"type": "integer", "minimum": 5, "maximum": 1})),
            ErrorCode::InvalidSchema,
        ),
        (
            ConstraintSpec::Lark("start: (".into()),
            ErrorCode::InvalidGrammar,
        ),
        (
            ConstraintSpec::Lark("start: undefined_rule".into()),
            ErrorCode::InvalidGrammar,
        ),
        (
            ConstraintSpec::Regex("a(".into()),
            ErrorCode::InvalidGrammar,
        ),
        (
            ConstraintSpec::Gbnf("root ::= \"a".into()),
            ErrorCode::InvalidGrammar,
        ),
        (
            ConstraintSpec::Gbnf("root ::= missing".into()),
            ErrorCode::InvalidGrammar,
        ),
        (ConstraintSpec::Regex("".into()), ErrorCode::InvalidGrammar),
    ];
    for (spec, code) in cases {
        let shown = format!("{spec:?}");
        let err = run(spec).expect_err(&shown);
        assert_eq!(err.code(), code, "{shown}: {err}");
    }
    // Still usable, constrained or not.
    let r = run(ConstraintSpec::Regex("[a-z]{3}".into())).unwrap();
    assert_eq!(r.text.len(), 3, "{}", r.text);
    let free = GenerateOptions {
        max_tokens: 4,
        ..Default::default()
    };
    assert_eq!(
        llm.generate(prompt, &free, &mut |_| ControlFlow::Continue(()))
            .unwrap()
            .token_ids
            .len(),
        4
    );
}
