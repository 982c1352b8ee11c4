//! The text layer over a token stream (mlx-lm's `stream_generate` over
//! `generate_step`): token ids in; EOS, stop strings, streamed text, timings
//! and the final result out. One per sequence, solo or in a batch.

use std::{ops::ControlFlow, time::Instant};

use super::{
    options::{Chunk, FinishReason, GenerateOptions, GenerationResult, Timings, ToolReply, Usage},
    tools::{parse_tool_calls, Tool},
};
use crate::{
    sampling::TokenLogprob,
    tokenizer::{StreamDecoder, Tokenizer},
    Result,
};

/// One sequence's text state.
pub(crate) struct TextLayer<'t> {
    eos_ids: &'t [u32],
    extra_eos_ids: Vec<u32>,
    ignore_eos: bool,
    decoder: StreamDecoder<'t>,
    stops: StopScanner,
    token_ids: Vec<u32>,
    logprobs: Option<Vec<TokenLogprob>>,
    start: Instant,
    first_token_at: Option<Instant>,
    /// False once the chunk callback asked to stop: it is not called again.
    listening: bool,
    /// Offered tools: the final text is parsed for calls of these.
    tools: Option<Vec<Tool>>,
}

/// How many tokens went in and came out, for the result.
pub(crate) struct Counts {
    pub prompt_tokens: usize,
    pub prefilled_tokens: usize,
    pub host_reads: u64,
    pub queue_ms: f64,
}

impl<'t> TextLayer<'t> {
    /// `start`: when this generation began (its time to first token counts from here).
    pub fn new(
        tokenizer: &'t Tokenizer,
        eos_ids: &'t [u32],
        options: &GenerateOptions,
        start: Instant,
    ) -> Self {
        Self {
            eos_ids,
            extra_eos_ids: options.extra_eos_ids.clone(),
            ignore_eos: options.ignore_eos,
            decoder: tokenizer.stream_decoder(options.skip_special_tokens),
            stops: StopScanner::new(options.stop_strings.clone()),
            token_ids: Vec::new(),
            logprobs: options.logprobs.map(|_| Vec::new()),
            start,
            first_token_at: None,
            listening: true,
            tools: options.offers_tools().then(|| options.tools.clone()),
        }
    }

    /// Takes the next token; `Some(reason)` when the generation ends with it
    /// (EOS, a completed stop string, or the callback asking to stop).
    pub fn push(
        &mut self,
        id: u32,
        logprob: Option<TokenLogprob>,
        on_chunk: &mut dyn FnMut(&Chunk) -> ControlFlow<()>,
    ) -> Result<Option<FinishReason>> {
        self.first_token_at.get_or_insert_with(Instant::now);
        if !self.ignore_eos && (self.eos_ids.contains(&id) || self.extra_eos_ids.contains(&id)) {
            return Ok(Some(FinishReason::Stop));
        }
        let index = self.token_ids.len();
        self.token_ids.push(id);
        let piece = self.decoder.push(id)?;
        let (emit, stopped) = self.stops.push(&piece);
        let logprob = match (&mut self.logprobs, logprob) {
            (Some(all), Some(lp)) => {
                all.push(lp);
                all.last()
            }
            _ => None,
        };
        let chunk = Chunk {
            text: &emit,
            token_id: id,
            index,
            logprob,
        };
        if on_chunk(&chunk).is_break() {
            self.listening = false;
            return Ok(Some(FinishReason::Abort));
        }
        Ok(stopped.then_some(FinishReason::Stop))
    }

    /// Flushes held-back text (unless a stop string ended it) and builds the result.
    pub fn finish(
        mut self,
        finish_reason: FinishReason,
        counts: Counts,
        on_chunk: &mut dyn FnMut(&Chunk) -> ControlFlow<()>,
    ) -> Result<GenerationResult> {
        if finish_reason != FinishReason::Stop || !self.stops.stopped {
            // Text held back for an incomplete character or stop prefix.
            let (emit, _) = self.stops.push(&self.decoder.finish()?);
            let rest = emit + &self.stops.flush();
            if !rest.is_empty() && self.listening {
                let _ = on_chunk(&Chunk {
                    text: &rest,
                    token_id: self.token_ids.last().copied().unwrap_or_default(),
                    index: self.token_ids.len().saturating_sub(1),
                    logprob: None,
                });
            }
        }
        let end = Instant::now();
        let first = self.first_token_at.unwrap_or(end);
        let ttft = first.duration_since(self.start).as_secs_f64();
        let decode_secs = end.duration_since(first).as_secs_f64();
        let reads = counts.host_reads;
        let text = std::mem::take(&mut self.stops.text);
        let tools = self.tools.as_ref().map(|tools| {
            let (content, calls) = parse_tool_calls(&text, tools);
            ToolReply { content, calls }
        });
        Ok(GenerationResult {
            tools,
            text,
            usage: Usage {
                prompt_tokens: counts.prompt_tokens,
                prefilled_tokens: counts.prefilled_tokens,
                completion_tokens: self.token_ids.len(),
            },
            token_ids: self.token_ids,
            finish_reason,
            timings: Timings {
                queue_ms: counts.queue_ms,
                ttft_ms: ttft * 1e3,
                prefill_tokens_per_s: if ttft > 0.0 {
                    counts.prefilled_tokens as f64 / ttft
                } else {
                    0.0
                },
                decode_tokens_per_s: if decode_secs > 0.0 && reads > 1 {
                    (reads - 1) as f64 / decode_secs
                } else {
                    0.0
                },
                total_ms: end.duration_since(self.start).as_secs_f64() * 1e3,
            },
            host_reads: reads,
            logprobs: self.logprobs,
        })
    }
}

/// Accumulates generated text, finds stop strings, and decides how much of
/// the text is safe to emit.
pub(crate) struct StopScanner {
    stops: Vec<String>,
    /// All text so far (cut at the stop string once found).
    text: String,
    emitted: usize,
    stopped: bool,
}

impl StopScanner {
    pub fn new(stops: Vec<String>) -> Self {
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
        let mut scanner = StopScanner::new(stops);
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
