//! Constrained decoding: a JSON schema, any JSON object, a Lark or GBNF
//! grammar or a regex limits which tokens may come next.
//!
//! llguidance compiles the constraint and, after every sampled token,
//! computes the set of tokens allowed next on the host, as a bit set; we
//! upload its words as they are (V/32 `u32`s: 19 KB for a 151,936-id
//! vocabulary instead of 600 KB of floats, and no per-id loop on the host)
//! and expand them on the device into an additive `[1, V]` mask (0 allowed,
//! −∞ not) that the sampler adds to the logits before any other processing,
//! so every sampling mode (greedy, temperature, top-k/p, min-p) only ever
//! draws allowed tokens. On a GPU a small model's decode step is bound by the
//! host's work, so every microsecond the host spends per token shows.
//!
//! Pipelining (see `token_stream.rs`): the mask of step n+1 depends on token
//! n, so a constrained step is split — the forward pass of step n+1 is queued
//! (fed with token n still lazy) *before* token n is read, the host consumes
//! token n and computes the mask while the device runs that forward pass,
//! and only the (small) sampling graph waits for the mask. Still one
//! device→host read per token.

use std::sync::{Arc, OnceLock};

use llguidance::{
    api::TopLevelGrammar,
    toktrie::{InferenceCapabilities, TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv},
    Matcher, ParserFactory,
};
use serde_json::Value;

use crate::{
    sampling::{AllowedTokens, MaskWords},
    tokenizer::Tokenizer,
    Error, Result,
};

/// What the output must match (`GenerateOptions::constraint`).
#[derive(Debug, Clone, PartialEq)]
pub enum ConstraintSpec {
    /// JSON matching this schema (`responseFormat: { type: 'json_schema' }`).
    JsonSchema(Value),
    /// Any JSON object (`responseFormat: { type: 'json_object' }`).
    JsonObject,
    /// A grammar in llguidance's Lark dialect.
    Lark(String),
    /// A grammar in llama.cpp's GBNF (translated to Lark, `gbnf.rs`).
    Gbnf(String),
    /// A regular expression (Rust `regex` syntax) the whole output matches.
    Regex(String),
}

impl ConstraintSpec {
    /// The `responseFormat` and `grammar` options as the bindings receive
    /// them: `response_format` is `(type, schema)` (`'text'` = none,
    /// `'json_object'`, `'json_schema'` with a schema); `grammar` is
    /// `(kind, source)` with kind `'lark'`, `'gbnf'` or `'regex'`; without a
    /// kind, GBNF when a line defines a rule with `::=`, Lark otherwise. At
    /// most one of the two.
    pub fn from_options(
        response_format: Option<(&str, Option<Value>)>,
        grammar: Option<(Option<&str>, String)>,
    ) -> Result<Option<Self>> {
        let format = match response_format {
            None | Some(("text", None)) => None,
            Some(("json_object", None)) => Some(ConstraintSpec::JsonObject),
            Some(("json_schema", Some(schema))) => Some(ConstraintSpec::JsonSchema(schema)),
            Some(("json_schema", None)) => {
                return Err(Error::InvalidSchema(
                    "responseFormat { type: 'json_schema' } needs a schema".into(),
                ))
            }
            Some(("text" | "json_object", Some(_))) => {
                return Err(Error::invalid(
                    "responseFormat.schema goes with type 'json_schema' only",
                ))
            }
            Some((other, _)) => {
                return Err(Error::invalid(format!(
                "responseFormat.type must be 'text', 'json_object' or 'json_schema', got '{other}'"
            )))
            }
        };
        let grammar = match grammar {
            None => None,
            Some((None, source)) if super::gbnf::looks_like_gbnf(&source) => {
                Some(ConstraintSpec::Gbnf(source))
            }
            Some((None | Some("lark"), source)) => Some(ConstraintSpec::Lark(source)),
            Some((Some("gbnf"), source)) => Some(ConstraintSpec::Gbnf(source)),
            Some((Some("regex"), source)) => Some(ConstraintSpec::Regex(source)),
            Some((Some(other), _)) => {
                return Err(Error::invalid(format!(
                    "grammar.type must be 'lark', 'gbnf' or 'regex', got '{other}'"
                )))
            }
        };
        match (format, grammar) {
            (Some(_), Some(_)) => Err(Error::invalid("give responseFormat or grammar, not both")),
            (f, g) => Ok(f.or(g)),
        }
    }

    /// The option's name in messages.
    fn what(&self) -> &'static str {
        match self {
            ConstraintSpec::JsonSchema(_) | ConstraintSpec::JsonObject => "responseFormat",
            ConstraintSpec::Lark(_) | ConstraintSpec::Gbnf(_) | ConstraintSpec::Regex(_) => {
                "grammar"
            }
        }
    }

    fn error(&self, message: String) -> Error {
        match self {
            ConstraintSpec::JsonSchema(_) | ConstraintSpec::JsonObject => {
                Error::InvalidSchema(message)
            }
            ConstraintSpec::Lark(_) | ConstraintSpec::Gbnf(_) | ConstraintSpec::Regex(_) => {
                Error::InvalidGrammar(message)
            }
        }
    }

    fn grammar(&self) -> Result<TopLevelGrammar> {
        Ok(match self {
            ConstraintSpec::JsonSchema(schema) => {
                if !schema.is_object() && !schema.is_boolean() {
                    return Err(Error::InvalidSchema(
                        "responseFormat.schema must be a JSON schema object".into(),
                    ));
                }
                TopLevelGrammar::from_json_schema(compact(schema.clone()))
            }
            ConstraintSpec::JsonObject => {
                TopLevelGrammar::from_json_schema(compact(serde_json::json!({"type": "object"})))
            }
            ConstraintSpec::Lark(lark) => TopLevelGrammar::from_lark(lark.clone()),
            ConstraintSpec::Gbnf(gbnf) => TopLevelGrammar::from_lark(
                super::gbnf::to_lark(gbnf)
                    .map_err(|e| Error::InvalidGrammar(format!("invalid grammar: {e}")))?,
            ),
            ConstraintSpec::Regex(rx) => TopLevelGrammar::from_regex(rx),
        })
    }
}

/// JSON without optional whitespace unless the schema says otherwise
/// (`x-guidance`): with flexible whitespace a small model at a high
/// temperature can emit blanks until `maxTokens` and never close the value.
fn compact(mut schema: Value) -> Value {
    if let Some(map) = schema.as_object_mut() {
        map.entry("x-guidance")
            .or_insert_with(|| serde_json::json!({ "whitespace_flexible": false }));
    }
    schema
}

/// Per model: the token trie and llguidance's parser factory, built on the
/// first constrained request (a vocabulary walk: milliseconds to ~100 ms).
pub(crate) struct ConstraintCompiler {
    factory: OnceLock<std::result::Result<Arc<ParserFactory>, String>>,
}

impl ConstraintCompiler {
    pub fn new() -> Self {
        Self {
            factory: OnceLock::new(),
        }
    }

    /// Compiles `spec` into a [`Constraint`] for this model, and checks that
    /// some output can satisfy it. Errors: `ERR_INVALID_SCHEMA` /
    /// `ERR_INVALID_GRAMMAR`, before any decoding.
    pub fn compile(
        &self,
        spec: &ConstraintSpec,
        tokenizer: &Tokenizer,
        vocab_size: usize,
        eos_ids: &[u32],
    ) -> Result<Constraint> {
        let factory = self
            .factory
            .get_or_init(|| {
                token_env(tokenizer, vocab_size, eos_ids)
                    .and_then(|env| {
                        let mut factory = ParserFactory::new(
                            &env,
                            InferenceCapabilities::default(),
                            &llguidance::earley::SlicedBiasComputer::general_slices(),
                        )
                        .map_err(|e| Error::Tokenizer(format!("constrained decoding: {e}")))?;
                        // Errors come back to the caller; nothing on stderr.
                        factory.quiet();
                        Ok(Arc::new(factory))
                    })
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(Error::Tokenizer)?;
        let parser = factory
            .create_parser(spec.grammar()?)
            .map_err(|e| spec.error(format!("invalid {}: {e}", spec.what())))?;
        let mut constraint = Constraint {
            matcher: Matcher::new(Ok(parser)),
            eos_ids: eos_ids.to_vec(),
            vocab_size,
            first_mask: None,
            words: MaskWords::new(vocab_size),
            consumed: true,
        };
        // The first mask now: a grammar that no token of this vocabulary can
        // start is an error before decoding, not an empty output.
        let mask = constraint
            .allowed()
            .map_err(|e| spec.error(format!("{} cannot be matched: {e}", spec.what())))?;
        constraint.first_mask = Some(mask);
        Ok(constraint)
    }
}

/// One generation's constraint state.
pub(crate) struct Constraint {
    matcher: Matcher,
    eos_ids: Vec<u32>,
    vocab_size: usize,
    /// The allowed set computed by `compile`, used for the first token.
    first_mask: Option<Vec<u32>>,
    /// Where each step's allowed set goes to the device.
    words: MaskWords,
    /// A token was consumed since the last mask: that mask's sampling has
    /// been read, so its words may be overwritten in place.
    consumed: bool,
}

impl Constraint {
    /// Allowed next tokens as a bit set: bit `id % 32` of word `id / 32`.
    fn allowed(&mut self) -> Result<Vec<u32>> {
        let set = self
            .matcher
            .compute_mask_or_eos()
            .map_err(|e| Error::InvalidGrammar(format!("constrained decoding failed: {e}")))?;
        if set.is_zero() {
            return Err(Error::InvalidGrammar(
                "no token of this model's vocabulary can continue the output".into(),
            ));
        }
        let mut words = set.as_slice().to_vec();
        words.resize(self.vocab_size.div_ceil(32), 0);
        Ok(words)
    }

    /// The ids allowed next, as bit words the device reads (applied there).
    /// Written in place (`MaskWords::fill`) when the last mask's token has
    /// been consumed, which decoding always does first; uploaded otherwise.
    pub fn mask(&mut self) -> Result<AllowedTokens> {
        let words = match self.first_mask.take() {
            Some(m) => m,
            None => self.allowed()?,
        };
        if std::mem::replace(&mut self.consumed, false) {
            self.words.fill(&words)
        } else {
            AllowedTokens::from_bits(&words, self.vocab_size)
        }
    }

    /// Records a generated token. True when the output is complete: an EOS
    /// id (allowed only where the grammar accepts) or a token after which
    /// the grammar admits nothing more.
    pub fn consume(&mut self, id: u32) -> Result<bool> {
        self.first_mask = None;
        self.consumed = true;
        if self.eos_ids.contains(&id) {
            return Ok(true);
        }
        self.matcher
            .consume_token(id as TokenId)
            .map_err(|e| Error::Internal(format!("a sampled token broke the constraint: {e}")))?;
        Ok(self.matcher.is_stopped())
    }
}

/// toktrie's view of our tokenizer: each id's bytes (special tokens marked),
/// EOS ids, and the tokenizer itself for llguidance's own tokenizing.
struct HfTokEnv {
    trie: TokTrie,
    tokenizer: tokenizers::Tokenizer,
}

impl TokenizerEnv for HfTokEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.trie.tokenize_with_greedy_fallback(s, |s| {
            self.tokenizer
                .encode(s, false)
                .map(|e| e.get_ids().to_vec())
                .unwrap_or_default()
        })
    }
}

/// How a tokenizer spells bytes in its vocabulary.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Spelling {
    /// GPT-2 byte-level BPE: every byte is one printable character.
    ByteLevel,
    /// SentencePiece style: text with `space` for ' ', and `<0xXX>` byte tokens.
    ByteFallback { space: char },
}

fn spelling(tokenizer: &tokenizers::Tokenizer) -> Option<Spelling> {
    // The decoder says how ids become bytes; its serialized form is the
    // stable way to look inside a `Sequence` and a `Replace` pattern.
    let decoder = serde_json::to_value(tokenizer.get_decoder()?).ok()?;
    let mut byte_level = false;
    let mut byte_fallback = false;
    let mut space = ' ';
    let mut stack = vec![&decoder];
    while let Some(d) = stack.pop() {
        match d["type"].as_str() {
            Some("ByteLevel") => byte_level = true,
            Some("ByteFallback") => byte_fallback = true,
            Some("Metaspace") => {
                byte_fallback = true;
                if let Some(c) = d["replacement"].as_str().and_then(|s| s.chars().next()) {
                    space = c;
                }
            }
            Some("Replace") if d["content"] == " " => {
                if let Some(c) = d["pattern"]["String"].as_str().and_then(|s| {
                    let mut chars = s.chars();
                    chars.next().filter(|_| chars.next().is_none())
                }) {
                    space = c;
                }
            }
            Some("Sequence") => {
                if let Some(list) = d["decoders"].as_array() {
                    stack.extend(list);
                }
            }
            _ => {}
        }
    }
    if byte_level {
        Some(Spelling::ByteLevel)
    } else if byte_fallback {
        Some(Spelling::ByteFallback { space })
    } else {
        None
    }
}

/// GPT-2's byte ↔ printable character table (character → byte).
fn byte_level_chars() -> std::collections::HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 256u32;
    (0..=255u8)
        .map(|b| {
            if printable(b) {
                (b as char, b)
            } else {
                let c = char::from_u32(next).expect("valid code point");
                next += 1;
                (c, b)
            }
        })
        .collect()
}

fn token_env(tokenizer: &Tokenizer, vocab_size: usize, eos_ids: &[u32]) -> Result<TokEnv> {
    let hf = tokenizer.inner();
    let spelling = spelling(hf).ok_or_else(|| {
        Error::Tokenizer(
            "constrained decoding needs a byte-level or byte-fallback tokenizer; \
             this tokenizer's decoder is neither"
                .into(),
        )
    })?;
    let chars = byte_level_chars();
    let added = hf.get_added_tokens_decoder();
    // Ids past the tokenizer's vocabulary (padded embedding rows) become
    // special tokens that no grammar matches.
    let words: Vec<Vec<u8>> = (0..vocab_size as u32)
        .map(|id| {
            let special = |name: &str| {
                let mut bytes = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                bytes.extend_from_slice(name.as_bytes());
                bytes
            };
            if let Some(t) = added.get(&id) {
                // Added tokens that look like markup are control tokens.
                return if t.special || (t.content.starts_with('<') && t.content.ends_with('>')) {
                    special(&t.content)
                } else {
                    t.content.clone().into_bytes()
                };
            }
            let Some(name) = hf.id_to_token(id) else {
                return special(&format!("<[{id}]>"));
            };
            match spelling {
                Spelling::ByteLevel => name
                    .chars()
                    .map(|c| chars.get(&c).copied())
                    .collect::<Option<Vec<u8>>>()
                    .unwrap_or_else(|| special(&name)),
                Spelling::ByteFallback { space } => {
                    let hex = name
                        .strip_prefix("<0x")
                        .and_then(|h| h.strip_suffix('>'))
                        .filter(|h| h.len() == 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(b) => vec![b],
                        None => name.replace(space, " ").into_bytes(),
                    }
                }
            }
        })
        .collect();
    let eos = *eos_ids
        .first()
        .ok_or_else(|| Error::Tokenizer("constrained decoding needs an EOS token id".into()))?;
    let info = TokRxInfo::new(vocab_size as u32, eos);
    let mut trie = TokTrie::from(&info, &words);
    if eos_ids.len() > 1 {
        trie = trie.with_eos_tokens(eos_ids);
    }
    Ok(Arc::new(HfTokEnv {
        trie,
        tokenizer: hf.clone(),
    }))
}
