//! Tokenizer wrapper shared by the engines: `tokenizer.json` through the
//! `tokenizers` crate, a streaming detokenizer, and Jinja chat templates.

use std::path::Path;

use minijinja::{Environment, ErrorKind};
use serde::Serialize;

use crate::{loading::read_json_opt, Error, Result};

/// One chat message for [`Tokenizer::apply_chat_template`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    /// An assistant message's tool calls, OpenAI-shaped
    /// (`{ id, type: 'function', function: { name, arguments } }`); the
    /// template sees `arguments` as an object (what HF templates expect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<serde_json::Value>>,
    /// A `tool` message's answer to this call id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
        }
    }

    /// The message as a chat template sees it: tool-call arguments given as
    /// JSON text become objects.
    pub fn to_template_value(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(calls) = value.get_mut("tool_calls").and_then(|c| c.as_array_mut()) {
            for call in calls {
                if let Some(args) = call.pointer_mut("/function/arguments") {
                    if let Some(parsed) = args
                        .as_str()
                        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                    {
                        *args = parsed;
                    }
                }
            }
        }
        value
    }
}

#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    chat_template: Option<String>,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

fn tok_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(format!("{what}: {e}"))
}

impl Tokenizer {
    /// Loads `tokenizer.json`, plus `tokenizer_config.json` (special tokens,
    /// chat template) and `chat_template.jinja` when present (it wins over the
    /// config's template, as in transformers).
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(Error::ModelNotFound(format!(
                "tokenizer.json not found in {}",
                dir.display()
            )));
        }
        let bytes =
            crate::loading::files::read_capped(&path, crate::loading::files::MAX_TOKENIZER_BYTES)?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes)
            .map_err(|e| Error::format(format!("{}: {e}", path.display())))?;
        let config: serde_json::Value =
            read_json_opt(dir, "tokenizer_config.json")?.unwrap_or(serde_json::Value::Null);
        let token_text = |key: &str| match config.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Object(o)) => {
                o.get("content").and_then(|c| c.as_str()).map(String::from)
            }
            _ => None,
        };
        let jinja_path = dir.join("chat_template.jinja");
        let chat_template = if jinja_path.exists() {
            Some(crate::loading::files::read_text_capped(
                &jinja_path,
                crate::loading::files::MAX_TEMPLATE_BYTES,
            )?)
        } else {
            match config.get("chat_template") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                // A list of named templates: use "default".
                Some(serde_json::Value::Array(list)) => list
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .and_then(|t| t.get("template")?.as_str().map(String::from)),
                _ => None,
            }
        };
        let tokenizer = Self {
            inner,
            bos_token: token_text("bos_token"),
            eos_token: token_text("eos_token"),
            chat_template,
        };
        if let Some(template) = &tokenizer.chat_template {
            // Surface syntax errors at load time rather than at the first chat.
            template_env(template).map_err(|e| Error::format(format!("chat template: {e:#}")))?;
        }
        Ok(tokenizer)
    }

    /// Replaces the chat template (checked like one read at load:
    /// `ERR_MODEL_FORMAT` when it does not compile).
    pub fn with_chat_template(mut self, template: impl Into<String>) -> Result<Self> {
        let template = template.into();
        template_env(&template).map_err(|e| Error::format(format!("chat template: {e:#}")))?;
        self.chat_template = Some(template);
        Ok(self)
    }

    /// Wraps an existing `tokenizers` tokenizer (no chat template).
    pub fn from_tokenizer(inner: tokenizers::Tokenizer) -> Self {
        Self {
            inner,
            chat_template: None,
            bos_token: None,
            eos_token: None,
        }
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    /// Whether the chat template renders a `tools` variable (else tools are
    /// described to the model in a system message).
    pub fn template_knows_tools(&self) -> bool {
        self.chat_template
            .as_deref()
            .is_some_and(|t| t.contains("tools"))
    }

    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| tok_err("encode", e))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| tok_err("decode", e))
    }

    /// Renders the chat template for `messages` (role/content pairs).
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let messages = serde_json::Value::Array(
            messages
                .iter()
                .map(ChatMessage::to_template_value)
                .collect(),
        );
        self.apply_chat_template_json(&messages, add_generation_prompt, None)
    }

    /// Renders the chat template with arbitrary JSON `messages` (e.g. with tool
    /// calls) and extra template variables (`tools`, `enable_thinking`, ...).
    pub fn apply_chat_template_json(
        &self,
        messages: &serde_json::Value,
        add_generation_prompt: bool,
        extra: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<String> {
        let template = self.chat_template.as_ref().ok_or_else(|| {
            Error::invalid(
                "this model has no chat template (tokenizer_config.json / chat_template.jinja)",
            )
        })?;
        if !messages.is_array() {
            return Err(Error::invalid("chat messages must be an array"));
        }
        let env =
            template_env(template).map_err(|e| Error::format(format!("chat template: {e:#}")))?;
        let mut context = extra.cloned().unwrap_or_default();
        context.insert("messages".into(), messages.clone());
        context.insert("add_generation_prompt".into(), add_generation_prompt.into());
        context.insert(
            "bos_token".into(),
            self.bos_token.clone().unwrap_or_default().into(),
        );
        context.insert(
            "eos_token".into(),
            self.eos_token.clone().unwrap_or_default().into(),
        );
        env.get_template("chat")
            .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&context))))
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidOperation => Error::invalid(format!("chat template: {e:#}")),
                _ => Error::Tokenizer(format!("chat template: {e:#}")),
            })
    }

    /// A streaming detokenizer over this tokenizer.
    pub fn stream_decoder(&self, skip_special_tokens: bool) -> StreamDecoder<'_> {
        StreamDecoder {
            tokenizer: self,
            ids: Vec::new(),
            prefix_offset: 0,
            read_offset: 0,
            skip_special_tokens,
        }
    }
}

/// A Jinja environment configured like transformers' chat templating
/// (trim/lstrip blocks, Python string methods, `raise_exception`, `strftime_now`).
fn template_env(source: &str) -> std::result::Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()?,
    );
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        },
    );
    env.add_function("strftime_now", |format: String| strftime_now(&format));
    env.add_template_owned("chat", source.to_string())?;
    Ok(env)
}

/// Today's UTC date for templates that print it (Llama 3): supports %d %m %Y
/// %y %b %B; other directives are left as written.
fn strftime_now(format: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let name = MONTHS[(month - 1) as usize];
    format
        .replace("%d", &format!("{day:02}"))
        .replace("%m", &format!("{month:02}"))
        .replace("%Y", &year.to_string())
        .replace("%y", &format!("{:02}", year % 100))
        .replace("%B", name)
        .replace("%b", &name[..3])
}

/// Turns a stream of token ids into text pieces that are always valid UTF-8.
///
/// Byte-level BPE may split one character over several tokens, and some
/// decoders drop the leading space of the first token of a sequence. So each
/// step decodes a small window of recent tokens twice — with and without the
/// new ones — and emits the difference, holding text back while it ends in an
/// incomplete character (U+FFFD).
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    ids: Vec<u32>,
    /// Start of the decoding window (kept so leading-space handling and
    /// multi-token characters see some context).
    prefix_offset: usize,
    /// End of the already-emitted tokens.
    read_offset: usize,
    skip_special_tokens: bool,
}

impl StreamDecoder<'_> {
    /// Adds a token; returns the newly completed text (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let window = &self.ids[self.prefix_offset..];
        let before = self.tokenizer.decode(
            &self.ids[self.prefix_offset..self.read_offset],
            self.skip_special_tokens,
        )?;
        let after = self.tokenizer.decode(window, self.skip_special_tokens)?;
        if after.len() > before.len() && !after.ends_with('\u{FFFD}') && after.starts_with(&before)
        {
            let piece = after[before.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            Ok(piece)
        } else {
            Ok(String::new())
        }
    }

    /// Text still held back (an incomplete character at the very end is
    /// emitted as U+FFFD, as a full decode would show it).
    pub fn finish(&mut self) -> Result<String> {
        if self.read_offset == self.ids.len() {
            return Ok(String::new());
        }
        let before = self.tokenizer.decode(
            &self.ids[self.prefix_offset..self.read_offset],
            self.skip_special_tokens,
        )?;
        let after = self
            .tokenizer
            .decode(&self.ids[self.prefix_offset..], self.skip_special_tokens)?;
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        Ok(after.get(before.len()..).unwrap_or_default().to_string())
    }

    /// All ids pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}
