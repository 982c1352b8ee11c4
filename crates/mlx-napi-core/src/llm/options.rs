//! What a generation takes and gives back: options (validated here), the
//! streamed chunks, the final result.

use std::sync::{atomic::AtomicBool, Arc};

use super::{
    constraint::ConstraintSpec,
    tools::{forced_call_constraint, Tool, ToolCall, ToolChoice},
};
use crate::{
    sampling::{SamplerConfig, TokenLogprob, MAX_TOP_LOGPROBS},
    Error, Result,
};

/// Options of one generation (validated by [`GenerateOptions::validate`]).
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Most tokens to generate (≥ 1).
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    /// Generation ends when the text contains one of these (not emitted).
    pub stop_strings: Vec<String>,
    /// Extra ids that end generation, besides the model's EOS ids.
    pub extra_eos_ids: Vec<u32>,
    /// Keep generating through EOS ids (benchmarks).
    pub ignore_eos: bool,
    /// Prompt tokens per prefill forward pass (≥ 1).
    pub prefill_chunk_size: usize,
    pub skip_special_tokens: bool,
    /// Set to true from any thread to stop at the next step (`finish_reason` "abort").
    pub abort: Option<Arc<AtomicBool>>,
    /// Keep at most this many positions in the KV cache (a rotating cache,
    /// like mlx-lm's `max_kv_size`): bounded memory for long generations, at
    /// the price of attention only over the most recent positions.
    /// Applies to `Llm::generate`; chat sessions keep their whole history.
    /// Such a generation does not join a batch.
    pub max_kv_size: Option<usize>,
    /// Report each generated token's log-probability and this many most
    /// likely alternatives (`Some(0)`: the token's alone); `None`: off.
    /// Computed on the device and read back with the token.
    pub logprobs: Option<usize>,
    /// What the output must match (JSON schema, any JSON object, Lark
    /// grammar, regex); compiled before decoding (`ERR_INVALID_SCHEMA` /
    /// `ERR_INVALID_GRAMMAR`) and enforced with a token mask at every step.
    pub constraint: Option<ConstraintSpec>,
    /// Functions the model may call (chat prompts): passed to the chat
    /// template, and the reply parsed into [`GenerationResult::tools`].
    pub tools: Vec<Tool>,
    /// `Required` / `Function` constrain the reply to one call whose
    /// arguments follow the tool's parameter schema; `None` hides the tools.
    pub tool_choice: ToolChoice,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            sampler: SamplerConfig::default(),
            stop_strings: Vec::new(),
            extra_eos_ids: Vec::new(),
            ignore_eos: false,
            prefill_chunk_size: 2048,
            skip_special_tokens: false,
            abort: None,
            max_kv_size: None,
            logprobs: None,
            constraint: None,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
        }
    }
}

impl GenerateOptions {
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        if self.max_tokens == 0 {
            return Err(Error::invalid("maxTokens must be ≥ 1"));
        }
        if self.prefill_chunk_size == 0 {
            return Err(Error::invalid("prefillChunkSize must be ≥ 1"));
        }
        if self
            .max_kv_size
            .is_some_and(|n| n == 0 || n > i32::MAX as usize)
        {
            return Err(Error::invalid("maxKvSize must be ≥ 1"));
        }
        if let Some(k) = self.logprobs {
            if k > MAX_TOP_LOGPROBS || k > vocab_size {
                return Err(Error::invalid(format!(
                    "topLogprobs must be at most {} (and the vocabulary size), got {k}",
                    MAX_TOP_LOGPROBS
                )));
            }
        }
        if self.stop_strings.iter().any(|s| s.is_empty()) {
            return Err(Error::invalid("stop strings must not be empty"));
        }
        if let Some(id) = self
            .extra_eos_ids
            .iter()
            .find(|&&id| id as usize >= vocab_size)
        {
            return Err(Error::invalid(format!(
                "eos id {id} is outside the vocabulary ({vocab_size})"
            )));
        }
        if self.constraint.is_some() && self.ignore_eos {
            // The constraint ends the output where the grammar ends; going
            // on past EOS would leave it.
            return Err(Error::invalid(
                "ignoreEos cannot be combined with responseFormat or grammar",
            ));
        }
        if let Some(ConstraintSpec::Lark(g) | ConstraintSpec::Regex(g)) = &self.constraint {
            if g.trim().is_empty() {
                return Err(Error::InvalidGrammar("the grammar is empty".into()));
            }
        }
        self.constraint_spec()?;
        self.sampler.validate(vocab_size)
    }

    /// Whether the tools are shown to the model and its reply parsed for calls.
    pub fn offers_tools(&self) -> bool {
        !self.tools.is_empty() && self.tool_choice != ToolChoice::None
    }

    /// What the output must match: `constraint`, or the forced tool call.
    pub fn constraint_spec(&self) -> Result<Option<ConstraintSpec>> {
        let forced = forced_call_constraint(&self.tools, &self.tool_choice)?;
        match (&self.constraint, forced) {
            (Some(_), Some(_)) => Err(Error::invalid(
                "toolChoice 'required' or a named function cannot be combined with responseFormat or grammar",
            )),
            (Some(c), None) => Ok(Some(c.clone())),
            (None, forced) => Ok(forced),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An EOS id or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The abort flag was set or the callback asked to stop.
    Abort,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
        }
    }
}

/// One streamed piece of output.
#[derive(Debug, Clone)]
pub struct Chunk<'a> {
    /// New text (may be empty while a character or possible stop string is incomplete).
    pub text: &'a str,
    /// The generated token this chunk follows.
    pub token_id: u32,
    /// 0-based index of that token among the generated ones.
    pub index: usize,
    /// That token's log-probability (when [`GenerateOptions::logprobs`] is
    /// set); `None` on the final flush of held-back text.
    pub logprob: Option<&'a TokenLogprob>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens of the prompt (including any reused from a session cache).
    pub prompt_tokens: usize,
    /// Prompt tokens that actually went through a forward pass.
    pub prefilled_tokens: usize,
    pub completion_tokens: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Waiting for a batch slot before the generation started (0 when it
    /// started at once).
    pub queue_ms: f64,
    /// Start → first generated token on the host.
    pub ttft_ms: f64,
    pub prefill_tokens_per_s: f64,
    /// Tokens after the first / time after the first.
    pub decode_tokens_per_s: f64,
    pub total_ms: f64,
}

#[derive(Debug, Clone)]
pub struct GenerationResult {
    pub text: String,
    /// Generated ids (EOS excluded; a stop string's tokens included).
    pub token_ids: Vec<u32>,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    pub timings: Timings,
    /// Device→host reads this generation made (= generated tokens + 1 at
    /// most; in a batch, one read per step serves every row).
    pub host_reads: u64,
    /// Per generated token, when [`GenerateOptions::logprobs`] was set.
    pub logprobs: Option<Vec<TokenLogprob>>,
    /// When tools were offered: the reply split into content and calls.
    pub tools: Option<ToolReply>,
}

/// A reply to a request with tools.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolReply {
    /// The text without the tool-call markup.
    pub content: String,
    pub calls: Vec<ToolCall>,
}
