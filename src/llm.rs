//! `loadLLM()` and the `LLM`, `ChatSession`, `LlmStream` and `LlmTokenizer` classes.
//!
//! Each loaded model lives on its own worker thread (`worker.rs`) together with
//! its chat sessions' KV caches; JS objects hold only handles. Options are
//! converted and validated here (types) and in the core (ranges).

use std::{
    collections::{HashMap, VecDeque},
    ops::ControlFlow,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
};

use mlx_napi_core::{
    llm::{
        self, ChatSession as CoreSession, GenerateOptions, GenerationRequest, GenerationResult,
        GenerationSink, Llm, Prompt, PromptSource,
    },
    sampling::TokenLogprob as CoreLogprob,
    tokenizer::{ChatMessage as CoreMessage, Tokenizer},
    Error as CoreError,
};
use napi::{
    bindgen_prelude::{Either3, FromNapiValue, JsObjectValue, Object, Uint32Array, Unknown},
    Env, JsValue,
};
use napi_derive::napi;

use crate::{
    abort::AbortWatch,
    batching::{BatchCollector, Batching, HasLlm, PromiseSink},
    errors::throw,
    load::{self, HubOptionsJs, KindLoadOptions, ProgressCallback, QuantizeOptions},
    options::{abort_watch, check_options, finite, type_error, typed, whole, Kind},
    promise::Settler,
    worker::{self, submit, submit_abortable, WorkerSlot},
};

// ---------------------------------------------------------------- JS shapes

#[napi(object)]
#[derive(Clone)]
pub struct ChatMessage {
    /// "system", "user", "assistant", "tool" (or any role the chat template knows).
    pub role: String,
    /// The text (may be empty, e.g. an assistant message with only tool calls).
    pub content: String,
    /// An assistant message's tool calls (as in `GenerationResult.toolCalls`).
    #[napi(js_name = "tool_calls")]
    pub tool_calls: Option<Vec<ToolCallJs>>,
    /// A `tool` message: the id of the call it answers.
    #[napi(js_name = "tool_call_id")]
    pub tool_call_id: Option<String>,
}

/// A tool call the model made (OpenAI's format).
#[napi(object, js_name = "ToolCall")]
#[derive(Clone)]
pub struct ToolCallJs {
    /// `call_<n>`, unique within the reply; a `tool` message's `tool_call_id` answers it.
    pub id: String,
    #[napi(js_name = "type", ts_type = "'function'")]
    pub kind: String,
    pub function: ToolCallFunction,
}

#[napi(object)]
#[derive(Clone)]
pub struct ToolCallFunction {
    pub name: String,
    /// The arguments: a JSON object, serialized.
    pub arguments: String,
}

impl ToolCallJs {
    fn from_core(c: &llm::ToolCall) -> Self {
        ToolCallJs {
            id: c.id.clone(),
            kind: "function".into(),
            function: ToolCallFunction {
                name: c.name.clone(),
                arguments: c.arguments.clone(),
            },
        }
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "type": self.kind,
            "function": { "name": self.function.name, "arguments": self.function.arguments }
        })
    }
}

#[napi(object, object_to_js = false)]
pub struct LoadLlmOptions {
    /// Compute dtype. "auto" (default): float32 on the CPU backend (float16 is
    /// emulated there), the checkpoint's own dtype on a GPU.
    #[napi(ts_type = "'auto' | 'float32' | 'float16' | 'bfloat16'")]
    pub dtype: Option<String>,
    /// Quantize a dense checkpoint's linear and embedding weights while loading.
    pub quantize: Option<QuantizeOptions>,
    /// Called (on the JS thread) as loading progresses (stage "download" while
    /// a repo id's files are fetched).
    #[napi(ts_type = "(progress: LoadProgress) => void")]
    pub on_progress: Option<ProgressCallback>,
    /// Branch, tag or commit of a repo id (default "main"; `owner/name@rev` works too).
    pub revision: Option<String>,
    /// Hub endpoint, token, cache folder and offline mode.
    #[napi(ts_type = "HubOptions")]
    pub hub: Option<HubOptionsJs>,
    /// Stops a download (rejecting with an AbortError); an interrupted download
    /// resumes on the next call.
    #[napi(ts_type = "AbortSignal")]
    #[allow(dead_code)] // read from the raw object, see `abort_watch`
    pub signal: Option<Unknown<'static>>,
    /// Most `generate` / `stream` / `generateBatch` sequences decoded together
    /// in one forward pass (continuous batching: a call that arrives while
    /// others decode joins them at the next step). Default 32 on a GPU, 8 on
    /// the CPU; 1 runs calls one after another.
    pub max_batch_size: Option<f64>,
}

/// Options of `generate()`, `stream()` and chat sessions. All sampling runs on
/// the device; only the sampled token id is read back per step.
#[napi(object, object_to_js = false, js_name = "GenerateOptions")]
pub struct GenerateOptionsJs {
    /// Most tokens to generate (default 256).
    pub max_tokens: Option<f64>,
    /// 0 (default) = greedy.
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<f64>,
    pub min_p: Option<f64>,
    pub repetition_penalty: Option<f64>,
    /// Tokens the repetition penalty looks back over (default 20).
    pub repetition_context_size: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    /// Token id → value added to its logit.
    pub logit_bias: Option<HashMap<String, f64>>,
    pub seed: Option<f64>,
    /// Generation ends before any of these strings (which are not returned).
    #[napi(ts_type = "string | string[]")]
    pub stop: Option<napi::Either<String, Vec<String>>>,
    /// Keep going through end-of-sequence tokens (for benchmarks).
    pub ignore_eos: Option<bool>,
    /// Prompt tokens per prefill step (default 2048).
    pub prefill_chunk_size: Option<f64>,
    /// Drop special tokens from the text (default false).
    pub skip_special_tokens: Option<bool>,
    /// Report each generated token's log-probability (default false): the
    /// model's distribution after `logitBias` and penalties, before
    /// temperature and the top-k/top-p/min-p filters. Computed on the device
    /// and read back with the token.
    pub logprobs: Option<bool>,
    /// With log-probabilities, also this many most likely tokens at each
    /// step (0–100, default 0); implies `logprobs: true`.
    pub top_logprobs: Option<f64>,
    /// Stops generation at the next step; the result has `finishReason: 'abort'`.
    /// A call still waiting for its turn rejects with an `AbortError` instead.
    #[napi(ts_type = "AbortSignal")]
    #[allow(dead_code)] // read from the raw object, see `read_options`
    pub signal: Option<Unknown<'static>>,
    /// Structured output (default `{ type: 'text' }`: unconstrained). With
    /// `{ type: 'json_object' }` the text is always a JSON object, with
    /// `{ type: 'json_schema', schema }` always JSON valid under `schema`:
    /// a token mask computed at every step lets the sampler draw only tokens
    /// that keep the output valid, at any temperature. Output cut by
    /// `maxTokens` (`finishReason: 'length'`) is a valid prefix, not whole
    /// JSON. An invalid schema rejects with `ERR_INVALID_SCHEMA` before any
    /// decoding.
    pub response_format: Option<ResponseFormat>,
    /// A grammar the output must match (not with `responseFormat`): a string
    /// is a GBNF grammar (llama.cpp's format, rule `root`) when a line
    /// defines a rule with `::=`, else a Lark grammar (llguidance's dialect,
    /// rule `start`); or `{ type: 'lark' | 'gbnf' | 'regex', source }`. An
    /// invalid or unmatchable grammar rejects with `ERR_INVALID_GRAMMAR`.
    #[napi(ts_type = "string | GrammarSpec")]
    pub grammar: Option<napi::Either<String, GrammarSpec>>,
    /// Functions the model may call, in OpenAI's format
    /// (`{ type: 'function', function: { name, description?, parameters? } }`),
    /// for chat-message prompts: given to the model's chat template (or, when
    /// the template has no tool support, described in a system message), and
    /// the reply parsed into `result.toolCalls`. Default: none.
    #[napi(ts_type = "ToolDefinition[]")]
    pub tools: Option<Vec<serde_json::Value>>,
    /// `'auto'` (default: the model decides), `'none'` (tools hidden),
    /// `'required'` (the reply is one call of one of the tools) or
    /// `{ type: 'function', function: { name } }` (a call of that tool). With
    /// `'required'` or a named function the call is constrained by the tool's
    /// parameter schema, so `arguments` always parse.
    #[napi(
        ts_type = "'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } }"
    )]
    pub tool_choice: Option<serde_json::Value>,
}

/// `GenerateOptions.responseFormat`.
#[napi(object, object_to_js = false)]
pub struct ResponseFormat {
    /// `'text'` (no constraint), `'json_object'` or `'json_schema'`.
    #[napi(js_name = "type", ts_type = "'text' | 'json_object' | 'json_schema'")]
    pub kind: String,
    /// The JSON schema, with `type: 'json_schema'`.
    #[napi(ts_type = "Record<string, unknown> | boolean")]
    pub schema: Option<serde_json::Value>,
}

/// `GenerateOptions.grammar` in object form.
#[napi(object, object_to_js = false)]
pub struct GrammarSpec {
    /// `'lark'` (default: llguidance's Lark dialect), `'gbnf'` (llama.cpp's
    /// GBNF) or `'regex'` (Rust `regex` syntax; the whole output matches).
    #[napi(js_name = "type", ts_type = "'lark' | 'gbnf' | 'regex'")]
    pub kind: Option<String>,
    /// The grammar or the regular expression.
    pub source: String,
}

#[napi(object)]
pub struct Usage {
    pub prompt_tokens: u32,
    /// Prompt tokens that went through a forward pass (the rest came from a
    /// chat session's cache).
    pub prefilled_tokens: u32,
    pub completion_tokens: u32,
}

#[napi(object)]
pub struct Timings {
    /// Time spent waiting for a batch slot before the generation started.
    pub queue_ms: f64,
    /// Start (after any wait) → first generated token.
    pub ttft_ms: f64,
    pub prefill_tokens_per_sec: f64,
    pub decode_tokens_per_sec: f64,
    pub total_ms: f64,
}

/// One of the most likely tokens at a step.
#[napi(object)]
pub struct TopLogprob {
    /// Token id.
    pub token: u32,
    /// Its natural-log probability (≤ 0).
    pub logprob: f64,
}

/// A generated token's log-probability and the most likely alternatives
/// (most likely first; `topLogprobs` entries).
#[napi(object, js_name = "TokenLogprob")]
pub struct TokenLogprobJs {
    /// The generated token's id.
    pub token: u32,
    /// Its natural-log probability (≤ 0).
    pub logprob: f64,
    /// The `topLogprobs` most likely tokens at this step (empty without `topLogprobs`).
    pub top_logprobs: Vec<TopLogprob>,
}

fn logprob_to_js(lp: &CoreLogprob) -> TokenLogprobJs {
    TokenLogprobJs {
        token: lp.token,
        logprob: f64::from(lp.logprob),
        top_logprobs: lp
            .top
            .iter()
            .map(|&(token, logprob)| TopLogprob {
                token,
                logprob: f64::from(logprob),
            })
            .collect(),
    }
}

#[napi(object, js_name = "GenerationResult")]
pub struct GenerationResultJs {
    pub text: String,
    pub tokens: Vec<u32>,
    #[napi(ts_type = "'stop' | 'length' | 'abort'")]
    pub finish_reason: String,
    pub usage: Usage,
    pub timings: Timings,
    /// Device→host reads the generation made (one per generated token; in
    /// a batch one read per step serves every sequence).
    pub host_reads: f64,
    /// One entry per generated token, with `logprobs: true`.
    pub logprobs: Option<Vec<TokenLogprobJs>>,
    /// With `tools`: the calls parsed from the reply (empty when it made none).
    pub tool_calls: Option<Vec<ToolCallJs>>,
    /// With `tools`: the reply's text without the tool-call markup.
    pub content: Option<String>,
}

#[napi(object)]
pub struct StreamChunk {
    /// New text; may be empty (only with log-probs, which give one chunk per
    /// token) while a character or a possible stop string is incomplete.
    pub text: String,
    pub token_id: u32,
    /// 0-based index of the token among the generated ones.
    pub index: u32,
    /// The token's log-probability, with `logprobs: true`.
    pub logprob: Option<TokenLogprobJs>,
}

/// One step of the async-iterator protocol.
#[napi(object)]
pub struct StreamStep {
    pub done: bool,
    /// A chunk while `done` is false; the final result when it is true.
    #[napi(ts_type = "StreamChunk | GenerationResult | undefined")]
    pub value: Option<napi::Either<StreamChunk, GenerationResultJs>>,
}

#[napi(object)]
pub struct TemplateOptions {
    /// Append the assistant turn's opening (default true).
    pub add_generation_prompt: Option<bool>,
}

#[napi(object)]
pub struct ChatSessionOptions {
    /// A system message placed before the first turn (and again after `clear()`).
    pub system: Option<String>,
}

fn result_to_js(r: GenerationResult) -> GenerationResultJs {
    GenerationResultJs {
        text: r.text,
        tokens: r.token_ids,
        finish_reason: r.finish_reason.as_str().to_string(),
        usage: Usage {
            prompt_tokens: r.usage.prompt_tokens as u32,
            prefilled_tokens: r.usage.prefilled_tokens as u32,
            completion_tokens: r.usage.completion_tokens as u32,
        },
        timings: Timings {
            queue_ms: r.timings.queue_ms,
            ttft_ms: r.timings.ttft_ms,
            prefill_tokens_per_sec: r.timings.prefill_tokens_per_s,
            decode_tokens_per_sec: r.timings.decode_tokens_per_s,
            total_ms: r.timings.total_ms,
        },
        host_reads: r.host_reads as f64,
        logprobs: r
            .logprobs
            .map(|all| all.iter().map(logprob_to_js).collect()),
        tool_calls: r
            .tools
            .as_ref()
            .map(|t| t.calls.iter().map(ToolCallJs::from_core).collect()),
        content: r.tools.map(|t| t.content),
    }
}

// ------------------------------------------------------- option conversion

fn generate_options(o: Option<GenerateOptionsJs>) -> Result<GenerateOptions, CoreError> {
    let mut out = GenerateOptions::default();
    let Some(o) = o else { return Ok(out) };
    let u32_max = f64::from(u32::MAX);
    if let Some(n) = whole("maxTokens", o.max_tokens, 1.0, u32_max)? {
        out.max_tokens = n as usize;
    }
    if let Some(n) = whole("prefillChunkSize", o.prefill_chunk_size, 1.0, u32_max)? {
        out.prefill_chunk_size = n as usize;
    }
    let s = &mut out.sampler;
    s.temperature = finite("temperature", o.temperature)?.unwrap_or(s.temperature);
    s.top_p = finite("topP", o.top_p)?;
    s.top_k = whole("topK", o.top_k, 1.0, u32_max)?.map(|k| k as u32);
    s.min_p = finite("minP", o.min_p)?;
    s.repetition_penalty = finite("repetitionPenalty", o.repetition_penalty)?;
    if let Some(n) = whole(
        "repetitionContextSize",
        o.repetition_context_size,
        1.0,
        u32_max,
    )? {
        s.repetition_context_size = n as usize;
    }
    s.presence_penalty = finite("presencePenalty", o.presence_penalty)?.unwrap_or(0.0);
    s.frequency_penalty = finite("frequencyPenalty", o.frequency_penalty)?.unwrap_or(0.0);
    s.seed = whole("seed", o.seed, 0.0, 9_007_199_254_740_991.0)?;
    for (key, bias) in o.logit_bias.unwrap_or_default() {
        let id: u32 = key
            .parse()
            .map_err(|_| CoreError::invalid(format!("logitBias key '{key}' is not a token id")))?;
        let bias = finite("logitBias value", Some(bias))?.unwrap_or_default();
        s.logit_bias.push((id, bias));
    }
    out.stop_strings = match o.stop {
        None => Vec::new(),
        Some(napi::Either::A(one)) => vec![one],
        Some(napi::Either::B(many)) => many,
    };
    out.ignore_eos = o.ignore_eos.unwrap_or(false);
    out.skip_special_tokens = o.skip_special_tokens.unwrap_or(false);
    let top = whole("topLogprobs", o.top_logprobs, 0.0, u32_max)?.map(|k| k as usize);
    out.logprobs = match (o.logprobs, top) {
        (Some(false), Some(k)) if k > 0 => {
            return Err(CoreError::invalid(
                "topLogprobs needs logprobs (leave logprobs out or set it to true)",
            ))
        }
        (Some(true), k) => Some(k.unwrap_or(0)),
        (None, Some(k)) if k > 0 => Some(k),
        _ => None,
    };
    let grammar = o.grammar.map(|g| match g {
        napi::Either::A(lark) => (None, lark),
        napi::Either::B(spec) => (spec.kind, spec.source),
    });
    out.tools = o
        .tools
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, t)| llm::Tool::from_openai(t, i))
        .collect::<Result<_, _>>()?;
    if let Some(choice) = &o.tool_choice {
        out.tool_choice = llm::ToolChoice::from_openai(choice)?;
    }
    out.constraint = llm::ConstraintSpec::from_options(
        o.response_format
            .as_ref()
            .map(|f| (f.kind.as_str(), f.schema.clone())),
        grammar.as_ref().map(|(k, s)| (k.as_deref(), s.clone())),
    )?;
    Ok(out)
}

/// The fields of `GenerateOptions`, with their JS types.
const GENERATE_FIELDS: &[(&str, Kind)] = &[
    ("maxTokens", Kind::Number),
    ("temperature", Kind::Number),
    ("topP", Kind::Number),
    ("topK", Kind::Number),
    ("minP", Kind::Number),
    ("repetitionPenalty", Kind::Number),
    ("repetitionContextSize", Kind::Number),
    ("presencePenalty", Kind::Number),
    ("frequencyPenalty", Kind::Number),
    ("logitBias", Kind::Object),
    ("seed", Kind::Number),
    ("stop", Kind::StringOrStrings),
    ("ignoreEos", Kind::Boolean),
    ("prefillChunkSize", Kind::Number),
    ("skipSpecialTokens", Kind::Boolean),
    ("logprobs", Kind::Boolean),
    ("topLogprobs", Kind::Number),
    ("signal", Kind::Signal),
    ("responseFormat", Kind::Object),
    ("grammar", Kind::StringOrObject),
    ("tools", Kind::Objects),
    ("toolChoice", Kind::StringOrObject),
];

impl KindLoadOptions for LoadLlmOptions {
    /// `maxBatchSize`.
    type Own = Option<f64>;
    const FIELDS: &'static [(&'static str, Kind)] = &[("maxBatchSize", Kind::Number)];
    fn split(self) -> (load::CommonLoadJs, Option<f64>) {
        let common = load::CommonLoadJs {
            dtype: self.dtype,
            quantize: self.quantize,
            on_progress: self.on_progress,
            revision: self.revision,
            hub: self.hub,
        };
        (common, self.max_batch_size)
    }
}

/// Converts the raw options object: JS types checked here (`TypeError`s),
/// ranges by the core.
fn read_options(
    env: &Env,
    options: Option<Unknown>,
) -> napi::Result<(Result<GenerateOptions, CoreError>, AbortWatch)> {
    let options = match check_options("options", options, GENERATE_FIELDS) {
        Ok(o) => o,
        Err(e) => return Ok((Err(e), AbortWatch::new(env, None)?)),
    };
    let watch = abort_watch(env, &options)?;
    let mut parsed = match typed(env, &options) {
        Ok(o) => generate_options(o),
        Err(e) => Err(CoreError::invalid(format!("invalid options: {}", e.reason))),
    };
    if watch.aborted() {
        parsed = Err(CoreError::Aborted);
    }
    if let Ok(p) = parsed.as_mut() {
        p.abort = Some(watch.flag());
    }
    Ok((parsed, watch))
}

/// The `prompt` argument: text, token ids, or chat messages.
fn prompt_from_js(env: &Env, p: &Unknown) -> Result<PromptSource, CoreError> {
    let converted = unsafe {
        Either3::<String, Uint32Array, Vec<ChatMessage>>::from_napi_value(env.raw(), p.raw())
    };
    match converted {
        Ok(Either3::A(text)) => Ok(PromptSource::Text(text)),
        Ok(Either3::B(ids)) => Ok(PromptSource::Tokens(ids.to_vec())),
        Ok(Either3::C(messages)) => Ok(PromptSource::Messages(to_core_messages(messages))),
        Err(_) => Err(type_error(
            "prompt",
            "a string, a Uint32Array of token ids or an array of { role: string, content: string } messages",
            p,
        )),
    }
}

/// `generateBatch`'s `prompts`: an array of prompts.
fn prompts_from_js(env: &Env, value: &Unknown) -> Result<Vec<PromptSource>, CoreError> {
    if !value.is_array().unwrap_or(false) {
        return Err(type_error("prompts", "an array of prompts", value));
    }
    let array = unsafe { Object::from_napi_value(env.raw(), value.raw()) }
        .map_err(|e| CoreError::invalid(format!("prompts: {}", e.reason)))?;
    let len = array
        .get_array_length()
        .map_err(|e| CoreError::invalid(format!("prompts: {}", e.reason)))?;
    (0..len)
        .map(|i| {
            let item: Unknown = array
                .get_element(i)
                .map_err(|e| CoreError::invalid(format!("prompts[{i}]: {}", e.reason)))?;
            prompt_from_js(env, &item)
        })
        .collect()
}

fn to_core_messages(messages: Vec<ChatMessage>) -> Vec<CoreMessage> {
    messages
        .into_iter()
        .map(|m| {
            let mut core = CoreMessage::new(m.role, m.content);
            core.tool_calls = m
                .tool_calls
                .map(|calls| calls.iter().map(ToolCallJs::to_json).collect());
            core.tool_call_id = m.tool_call_id;
            core
        })
        .collect()
}

// ------------------------------------------------------------ model thread

struct LlmState {
    llm: Llm,
    sessions: HashMap<u32, CoreSession>,
}

impl HasLlm for LlmState {
    fn llm(&self) -> &Llm {
        &self.llm
    }
}

/// Shared by the `LLM` object and its sessions.
type LlmSlot = WorkerSlot<LlmState>;

// ------------------------------------------------------------------ loadLLM

struct Loaded {
    /// What `onProgress` threw, if it did.
    thrown: Option<napi::Error>,
    tokenizer: Tokenizer,
    model_type: String,
    dtype: String,
    eos_token_ids: Vec<u32>,
    max_batch: usize,
}

/// Loads a model folder, or a Hugging Face repo id (from the local cache,
/// downloaded into it when missing), on a new model thread. Resolves with an `LLM`.
#[napi(
    js_name = "loadLLM",
    ts_args_type = "source: string, options?: LoadLlmOptions",
    ts_return_type = "Promise<LLM>"
)]
pub fn load_llm<'env>(
    env: &'env Env,
    source: Unknown,
    options: Option<Unknown>,
) -> napi::Result<Object<'env>> {
    let slot: LlmSlot = Arc::new(Mutex::new(None));
    let js_slot = slot.clone();
    let (mut settler, promise) = Settler::new(env, move |_env, loaded: Loaded| {
        if let Some(thrown) = loaded.thrown {
            // onProgress threw: the load fails with its exception and the
            // model thread ends (closing the queue drops the model).
            js_slot.lock().unwrap().take();
            return Err(thrown);
        }
        Ok(JsLlm {
            worker: js_slot,
            batching: Batching::new(loaded.max_batch),
            tokenizer: Mutex::new(Some(Arc::new(loaded.tokenizer))),
            model_type: loaded.model_type,
            dtype: loaded.dtype,
            eos_token_ids: loaded.eos_token_ids,
            next_session: AtomicU32::new(1),
        })
    })?;
    let request = load::request::<LoadLlmOptions, _, _>(env, &mut settler, &source, options)
        .and_then(|r| {
            let max = llm::batch::MAX_BATCH_SIZE as f64;
            let max_batch = whole("maxBatchSize", r.own, 1.0, max)?.map(|n| n as usize);
            Ok((r, max_batch))
        });
    let Some(((request, max_batch), settler)) = settler.ok_or_settle(request) else {
        return Ok(promise);
    };
    let load = move || {
        let reporter = load::Reporter::new(request.progress);
        let llm = Llm::load(
            &request.source,
            llm::LoadOptions {
                dtype: request.dtype,
                quantize: request.quantize,
                progress: Some(&mut |p| reporter.report(p)),
                hub: request.hub,
                abort: Some(request.abort),
            },
        )?;
        let loaded = Loaded {
            thrown: reporter.thrown(),
            tokenizer: llm.tokenizer().clone(),
            model_type: llm.model_type().to_string(),
            dtype: format!("{:?}", llm.dtype()).to_lowercase(),
            eos_token_ids: llm.eos_token_ids().to_vec(),
            max_batch: max_batch.unwrap_or_else(llm::default_max_batch_size),
        };
        let state = LlmState {
            llm,
            sessions: HashMap::new(),
        };
        Ok((state, loaded))
    };
    worker::start_model("mlx-napi-llm", &slot, settler, load).map_err(|e| throw(env, e))?;
    Ok(promise)
}

// ---------------------------------------------------------------------- LLM

/// A loaded language model. Calls are queued on the model's own thread.
#[napi(js_name = "LLM")]
pub struct JsLlm {
    worker: LlmSlot,
    /// Queue of `generate` / `stream` / `generateBatch` requests (batched).
    batching: Arc<Batching>,
    /// Dropped by `dispose()`: a disposed model's JS object may live on until
    /// V8 collects it, and the tokenizer is its only large part (tens of MB).
    tokenizer: Mutex<Option<Arc<Tokenizer>>>,
    model_type: String,
    dtype: String,
    eos_token_ids: Vec<u32>,
    next_session: AtomicU32,
}

impl JsLlm {
    /// The tokenizer, or `ERR_DISPOSED` after `dispose()`.
    fn live_tokenizer(&self, env: &Env) -> napi::Result<Arc<Tokenizer>> {
        self.tokenizer
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| throw(env, CoreError::Disposed))
    }
}

#[napi]
impl JsLlm {
    /// `model_type` from config.json, e.g. "llama", "qwen2", "qwen3".
    #[napi(getter)]
    pub fn model_type(&self) -> String {
        self.model_type.clone()
    }

    /// The compute dtype the weights were loaded in.
    #[napi(getter)]
    pub fn dtype(&self) -> String {
        self.dtype.clone()
    }

    /// Ids that end generation (config, generation_config and tokenizer).
    #[napi(getter)]
    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.eos_token_ids.clone()
    }

    #[napi(getter)]
    pub fn tokenizer(&self, env: Env) -> napi::Result<LlmTokenizer> {
        Ok(LlmTokenizer {
            inner: self.live_tokenizer(&env)?,
        })
    }

    /// Renders chat messages with the model's chat template.
    #[napi]
    pub fn apply_chat_template(
        &self,
        env: Env,
        messages: Vec<ChatMessage>,
        options: Option<TemplateOptions>,
    ) -> napi::Result<String> {
        let add = options
            .and_then(|o| o.add_generation_prompt)
            .unwrap_or(true);
        self.live_tokenizer(&env)?
            .apply_chat_template(&to_core_messages(messages), add)
            .map_err(|e| throw(&env, e))
    }

    /// Generates a completion. `prompt` is raw text, token ids, or chat
    /// messages (rendered with the chat template). Concurrent calls on one
    /// model decode together (see `maxBatchSize`); each gets the tokens it
    /// would get alone.
    #[napi(ts_return_type = "Promise<GenerationResult>")]
    pub fn generate<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string | Uint32Array | ChatMessage[]")] prompt: Unknown,
        #[napi(ts_arg_type = "GenerateOptions")] options: Option<Unknown>,
    ) -> napi::Result<Object<'env>> {
        let prompt = prompt_from_js(env, &prompt);
        let (options, mut watch) = read_options(env, options)?;
        let options = prompt.and_then(|prompt| Ok((prompt, options?)));
        let (mut settler, promise) =
            Settler::new(env, |_env, r: GenerationResult| Ok(result_to_js(r)))?;
        let hooks = watch.hooks();
        settler.on_settle(move |env| watch.release(env));
        let Some(((prompt, options), settler)) = settler.ok_or_settle(options) else {
            return Ok(promise);
        };
        let sink = PromiseSink::new(settler, &hooks);
        self.batching.enqueue(
            &self.worker,
            GenerationRequest::new(prompt, options, Box::new(sink)),
        );
        Ok(promise)
    }

    /// Generates a completion for each prompt, decoded together (in groups
    /// of `maxBatchSize`), with the same options; resolves with the results
    /// in prompt order. The first failing prompt rejects the call and stops
    /// the others.
    #[napi(ts_return_type = "Promise<GenerationResult[]>")]
    pub fn generate_batch<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "Array<string | Uint32Array | ChatMessage[]>")] prompts: Unknown,
        #[napi(ts_arg_type = "GenerateOptions")] options: Option<Unknown>,
    ) -> napi::Result<Object<'env>> {
        let prompts = prompts_from_js(env, &prompts);
        let (options, mut watch) = read_options(env, options)?;
        let options = prompts.and_then(|prompts| Ok((prompts, options?)));
        let (mut settler, promise) = Settler::new(env, |_env, all: Vec<GenerationResult>| {
            Ok(all.into_iter().map(result_to_js).collect::<Vec<_>>())
        })?;
        let hooks = watch.hooks();
        settler.on_settle(move |env| watch.release(env));
        let Some(((prompts, options), settler)) = settler.ok_or_settle(options) else {
            return Ok(promise);
        };
        if prompts.is_empty() {
            settler.settle(Ok(Vec::new()));
            return Ok(promise);
        }
        let stop = options.abort.clone().unwrap_or_default();
        let collector = BatchCollector::new(settler, prompts.len(), stop, &hooks);
        for (row, prompt) in prompts.into_iter().enumerate() {
            let request = GenerationRequest::new(prompt, options.clone(), collector.sink(row));
            self.batching.enqueue(&self.worker, request);
        }
        Ok(promise)
    }

    /// Streams a completion: an async iterable of `StreamChunk`s. Batched
    /// with concurrent calls like `generate()`.
    #[napi(ts_return_type = "LlmStream")]
    pub fn stream(
        &self,
        env: Env,
        #[napi(ts_arg_type = "string | Uint32Array | ChatMessage[]")] prompt: Unknown,
        #[napi(ts_arg_type = "GenerateOptions")] options: Option<Unknown>,
    ) -> napi::Result<LlmStream> {
        let prompt = prompt_from_js(&env, &prompt);
        let (options, watch) = read_options(&env, options)?;
        let stream = LlmStream::new(watch);
        let shared = stream.shared.clone();
        match prompt.and_then(|prompt| Ok((prompt, options?))) {
            Err(e) => shared.finish(Err(e)),
            Ok((prompt, options)) => {
                let sink = Box::new(StreamSink(shared));
                self.batching
                    .enqueue(&self.worker, GenerationRequest::new(prompt, options, sink));
            }
        }
        Ok(stream)
    }

    /// Most sequences decoded together (the `maxBatchSize` load option or its default).
    #[napi(getter)]
    pub fn max_batch_size(&self) -> u32 {
        self.batching.max_batch() as u32
    }

    /// A conversation whose KV cache stays on the device between turns, so each
    /// turn only prefills its new tokens.
    #[napi]
    pub fn chat_session(&self, options: Option<ChatSessionOptions>) -> ChatSession {
        ChatSession {
            worker: self.worker.clone(),
            batching: self.batching.clone(),
            id: self.next_session.fetch_add(1, Ordering::Relaxed),
            system: options.and_then(|o| o.system),
        }
    }

    /// Runs a two-token generation so that MLX compiles its kernels (on CUDA
    /// this takes seconds on first use). Resolves with the time it took in ms.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn warmup<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let (settler, promise) = Settler::new(env, |_env, ms: f64| Ok(ms))?;
        let waiting = self.batching.waiting();
        submit(&self.worker, settler, move |state| {
            drop(waiting);
            let options = GenerateOptions {
                max_tokens: 2,
                ignore_eos: true,
                ..Default::default()
            };
            let r = state
                .llm
                .generate(Prompt::Text("Hello"), &options, &mut |_| {
                    ControlFlow::Continue(())
                })?;
            Ok(r.timings.total_ms)
        });
        Ok(promise)
    }

    /// Frees the model once the running calls (the sequences decoding now)
    /// end; queued calls and later calls reject with `ERR_DISPOSED`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn dispose<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let (settler, promise) = Settler::new(env, |_env, ()| Ok(()))?;
        self.tokenizer.lock().unwrap().take();
        self.batching.close();
        // The state (model, caches) is dropped on its own thread first.
        worker::dispose(&self.worker, settler, |state: &mut LlmState| {
            state.sessions.clear()
        });
        Ok(promise)
    }
}

// -------------------------------------------------------------- ChatSession

/// A conversation with one model; see `LLM.chatSession()`.
#[napi]
pub struct ChatSession {
    worker: LlmSlot,
    batching: Arc<Batching>,
    id: u32,
    system: Option<String>,
}

impl ChatSession {
    /// The turn's new messages, with the system message first when the
    /// conversation is empty.
    fn turn(
        system: &Option<String>,
        history_empty: bool,
        message: &Either3<String, ChatMessage, Vec<ChatMessage>>,
    ) -> Vec<CoreMessage> {
        let mut messages = Vec::new();
        if history_empty {
            if let Some(system) = system {
                messages.push(CoreMessage::new("system", system.clone()));
            }
        }
        match message {
            Either3::A(text) => messages.push(CoreMessage::new("user", text.clone())),
            Either3::B(m) => messages.extend(to_core_messages(vec![m.clone()])),
            Either3::C(many) => messages.extend(to_core_messages(many.clone())),
        }
        messages
    }
}

/// Runs one chat turn on the model thread.
fn chat_turn(
    state: &mut LlmState,
    id: u32,
    system: &Option<String>,
    message: &Either3<String, ChatMessage, Vec<ChatMessage>>,
    options: &GenerateOptions,
    on_chunk: &mut dyn FnMut(&llm::Chunk) -> ControlFlow<()>,
) -> Result<GenerationResult, CoreError> {
    let LlmState { llm, sessions } = state;
    let session = sessions.entry(id).or_insert_with(|| llm.chat_session());
    let turn = ChatSession::turn(system, session.messages().is_empty(), message);
    llm.chat(session, &turn, options, on_chunk)
}

#[napi]
impl ChatSession {
    /// Sends a user message (a string) or messages, resolves with the reply.
    #[napi(ts_return_type = "Promise<GenerationResult>")]
    pub fn send<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string | ChatMessage | ChatMessage[]")] message: Either3<
            String,
            ChatMessage,
            Vec<ChatMessage>,
        >,
        #[napi(ts_arg_type = "GenerateOptions")] options: Option<Unknown>,
    ) -> napi::Result<Object<'env>> {
        let (options, mut watch) = read_options(env, options)?;
        let (mut settler, promise) =
            Settler::new(env, |_env, r: GenerationResult| Ok(result_to_js(r)))?;
        let hooks = watch.hooks();
        settler.on_settle(move |env| watch.release(env));
        let Some((options, settler)) = settler.ok_or_settle(options) else {
            return Ok(promise);
        };
        let (id, system) = (self.id, self.system.clone());
        let waiting = self.batching.waiting();
        submit_abortable(&self.worker, settler, Some(&hooks), move |state| {
            drop(waiting);
            chat_turn(state, id, &system, &message, &options, &mut |_| {
                ControlFlow::Continue(())
            })
        });
        Ok(promise)
    }

    /// Like `send()`, streaming the reply.
    #[napi(ts_return_type = "LlmStream")]
    pub fn stream(
        &self,
        env: Env,
        #[napi(ts_arg_type = "string | ChatMessage | ChatMessage[]")] message: Either3<
            String,
            ChatMessage,
            Vec<ChatMessage>,
        >,
        #[napi(ts_arg_type = "GenerateOptions")] options: Option<Unknown>,
    ) -> napi::Result<LlmStream> {
        let (options, watch) = read_options(&env, options)?;
        let stream = LlmStream::new(watch);
        let shared = stream.shared.clone();
        let options = match options {
            Ok(o) => o,
            Err(e) => {
                shared.finish(Err(e));
                return Ok(stream);
            }
        };
        let (id, system) = (self.id, self.system.clone());
        let worker = self.worker.lock().unwrap();
        let (producer, finisher) = (shared.clone(), shared.clone());
        let waiting = self.batching.waiting();
        let queued = worker.as_ref().map(|w| {
            worker::guarded(
                w,
                move |state: &mut LlmState| {
                    drop(waiting);
                    chat_turn(state, id, &system, &message, &options, &mut |c| {
                        producer.push(c)
                    })
                },
                move |result| finisher.finish(result),
            )
        });
        if !matches!(queued, Some(Ok(()))) {
            shared.finish(Err(CoreError::Disposed));
        }
        Ok(stream)
    }

    /// The conversation so far (system, user and assistant messages).
    #[napi(ts_return_type = "Promise<ChatMessage[]>")]
    pub fn history<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let (settler, promise) = Settler::new(env, |_env, m: Vec<CoreMessage>| {
            Ok(m.into_iter()
                .map(|m| ChatMessage {
                    tool_calls: m.tool_calls.map(|calls| {
                        calls
                            .iter()
                            .filter_map(|c| {
                                Some(ToolCallJs {
                                    id: c["id"].as_str()?.to_string(),
                                    kind: "function".into(),
                                    function: ToolCallFunction {
                                        name: c["function"]["name"].as_str()?.to_string(),
                                        arguments: c["function"]["arguments"].as_str()?.to_string(),
                                    },
                                })
                            })
                            .collect()
                    }),
                    tool_call_id: m.tool_call_id,
                    role: m.role,
                    content: m.content,
                })
                .collect::<Vec<_>>())
        })?;
        let id = self.id;
        let waiting = self.batching.waiting();
        submit(&self.worker, settler, move |state| {
            drop(waiting);
            Ok(state
                .sessions
                .get(&id)
                .map(|s| s.messages().to_vec())
                .unwrap_or_default())
        });
        Ok(promise)
    }

    /// Forgets the conversation and frees its cache.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn clear<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let (settler, promise) = Settler::new(env, |_env, ()| Ok(()))?;
        let id = self.id;
        let waiting = self.batching.waiting();
        submit(&self.worker, settler, move |state| {
            drop(waiting);
            state.sessions.remove(&id);
            Ok(())
        });
        Ok(promise)
    }
}

// ---------------------------------------------------------------- streaming

enum Step {
    Chunk(StreamChunk),
    Done(Option<GenerationResult>),
}

#[derive(Default)]
struct StreamState {
    chunks: VecDeque<StreamChunk>,
    waiters: VecDeque<Settler<Step, StreamStep>>,
    /// Set once generation ended; the error is handed out once, then `done`.
    outcome: Option<Result<Option<GenerationResult>, CoreError>>,
    /// `return()` was called: no more chunks, only the end.
    closed: bool,
}

struct StreamShared {
    state: Mutex<StreamState>,
    abort: Arc<std::sync::atomic::AtomicBool>,
}

impl StreamShared {
    /// Producer side (model thread): one generated piece. Pieces without
    /// text are skipped unless they carry a token's log-probability.
    fn push(&self, chunk: &llm::Chunk) -> ControlFlow<()> {
        if chunk.text.is_empty() && chunk.logprob.is_none() {
            return ControlFlow::Continue(());
        }
        let chunk = StreamChunk {
            text: chunk.text.to_string(),
            token_id: chunk.token_id,
            index: chunk.index as u32,
            logprob: chunk.logprob.map(logprob_to_js),
        };
        let mut state = self.state.lock().unwrap();
        if state.closed {
            return ControlFlow::Break(());
        }
        match state.waiters.pop_front() {
            Some(waiter) => waiter.settle(Ok(Step::Chunk(chunk))),
            None => state.chunks.push_back(chunk),
        }
        ControlFlow::Continue(())
    }

    /// Producer side: generation ended (or never started).
    fn finish(&self, result: Result<GenerationResult, CoreError>) {
        let mut state = self.state.lock().unwrap();
        state.outcome = Some(result.map(Some));
        while !state.chunks.is_empty() {
            match state.waiters.pop_front() {
                Some(w) => w.settle(Ok(Step::Chunk(state.chunks.pop_front().unwrap()))),
                None => return,
            }
        }
        while let Some(w) = state.waiters.pop_front() {
            let step = Self::take_end(&mut state);
            w.settle(step);
        }
    }

    /// The end of the stream for one `next()` call: the error once, the final
    /// result once, then plain `done`.
    fn take_end(state: &mut StreamState) -> Result<Step, CoreError> {
        match state.outcome.take() {
            Some(Err(e)) => {
                state.outcome = Some(Ok(None));
                Err(e)
            }
            Some(Ok(result)) => {
                state.outcome = Some(Ok(None));
                Ok(Step::Done(result))
            }
            None => Ok(Step::Done(None)),
        }
    }
}

/// A stream as the batch engine's sink.
struct StreamSink(Arc<StreamShared>);

impl GenerationSink for StreamSink {
    fn chunk(&mut self, chunk: &llm::Chunk) -> ControlFlow<()> {
        self.0.push(chunk)
    }

    fn finish(&mut self, result: Result<GenerationResult, CoreError>) {
        self.0.finish(result)
    }
}

fn step_to_js(step: Step) -> StreamStep {
    match step {
        Step::Chunk(c) => StreamStep {
            done: false,
            value: Some(napi::Either::A(c)),
        },
        Step::Done(r) => StreamStep {
            done: true,
            value: r.map(|r| napi::Either::B(result_to_js(r))),
        },
    }
}

/// Async iterator over a generation's chunks (`for await (const c of stream)`).
/// The final `next()` resolves `{ done: true, value: GenerationResult }`.
#[napi]
pub struct LlmStream {
    shared: Arc<StreamShared>,
    watch: Mutex<Option<AbortWatch>>,
}

impl LlmStream {
    fn new(watch: AbortWatch) -> Self {
        LlmStream {
            shared: Arc::new(StreamShared {
                state: Mutex::default(),
                abort: watch.flag(),
            }),
            watch: Mutex::new(Some(watch)),
        }
    }

    fn release_watch(&self, env: &Env) {
        if let Some(mut w) = self.watch.lock().unwrap().take() {
            w.release(env);
        }
    }
}

#[napi]
impl LlmStream {
    /// The next chunk, or `{ done: true }` when generation has ended.
    #[napi(ts_return_type = "Promise<StreamStep>")]
    pub fn next<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let (settler, promise) = Settler::new(env, |_env, step: Step| Ok(step_to_js(step)))?;
        let mut state = self.shared.state.lock().unwrap();
        if let Some(chunk) = state.chunks.pop_front() {
            settler.settle(Ok(Step::Chunk(chunk)));
        } else if state.outcome.is_some() {
            let step = StreamShared::take_end(&mut state);
            drop(state);
            self.release_watch(env);
            settler.settle(step);
        } else {
            state.waiters.push_back(settler);
        }
        Ok(promise)
    }

    /// Stops the generation early (called by `break` in `for await`).
    #[napi(js_name = "return", ts_return_type = "Promise<StreamStep>")]
    pub fn finish_early<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.shared.abort.store(true, Ordering::SeqCst);
        {
            let mut state = self.shared.state.lock().unwrap();
            state.closed = true;
            state.chunks.clear();
        }
        self.release_watch(env);
        let (settler, promise) = Settler::new(env, |_env, ()| {
            Ok(StreamStep {
                done: true,
                value: None,
            })
        })?;
        settler.settle(Ok(()));
        Ok(promise)
    }
}

// ---------------------------------------------------------------- tokenizer

/// The model's tokenizer; synchronous (it runs on the JS thread, no MLX).
#[napi]
pub struct LlmTokenizer {
    inner: Arc<Tokenizer>,
}

#[napi]
impl LlmTokenizer {
    /// Text → token ids. `addSpecialTokens` (default true) applies the
    /// tokenizer's post-processor (e.g. a BOS token).
    #[napi]
    pub fn encode(
        &self,
        env: Env,
        text: String,
        add_special_tokens: Option<bool>,
    ) -> napi::Result<Vec<u32>> {
        self.inner
            .encode(&text, add_special_tokens.unwrap_or(true))
            .map_err(|e| throw(&env, e))
    }

    /// Token ids → text.
    #[napi]
    pub fn decode(
        &self,
        env: Env,
        ids: Vec<u32>,
        skip_special_tokens: Option<bool>,
    ) -> napi::Result<String> {
        self.inner
            .decode(&ids, skip_special_tokens.unwrap_or(false))
            .map_err(|e| throw(&env, e))
    }

    #[napi(getter)]
    pub fn vocab_size(&self) -> u32 {
        self.inner.vocab_size() as u32
    }
}

/// Makes `LlmStream` async-iterable: napi-rs classes cannot declare
/// symbol-named methods, so the prototype gets `[Symbol.asyncIterator]` here,
/// once, when the module loads (typed by `src/dts-header.d.ts`).
#[napi(module_exports)]
pub fn init_stream_protocol(exports: Object, env: Env) -> napi::Result<()> {
    let stream_class: Unknown = exports.get_named_property("LlmStream")?;
    let install: napi::bindgen_prelude::Function<Unknown, ()> = env.run_script(
        "(function (C) { C.prototype[Symbol.asyncIterator] = function () { return this } })",
    )?;
    install.call(stream_class)
}
