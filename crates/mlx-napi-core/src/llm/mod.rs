//! The LLM engine: load a model folder or repo id, generate text (streamed),
//! and hold chat sessions whose KV cache survives between turns.
//!
//! ```ignore
//! let llm = Llm::load("path/or/owner-repo", LoadOptions::default())?;
//! let options = GenerateOptions { max_tokens: 64, ..Default::default() };
//! let result = llm.generate(Prompt::Text("The capital of France is"), &options, &mut |chunk| {
//!     print!("{}", chunk.text);
//!     ControlFlow::Continue(())
//! })?;
//! let mut session = llm.chat_session();
//! let reply = llm.chat(&mut session, &[ChatMessage::new("user", "Hi!")], &options, &mut |_| ControlFlow::Continue(()))?;
//! ```
//!
//! Layout (mlx-lm's `stream_generate` over `generate_step`):
//! * [`models`]: one file per architecture behind [`LanguageModel`];
//! * `token_stream`: prefill and the double-buffered decode loop of one
//!   sequence, yielding token ids (and log-probabilities);
//! * `text`: the text layer over it — detokenizer, EOS, stop strings,
//!   timings, chunk callbacks, the result;
//! * [`batch`]: continuous batching of queued requests over the same two
//!   layers ([`Llm::serve`], [`Llm::generate_batch`]);
//! * `options`: what a generation takes and returns.
//!
//! Solo generation, chat sessions and warm-up run one token stream; batched
//! rows start as one and move into a shared batch cache after their first token.

pub mod batch;
mod constraint;
mod gbnf;
pub mod models;
mod options;
mod text;
mod token_stream;
mod tools;

use std::{
    ops::ControlFlow,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use mlx_rs::Dtype;

pub use batch::{
    default_max_batch_size, GenerationRequest, GenerationSink, RequestQueue, ServeOptions,
};
pub use constraint::ConstraintSpec;
pub use models::LanguageModel;
pub use options::{
    Chunk, FinishReason, GenerateOptions, GenerationResult, Timings, ToolReply, Usage,
};
pub use token_stream::host_reads;
pub use tools::{parse_tool_calls, Tool, ToolCall, ToolChoice};

use crate::{
    cache::KvCache,
    loading::{
        self, config::ids_from_value, hub::HubOptions, DtypeChoice, LoadProgress, QuantSpec,
        Quantization,
    },
    nn::WeightTree,
    tokenizer::{ChatMessage, Tokenizer},
    Error, Result,
};
use text::{Counts, TextLayer};
use token_stream::TokenStream;

/// How to load a model.
#[derive(Default)]
pub struct LoadOptions<'a> {
    /// Compute dtype; `Auto` = float32 on CPU, the checkpoint's dtype on GPU.
    pub dtype: DtypeChoice,
    /// Quantize dense linear/embedding weights at load (affine).
    pub quantize: Option<QuantSpec>,
    /// Called as files are downloaded (repo ids), weight files are read and
    /// the model is built.
    pub progress: Option<&'a mut dyn FnMut(&LoadProgress)>,
    /// Revision, endpoint, token, cache and offline mode for repo ids.
    pub hub: HubOptions,
    /// Stops a download, or the load before the next weight file.
    pub abort: Option<Arc<AtomicBool>>,
}

/// What to generate from.
#[derive(Debug, Clone, Copy)]
pub enum Prompt<'a> {
    /// Raw text, tokenized with the tokenizer's special-token handling (BOS…).
    Text(&'a str),
    /// Token ids used as given.
    Tokens(&'a [u32]),
    /// Chat messages, rendered with the chat template + generation prompt.
    Messages(&'a [ChatMessage]),
}

/// A [`Prompt`] that owns its data (to queue it for another thread).
#[derive(Debug, Clone)]
pub enum PromptSource {
    Text(String),
    Tokens(Vec<u32>),
    Messages(Vec<ChatMessage>),
}

impl PromptSource {
    pub fn as_prompt(&self) -> Prompt<'_> {
        match self {
            PromptSource::Text(t) => Prompt::Text(t),
            PromptSource::Tokens(ids) => Prompt::Tokens(ids),
            PromptSource::Messages(m) => Prompt::Messages(m),
        }
    }
}

impl From<Prompt<'_>> for PromptSource {
    fn from(prompt: Prompt<'_>) -> Self {
        match prompt {
            Prompt::Text(t) => PromptSource::Text(t.to_string()),
            Prompt::Tokens(ids) => PromptSource::Tokens(ids.to_vec()),
            Prompt::Messages(m) => PromptSource::Messages(m.to_vec()),
        }
    }
}

static NEXT_MODEL_ID: AtomicU64 = AtomicU64::new(1);

pub struct Llm {
    id: u64,
    model: Box<dyn LanguageModel>,
    tokenizer: Tokenizer,
    eos_ids: Vec<u32>,
    /// Compiles `GenerateOptions::constraint` (its token trie built on first use).
    constraints: constraint::ConstraintCompiler,
    model_type: String,
    dtype: Dtype,
    dir: PathBuf,
}

impl Llm {
    /// Loads `source`: a model folder, or a Hugging Face repo id (taken from
    /// the local cache, downloaded into it when missing).
    pub fn load(source: &str, options: LoadOptions) -> Result<Self> {
        crate::runtime::init();
        let LoadOptions {
            dtype,
            quantize,
            mut progress,
            hub,
            abort,
        } = options;
        let quantize = quantize.map(QuantSpec::validate).transpose()?;
        let dir = loading::resolve_model_source(
            source,
            &hub,
            abort.as_deref(),
            progress
                .as_mut()
                .map(|p| &mut **p as &mut dyn FnMut(&LoadProgress)),
        )?;
        let aborted = || abort.as_ref().is_some_and(|a| a.load(Ordering::SeqCst));
        let mut report = LoadProgress::reporter(progress);
        let config: serde_json::Value = loading::read_json(&dir, "config.json")?;
        let model_type = config
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::format("config.json has no `model_type`"))?
            .to_string();
        let quantization = Quantization::from_config(&config)?;
        let files = loading::weight_files(&dir)?;
        // Read (and cast) file by file, like mlx-lm's default non-lazy load:
        // progress follows the reading, and the first generation's time to
        // first token measures compute only.
        let mut weights = std::collections::HashMap::new();
        let mut compute_dtype = None;
        for (i, file) in files.iter().enumerate() {
            if aborted() {
                return Err(Error::Aborted);
            }
            let mut part = loading::load_weights(std::slice::from_ref(file), |_, _| {})?;
            let dtype = match compute_dtype {
                Some(dtype) => dtype,
                None => *compute_dtype.insert(loading::resolve_dtype(dtype, &part)?),
            };
            loading::cast_weights(&mut part, dtype)?;
            mlx_rs::transforms::eval(part.values())?;
            for (name, array) in part {
                if weights.insert(name.clone(), array).is_some() {
                    return Err(Error::format(format!(
                        "tensor {name} appears in more than one weight file"
                    )));
                }
            }
            report("weights", i + 1, files.len());
        }
        let dtype = compute_dtype.unwrap_or(Dtype::Float32);
        let model = models::load_model(&config, WeightTree::new(weights, quantization, quantize))?;
        report("model", 1, 1);
        let tokenizer = Tokenizer::load(&dir)?;
        report("tokenizer", 1, 1);
        let eos_ids = eos_ids(&dir, &config, &tokenizer)?;
        crate::runtime::guard_exit_again();
        Ok(Self {
            id: NEXT_MODEL_ID.fetch_add(1, Ordering::Relaxed),
            model,
            tokenizer,
            eos_ids,
            constraints: constraint::ConstraintCompiler::new(),
            model_type,
            dtype,
            dir,
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn model(&self) -> &dyn LanguageModel {
        self.model.as_ref()
    }

    /// Ids that end generation (config, generation_config, tokenizer EOS).
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    pub fn model_type(&self) -> &str {
        &self.model_type
    }

    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    pub fn model_dir(&self) -> &Path {
        &self.dir
    }

    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.tokenizer
            .apply_chat_template(messages, add_generation_prompt)
    }

    /// Prompt → token ids (see [`Prompt`]).
    pub fn encode_prompt(&self, prompt: Prompt) -> Result<Vec<u32>> {
        let ids = match prompt {
            Prompt::Text(text) => self.tokenizer.encode(text, true)?,
            Prompt::Tokens(ids) => ids.to_vec(),
            Prompt::Messages(messages) => {
                // The template writes the special tokens itself.
                let text = self.apply_chat_template(messages, true)?;
                self.tokenizer.encode(&text, false)?
            }
        };
        if ids.is_empty() {
            return Err(Error::invalid("the prompt is empty"));
        }
        Ok(ids)
    }

    /// [`Self::encode_prompt`] for a request: chat messages are rendered
    /// with the request's tools (when it offers any).
    pub(crate) fn encode_request(
        &self,
        prompt: Prompt,
        options: &GenerateOptions,
    ) -> Result<Vec<u32>> {
        let Prompt::Messages(messages) = prompt else {
            return self.encode_prompt(prompt);
        };
        if !options.offers_tools() {
            return self.encode_prompt(prompt);
        }
        let tools: Vec<serde_json::Value> = options.tools.iter().map(|t| t.to_openai()).collect();
        let mut rendered: Vec<serde_json::Value> = messages
            .iter()
            .map(ChatMessage::to_template_value)
            .collect();
        let mut extra = serde_json::Map::new();
        if self.tokenizer.template_knows_tools() {
            extra.insert("tools".into(), tools.into());
        } else {
            // A template without tool support: describe the tools in a system
            // message, asking for the generic call format `parse_tool_calls` reads.
            let text = format!(
                "You can call these functions:\n{}\nTo call one, reply with only \
                 <tool_call>{{\"name\": <function name>, \"arguments\": <arguments object>}}</tool_call>.",
                tools
                    .iter()
                    .map(|t| t["function"].to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            match rendered.first_mut() {
                Some(first) if first["role"] == "system" => {
                    let content = format!("{}\n\n{text}", first["content"].as_str().unwrap_or(""));
                    first["content"] = content.into();
                }
                _ => rendered.insert(0, serde_json::json!({ "role": "system", "content": text })),
            }
        }
        let text = self.tokenizer.apply_chat_template_json(
            &serde_json::Value::Array(rendered),
            true,
            Some(&extra),
        )?;
        let ids = self.tokenizer.encode(&text, false)?;
        if ids.is_empty() {
            return Err(Error::invalid("the prompt is empty"));
        }
        Ok(ids)
    }

    /// Generates from a fresh cache, alone, streaming chunks to `on_chunk`
    /// (concurrent requests batch through [`Llm::serve`] instead).
    pub fn generate(
        &self,
        prompt: Prompt,
        options: &GenerateOptions,
        on_chunk: &mut dyn FnMut(&Chunk) -> ControlFlow<()>,
    ) -> Result<GenerationResult> {
        let result = self.generate_timed(prompt, options, Instant::now(), 0.0, on_chunk);
        crate::runtime::guard_exit_again();
        result
    }

    /// [`Self::generate`] for a request that started at `start` after
    /// waiting `queue_ms`.
    fn generate_timed(
        &self,
        prompt: Prompt,
        options: &GenerateOptions,
        start: Instant,
        queue_ms: f64,
        on_chunk: &mut dyn FnMut(&Chunk) -> ControlFlow<()>,
    ) -> Result<GenerationResult> {
        options.validate(self.model.vocab_size())?;
        let constraint = self.compile_constraint(options)?;
        let ids = self.encode_request(prompt, options)?;
        let mut caches = self.model.new_caches();
        if let Some(limit) = options.max_kv_size {
            for cache in &mut caches {
                let size = cache
                    .max_size()
                    .map_or(limit as i32, |w| w.min(limit as i32));
                *cache = KvCache::with_max_size(size)?;
            }
        }
        let mut fed = Vec::new();
        self.run_stream(
            &mut caches,
            &mut fed,
            &ids,
            0,
            options,
            constraint,
            start,
            queue_ms,
            on_chunk,
        )
    }

    /// `options.constraint` compiled for this model (coded errors for an
    /// invalid schema or grammar, before any decoding).
    fn compile_constraint(
        &self,
        options: &GenerateOptions,
    ) -> Result<Option<constraint::Constraint>> {
        options
            .constraint_spec()?
            .as_ref()
            .map(|spec| {
                self.constraints.compile(
                    spec,
                    &self.tokenizer,
                    self.model.vocab_size(),
                    &self.eos_ids,
                )
            })
            .transpose()
    }

    /// A token stream over `caches` (holding `prompt[..cached]`) under a
    /// text layer, to the end of the generation.
    #[allow(clippy::too_many_arguments)]
    fn run_stream(
        &self,
        caches: &mut [KvCache],
        fed: &mut Vec<u32>,
        prompt: &[u32],
        cached: usize,
        options: &GenerateOptions,
        constraint: Option<constraint::Constraint>,
        start: Instant,
        queue_ms: f64,
        on_chunk: &mut dyn FnMut(&Chunk) -> ControlFlow<()>,
    ) -> Result<GenerationResult> {
        let mut stream = TokenStream::start(
            self.model.as_ref(),
            caches,
            fed,
            prompt,
            cached,
            options,
            constraint,
        )?;
        let mut text = TextLayer::new(&self.tokenizer, &self.eos_ids, options, start);
        let reason = loop {
            let Some(token) = stream.next()? else {
                break if stream.aborted() {
                    FinishReason::Abort
                } else {
                    FinishReason::Length
                };
            };
            if let Some(reason) = text.push(token.id, token.logprob, on_chunk)? {
                break reason;
            }
            if stream.complete() {
                break FinishReason::Stop;
            }
        };
        let counts = Counts {
            prompt_tokens: prompt.len(),
            prefilled_tokens: prompt.len() - cached,
            host_reads: stream.host_reads(),
            queue_ms,
        };
        text.finish(reason, counts, on_chunk)
    }

    /// A new, empty chat session bound to this model.
    pub fn chat_session(&self) -> ChatSession {
        ChatSession {
            model_id: self.id,
            caches: self.model.new_caches(),
            cached_ids: Vec::new(),
            messages: Vec::new(),
        }
    }

    /// Generates the assistant's reply to `session`'s history plus
    /// `new_messages`. Only the part of the templated conversation that the
    /// session's cache does not already hold goes through prefill; the reply
    /// is appended to the history.
    pub fn chat(
        &self,
        session: &mut ChatSession,
        new_messages: &[ChatMessage],
        options: &GenerateOptions,
        on_chunk: &mut dyn FnMut(&Chunk) -> ControlFlow<()>,
    ) -> Result<GenerationResult> {
        if session.model_id != self.id {
            return Err(Error::invalid("this chat session belongs to another model"));
        }
        if new_messages.is_empty() {
            return Err(Error::invalid("chat needs at least one new message"));
        }
        // Checked before the session's cache is touched: a bad schema leaves
        // the conversation as it was.
        options.validate(self.model.vocab_size())?;
        let constraint = self.compile_constraint(options)?;
        let mut messages = session.messages.clone();
        messages.extend_from_slice(new_messages);
        let ids = self.encode_request(Prompt::Messages(&messages), options)?;
        // Reuse the longest common prefix, but always run the last prompt
        // token so there are logits to sample from.
        let common = session
            .cached_ids
            .iter()
            .zip(&ids)
            .take_while(|(a, b)| a == b)
            .count()
            .min(ids.len() - 1);
        let mut cached = common;
        // A sliding-window cache that evicted part of the prefix cannot be cut back.
        if session
            .caches
            .iter_mut()
            .any(|c| c.truncate(cached as i32).is_err())
        {
            session.caches.iter_mut().for_each(KvCache::reset);
            cached = 0;
        }
        session.cached_ids.truncate(cached);
        let result = self.run_stream(
            &mut session.caches,
            &mut session.cached_ids,
            &ids,
            cached,
            options,
            constraint,
            Instant::now(),
            0.0,
            on_chunk,
        );
        match &result {
            Ok(reply) => {
                let mut answer = ChatMessage::new("assistant", reply.text.clone());
                if let Some(tools) = reply.tools.as_ref().filter(|t| !t.calls.is_empty()) {
                    // Kept as calls, so that the template renders them its way
                    // and the tool results that follow make sense.
                    answer.content = tools.content.clone();
                    answer.tool_calls = Some(tools.calls.iter().map(ToolCall::to_openai).collect());
                }
                messages.push(answer);
                session.messages = messages;
            }
            // The cache may hold a partial prefill: start over next time.
            Err(_) => session.clear(),
        }
        result
    }
}

/// Conversation state kept between [`Llm::chat`] calls: the messages and the
/// KV cache with the exact token ids it holds.
pub struct ChatSession {
    model_id: u64,
    caches: Vec<KvCache>,
    cached_ids: Vec<u32>,
    messages: Vec<ChatMessage>,
}

impl ChatSession {
    pub fn messages(&self) -> &[ChatMessage] {
        &self.messages
    }

    /// Token ids whose keys/values the cache holds.
    pub fn cached_token_ids(&self) -> &[u32] {
        &self.cached_ids
    }

    /// Forgets the conversation and the cache.
    pub fn clear(&mut self) {
        self.messages.clear();
        self.cached_ids.clear();
        for cache in &mut self.caches {
            cache.reset();
        }
    }
}

/// EOS ids from config.json, generation_config.json and the tokenizer's EOS
/// token, deduplicated.
fn eos_ids(dir: &Path, config: &serde_json::Value, tokenizer: &Tokenizer) -> Result<Vec<u32>> {
    // Multimodal configs (Gemma 3) may keep it in their text model's config.
    let mut ids = ids_from_value(config.get("eos_token_id").or_else(|| {
        config
            .get("text_config")
            .and_then(|t| t.get("eos_token_id"))
    }));
    let generation: Option<serde_json::Value> =
        loading::read_json_opt(dir, "generation_config.json")?;
    if let Some(generation) = generation {
        ids.extend(ids_from_value(generation.get("eos_token_id")));
    }
    if let Some(id) = tokenizer.eos_token().and_then(|t| tokenizer.token_to_id(t)) {
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}
