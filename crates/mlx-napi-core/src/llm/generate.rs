//! The generation loop: chunked prefill, then a double-buffered decode loop.
//!
//! Decode keeps the device busy while the host handles a token: the graph of
//! step n+1 (forward + sampling, fed with step n's still-lazy token) is built
//! and queued with `async_eval` *before* token n is read. The only
//! device→host transfer per generated token is that token id — counted in
//! [`host_reads`] so tests can hold us to it.
//!
//! Stopping: EOS ids, `max_tokens`, stop strings (matched on the detokenized
//! text; text that could still become a stop string is held back, and the stop
//! string itself is never emitted), an abort flag checked every step, or the
//! chunk callback returning `Break`.

use std::{
    ops::ControlFlow,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use mlx_rs::{transforms, Array, Dtype};

use super::models::LanguageModel;
use crate::{
    cache::KvCache,
    sampling::{Sampler, SamplerConfig},
    tokenizer::Tokenizer,
    Error, Result,
};

static HOST_READS: AtomicU64 = AtomicU64::new(0);

/// Device→host token reads made by generation in this process so far.
pub fn host_reads() -> u64 {
    HOST_READS.load(Ordering::Relaxed)
}

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
    pub max_kv_size: Option<usize>,
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
        self.sampler.validate(vocab_size)
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
    /// Device→host reads this generation made (= generated tokens + 1 at most).
    pub host_reads: u64,
}

/// First prefill chunk when the call can be aborted (see `Generation::run`).
const PREFILL_FIRST_CHUNK: usize = 128;
/// Smallest chunk the adaptive prefill shrinks to.
const PREFILL_MIN_CHUNK: usize = 16;
/// Target upper bound for one prefill step when the call can be aborted.
const PREFILL_STEP_SECS: f64 = 0.5;

/// Everything the loop needs from its caller.
pub(crate) struct Generation<'a> {
    pub model: &'a dyn LanguageModel,
    pub tokenizer: &'a Tokenizer,
    pub eos_ids: &'a [u32],
    pub caches: &'a mut [KvCache],
    /// The whole prompt (for the repetition-penalty context and usage).
    pub prompt: &'a [u32],
    /// How many leading prompt tokens the caches already hold.
    pub cached: usize,
    /// Ids whose keys/values were written to the caches, appended as fed.
    pub fed: &'a mut Vec<u32>,
}

impl Generation<'_> {
    pub fn run(
        self,
        options: &GenerateOptions,
        on_chunk: &mut dyn FnMut(&Chunk) -> ControlFlow<()>,
    ) -> Result<GenerationResult> {
        let start = Instant::now();
        let Generation {
            model,
            tokenizer,
            eos_ids,
            caches,
            prompt,
            cached,
            fed,
        } = self;
        if prompt.is_empty() {
            return Err(Error::invalid("the prompt must contain at least one token"));
        }
        let vocab = model.vocab_size();
        options.validate(vocab)?;
        if let Some(&bad) = prompt.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::invalid(format!(
                "prompt token {bad} is outside the vocabulary ({vocab})"
            )));
        }
        // The prompt must fit the model's context with room for one new token;
        // generation then stops at the context's end (`finish_reason` "length").
        let max_tokens = match model.context_length() {
            Some(context) if prompt.len() >= context => {
                return Err(Error::PromptTooLong(format!(
                    "the prompt has {} tokens but the model's context holds {context} \
                     (max_position_embeddings); shorten the prompt to at most {} tokens",
                    prompt.len(),
                    context - 1
                )))
            }
            Some(context) => options.max_tokens.min(context - prompt.len()),
            None => options.max_tokens,
        };
        debug_assert!(cached < prompt.len());
        let mut sampler = Sampler::new(options.sampler.clone(), vocab, 1, &[prompt])?;
        let aborted = || {
            options
                .abort
                .as_ref()
                .is_some_and(|a| a.load(Ordering::Relaxed))
        };

        // Prefill all but the last prompt token, chunk by chunk; evaluating the
        // caches (not the logits) computes only what later steps need.
        // With an abort flag, chunks start small and grow while a chunk takes
        // well under the abort latency we promise (~1 s on any backend), so a
        // slow backend (CPU) still stops promptly and a fast one gets its
        // large chunks back after a few steps.
        let last = prompt.len() - 1;
        let mut pos = cached;
        let mut aborted_in_prefill = false;
        let mut chunk = if options.abort.is_some() {
            options.prefill_chunk_size.min(PREFILL_FIRST_CHUNK)
        } else {
            options.prefill_chunk_size
        };
        while pos < last {
            if aborted() {
                aborted_in_prefill = true;
                break;
            }
            let end = (pos + chunk).min(last);
            let chunk_start = Instant::now();
            model.forward(&token_array(&prompt[pos..end]), caches, true)?;
            transforms::eval(caches.iter().flat_map(|c| c.arrays()))?;
            fed.extend_from_slice(&prompt[pos..end]);
            pos = end;
            if options.abort.is_some() {
                let took = chunk_start.elapsed().as_secs_f64();
                if took < PREFILL_STEP_SECS / 4.0 {
                    chunk = (chunk * 2).min(options.prefill_chunk_size);
                } else if took > PREFILL_STEP_SECS {
                    chunk = (chunk / 2).max(PREFILL_MIN_CHUNK);
                }
            }
        }

        let mut step =
            |token_input: Array, fed_id: Option<u32>, fed: &mut Vec<u32>| -> Result<Array> {
                let logits = model.forward(&token_input, caches, true)?;
                let logits = logits.reshape(&[1, -1])?;
                let next = sampler.sample(&logits)?;
                transforms::async_eval([&next])?;
                if let Some(id) = fed_id {
                    fed.push(id);
                }
                Ok(next)
            };

        let mut stops = StopScanner::new(&options.stop_strings);
        let mut decoder = tokenizer.stream_decoder(options.skip_special_tokens);
        let mut token_ids = Vec::new();
        let mut reads = 0u64;
        let mut first_token_at = None;
        let mut finish = FinishReason::Length;
        let mut listening = true;

        let mut pending = if aborted_in_prefill {
            None
        } else {
            Some(step(token_array(&prompt[last..]), Some(prompt[last]), fed)?)
        };
        while let Some(current) = pending.take() {
            if aborted() {
                finish = FinishReason::Abort;
                break;
            }
            let index = token_ids.len();
            // Queue step n+1 before reading token n (unless n is the last allowed).
            let following = if index + 1 < max_tokens {
                Some(step(current.reshape(&[1, 1])?, None, fed)?)
            } else {
                None
            };
            let id = read_token(&current)?;
            reads += 1;
            if following.is_some() {
                // Step n+1's forward consumed token n: its K/V are in the caches now.
                fed.push(id);
            }
            first_token_at.get_or_insert_with(Instant::now);
            if !options.ignore_eos && (eos_ids.contains(&id) || options.extra_eos_ids.contains(&id))
            {
                finish = FinishReason::Stop;
                break;
            }
            token_ids.push(id);
            let piece = decoder.push(id)?;
            let (emit, stopped) = stops.push(&piece);
            if on_chunk(&Chunk {
                text: &emit,
                token_id: id,
                index,
            })
            .is_break()
            {
                finish = FinishReason::Abort;
                listening = false;
                break;
            }
            if stopped {
                finish = FinishReason::Stop;
                break;
            }
            pending = following;
        }
        if aborted_in_prefill {
            finish = FinishReason::Abort;
        }
        if finish != FinishReason::Stop || !stops.stopped {
            // Flush text held back for an incomplete character or stop prefix.
            let (emit, _) = stops.push(&decoder.finish()?);
            let tail = stops.flush();
            let rest = emit + &tail;
            if !rest.is_empty() && listening {
                let _ = on_chunk(&Chunk {
                    text: &rest,
                    token_id: token_ids.last().copied().unwrap_or_default(),
                    index: token_ids.len().saturating_sub(1),
                });
            }
        }
        HOST_READS.fetch_add(reads, Ordering::Relaxed);

        let end = Instant::now();
        let first = first_token_at.unwrap_or(end);
        let ttft = first.duration_since(start).as_secs_f64();
        let decode_secs = end.duration_since(first).as_secs_f64();
        let prefilled = prompt.len() - cached;
        Ok(GenerationResult {
            text: stops.text,
            usage: Usage {
                prompt_tokens: prompt.len(),
                prefilled_tokens: prefilled,
                completion_tokens: token_ids.len(),
            },
            token_ids,
            finish_reason: finish,
            timings: Timings {
                ttft_ms: ttft * 1e3,
                prefill_tokens_per_s: if ttft > 0.0 {
                    prefilled as f64 / ttft
                } else {
                    0.0
                },
                decode_tokens_per_s: if decode_secs > 0.0 && reads > 1 {
                    (reads - 1) as f64 / decode_secs
                } else {
                    0.0
                },
                total_ms: end.duration_since(start).as_secs_f64() * 1e3,
            },
            host_reads: reads,
        })
    }
}

/// `[1, L]` int32 token array.
pub(crate) fn token_array(ids: &[u32]) -> Array {
    let ids: Vec<i32> = ids.iter().map(|&id| id as i32).collect();
    Array::from_slice(&ids, &[1, ids.len() as i32])
}

/// The single host read of a step.
fn read_token(token: &Array) -> Result<u32> {
    let token = if token.dtype() == Dtype::Int32 {
        token.clone()
    } else {
        token.as_dtype(Dtype::Int32)?
    };
    token.eval()?;
    let id: i32 = token
        .try_item_exact()
        .map_err(|e| Error::Mlx(format!("reading the sampled token: {e}")))?;
    Ok(id as u32)
}

/// Accumulates generated text, finds stop strings, and decides how much of
/// the text is safe to emit.
pub(crate) struct StopScanner<'s> {
    stops: &'s [String],
    /// All text so far (cut at the stop string once found).
    text: String,
    emitted: usize,
    stopped: bool,
}

impl<'s> StopScanner<'s> {
    pub fn new(stops: &'s [String]) -> Self {
        Self {
            stops,
            text: String::new(),
            emitted: 0,
            stopped: false,
        }
    }

    /// Adds a decoded piece; returns the text that may be emitted now and
    /// whether a stop string was completed.
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        if self.stopped {
            return (String::new(), true);
        }
        let search_from = self.text.len();
        self.text.push_str(piece);
        // A stop string may straddle the previous text: look back far enough.
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let mut from = search_from.saturating_sub(longest);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        let found = self
            .stops
            .iter()
            .filter_map(|s| self.text[from..].find(s.as_str()).map(|at| from + at))
            .min();
        if let Some(at) = found {
            self.text.truncate(at);
            self.stopped = true;
            let emit = self
                .text
                .get(self.emitted..)
                .unwrap_or_default()
                .to_string();
            self.emitted = self.text.len().max(self.emitted);
            return (emit, true);
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        let held = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.text, s))
            .max()
            .unwrap_or(0);
        let safe = (self.text.len() - held).max(self.emitted);
        let emit = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        (emit, false)
    }

    /// Releases held-back text at the end of generation.
    pub fn flush(&mut self) -> String {
        let rest = self
            .text
            .get(self.emitted..)
            .unwrap_or_default()
            .to_string();
        self.emitted = self.text.len();
        rest
    }

    #[cfg(test)]
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Length of the longest proper prefix of `stop` that `text` ends with.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    (1..stop.len())
        .rev()
        .find(|&n| stop.is_char_boundary(n) && text.ends_with(&stop[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut scanner = StopScanner::new(&stops);
        let mut out = Vec::new();
        let mut stopped = false;
        for piece in pieces {
            let (emit, s) = scanner.push(piece);
            out.push(emit);
            if s {
                stopped = true;
                break;
            }
        }
        if !stopped {
            out.push(scanner.flush());
        }
        (out, scanner.text().to_string(), stopped)
    }

    #[test]
    fn stop_string_split_over_pieces_is_never_emitted() {
        let (out, text, stopped) = run(&["###"], &["Hello", " #", "#", "# tail"]);
        assert!(stopped);
        assert_eq!(text, "Hello ");
        assert_eq!(out, vec!["Hello", " ", "", ""]);
    }

    #[test]
    fn false_alarm_prefix_is_released() {
        let (out, text, stopped) = run(&["END"], &["a E", "N", "x", " done"]);
        assert!(!stopped);
        assert_eq!(text, "a ENx done");
        assert_eq!(out.concat(), "a ENx done");
        assert_eq!(out[0], "a ", "'E' is held back");
        assert_eq!(out[1], "", "'EN' is held back");
    }

    #[test]
    fn held_text_flushes_at_the_end() {
        let (out, _, stopped) = run(&["</s>"], &["x </"]);
        assert!(!stopped);
        assert_eq!(out, vec!["x ", "</"]);
    }

    #[test]
    fn earliest_of_several_stops_wins_with_unicode() {
        let (out, text, stopped) = run(&["ß!", "é"], &["añé b ß!"]);
        assert!(stopped);
        assert_eq!(text, "añ");
        assert_eq!(out, vec!["añ"]);
    }
}
