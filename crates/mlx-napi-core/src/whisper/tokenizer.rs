//! Whisper's special tokens, languages and timestamps on top of the shared
//! [`Tokenizer`] wrapper.
//!
//! Special ids are looked up by name in `tokenizer.json`, so English-only
//! (`<|endoftext|>` = 50256) and multilingual (50257) vocabularies both work.
//! Timestamp tokens are not always in `tokenizer.json` (tiny.en's stops at
//! `<|notimestamps|>`), so they are derived: the first timestamp is the id right
//! after `<|notimestamps|>`, and each next id is 20 ms later.

use std::path::Path;

use crate::{tokenizer::Tokenizer, Error, Result};

/// Seconds per timestamp token step.
pub const TIME_PRECISION: f32 = 0.02;

/// Whisper's languages in token order (`<|en|>` is the first language token).
/// large-v3 added `yue` as the 100th; earlier multilingual models have 99.
pub const LANGUAGES: [(&str, &str); 100] = [
    ("en", "english"),
    ("zh", "chinese"),
    ("de", "german"),
    ("es", "spanish"),
    ("ru", "russian"),
    ("ko", "korean"),
    ("fr", "french"),
    ("ja", "japanese"),
    ("pt", "portuguese"),
    ("tr", "turkish"),
    ("pl", "polish"),
    ("ca", "catalan"),
    ("nl", "dutch"),
    ("ar", "arabic"),
    ("sv", "swedish"),
    ("it", "italian"),
    ("id", "indonesian"),
    ("hi", "hindi"),
    ("fi", "finnish"),
    ("vi", "vietnamese"),
    ("he", "hebrew"),
    ("uk", "ukrainian"),
    ("el", "greek"),
    ("ms", "malay"),
    ("cs", "czech"),
    ("ro", "romanian"),
    ("da", "danish"),
    ("hu", "hungarian"),
    ("ta", "tamil"),
    ("no", "norwegian"),
    ("th", "thai"),
    ("ur", "urdu"),
    ("hr", "croatian"),
    ("bg", "bulgarian"),
    ("lt", "lithuanian"),
    ("la", "latin"),
    ("mi", "maori"),
    ("ml", "malayalam"),
    ("cy", "welsh"),
    ("sk", "slovak"),
    ("te", "telugu"),
    ("fa", "persian"),
    ("lv", "latvian"),
    ("bn", "bengali"),
    ("sr", "serbian"),
    ("az", "azerbaijani"),
    ("sl", "slovenian"),
    ("kn", "kannada"),
    ("et", "estonian"),
    ("mk", "macedonian"),
    ("br", "breton"),
    ("eu", "basque"),
    ("is", "icelandic"),
    ("hy", "armenian"),
    ("ne", "nepali"),
    ("mn", "mongolian"),
    ("bs", "bosnian"),
    ("kk", "kazakh"),
    ("sq", "albanian"),
    ("sw", "swahili"),
    ("gl", "galician"),
    ("mr", "marathi"),
    ("pa", "punjabi"),
    ("si", "sinhala"),
    ("km", "khmer"),
    ("sn", "shona"),
    ("yo", "yoruba"),
    ("so", "somali"),
    ("af", "afrikaans"),
    ("oc", "occitan"),
    ("ka", "georgian"),
    ("be", "belarusian"),
    ("tg", "tajik"),
    ("sd", "sindhi"),
    ("gu", "gujarati"),
    ("am", "amharic"),
    ("yi", "yiddish"),
    ("lo", "lao"),
    ("uz", "uzbek"),
    ("fo", "faroese"),
    ("ht", "haitian creole"),
    ("ps", "pashto"),
    ("tk", "turkmen"),
    ("nn", "nynorsk"),
    ("mt", "maltese"),
    ("sa", "sanskrit"),
    ("lb", "luxembourgish"),
    ("my", "myanmar"),
    ("bo", "tibetan"),
    ("tl", "tagalog"),
    ("mg", "malagasy"),
    ("as", "assamese"),
    ("tt", "tatar"),
    ("haw", "hawaiian"),
    ("ln", "lingala"),
    ("ha", "hausa"),
    ("ba", "bashkir"),
    ("jw", "javanese"),
    ("su", "sundanese"),
    ("yue", "cantonese"),
];

/// What the decoder is asked to do (multilingual models only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Task {
    #[default]
    Transcribe,
    /// Speech in any language → English text.
    Translate,
}

/// Special token ids of one vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    pub eot: u32,
    pub sot: u32,
    pub sot_prev: u32,
    pub transcribe: u32,
    pub translate: u32,
    /// `<|nospeech|>` (`<|nocaptions|>` in older vocabularies).
    pub no_speech: u32,
    pub no_timestamps: u32,
    pub timestamp_begin: u32,
}

pub struct WhisperTokenizer {
    inner: Tokenizer,
    special: SpecialTokens,
    /// `(code, token id)` of the languages this model knows, in token order.
    languages: Vec<(&'static str, u32)>,
}

impl WhisperTokenizer {
    /// Loads `dir/tokenizer.json` for a model with `num_languages` language tokens
    /// (0 for English-only models).
    pub fn load(dir: &Path, num_languages: usize) -> Result<Self> {
        Self::new(Tokenizer::load(dir)?, num_languages)
    }

    pub fn new(inner: Tokenizer, num_languages: usize) -> Result<Self> {
        let id = |names: &[&str]| -> Result<u32> {
            names
                .iter()
                .find_map(|n| inner.token_to_id(n))
                .ok_or_else(|| {
                    Error::format(format!(
                        "tokenizer.json lacks the Whisper token {}",
                        names[0]
                    ))
                })
        };
        let no_timestamps = id(&["<|notimestamps|>"])?;
        let special = SpecialTokens {
            eot: id(&["<|endoftext|>"])?,
            sot: id(&["<|startoftranscript|>"])?,
            sot_prev: id(&["<|startofprev|>"])?,
            transcribe: id(&["<|transcribe|>"])?,
            translate: id(&["<|translate|>"])?,
            no_speech: id(&["<|nospeech|>", "<|nocaptions|>"])?,
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
        };
        let mut languages = Vec::with_capacity(num_languages);
        for &(code, _) in LANGUAGES.iter().take(num_languages) {
            // Hugging Face's vocabularies spell Hebrew with the old code "iw".
            let alias = if code == "he" { "iw" } else { code };
            languages.push((
                code,
                id(&[&format!("<|{code}|>"), &format!("<|{alias}|>")])?,
            ));
        }
        Ok(WhisperTokenizer {
            inner,
            special,
            languages,
        })
    }

    pub fn special(&self) -> &SpecialTokens {
        &self.special
    }

    pub fn is_multilingual(&self) -> bool {
        !self.languages.is_empty()
    }

    /// Known languages as `(code, token id)`.
    pub fn languages(&self) -> &[(&'static str, u32)] {
        &self.languages
    }

    /// Token of language `code` (e.g. "en", or a name like "english").
    pub fn language_token(&self, code: &str) -> Result<u32> {
        let wanted = code.to_ascii_lowercase();
        let code = LANGUAGES
            .iter()
            .find(|(c, name)| *c == wanted || *name == wanted)
            .map(|(c, _)| *c)
            .ok_or_else(|| Error::invalid(format!("unknown language {code:?}")))?;
        self.languages
            .iter()
            .find(|(c, _)| *c == code)
            .map(|&(_, id)| id)
            .ok_or_else(|| Error::invalid(format!("this model does not know language {code:?}")))
    }

    /// Code of a language token.
    pub fn language_code(&self, token: u32) -> Option<&'static str> {
        self.languages
            .iter()
            .find(|&&(_, id)| id == token)
            .map(|&(c, _)| c)
    }

    /// Decoder prompt start: `<|startoftranscript|>`, then for multilingual models
    /// the language and the task, then `<|notimestamps|>` unless timestamps are on.
    pub fn sot_sequence(&self, language: Option<u32>, task: Task, timestamps: bool) -> Vec<u32> {
        let mut seq = vec![self.special.sot];
        if self.is_multilingual() {
            // Language detection fills this in; English is the fallback.
            seq.push(language.unwrap_or(self.languages[0].1));
            seq.push(match task {
                Task::Transcribe => self.special.transcribe,
                Task::Translate => self.special.translate,
            });
        }
        if !timestamps {
            seq.push(self.special.no_timestamps);
        }
        seq
    }

    /// Text tokens of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.inner.encode(text, false)
    }

    /// Text of `tokens`, ignoring special and timestamp tokens.
    pub fn decode_text(&self, tokens: &[u32]) -> Result<String> {
        let text: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|&t| t < self.special.eot)
            .collect();
        self.inner.decode(&text, false)
    }

    pub fn is_timestamp(&self, token: u32) -> bool {
        token >= self.special.timestamp_begin
    }

    /// Seconds of a timestamp token relative to its window.
    pub fn timestamp_seconds(&self, token: u32) -> f32 {
        token.saturating_sub(self.special.timestamp_begin) as f32 * TIME_PRECISION
    }

    /// openai-whisper's `non_speech_tokens`: ids of symbols and speaker tags the
    /// model should not emit (used when the checkpoint has no `suppress_tokens`).
    pub fn non_speech_tokens(&self) -> Result<Vec<u32>> {
        let mut symbols: Vec<String> = "\"#()*+/:;<=>@[\\]^_`{|}~「」『』"
            .chars()
            .map(String::from)
            .collect();
        symbols.extend(
            "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪"
                .split(' ')
                .map(String::from),
        );
        // Musical notes are multi-byte: their first byte token is enough to ban them.
        let notes: Vec<String> = "♩♪♫♬♭♮♯".chars().map(String::from).collect();
        let mut ids = std::collections::BTreeSet::new();
        ids.insert(self.encode(" -")?[0]);
        ids.insert(self.encode(" '")?[0]);
        for (symbol, is_note) in symbols
            .iter()
            .map(|s| (s, false))
            .chain(notes.iter().map(|s| (s, true)))
        {
            for tokens in [self.encode(symbol)?, self.encode(&format!(" {symbol}"))?] {
                if tokens.len() == 1 || (is_note && !tokens.is_empty()) {
                    ids.insert(tokens[0]);
                }
            }
        }
        Ok(ids.into_iter().collect())
    }
}
