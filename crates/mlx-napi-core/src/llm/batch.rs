//! Continuous batching: concurrent generations on one model decode together,
//! one forward pass per step for all of them.
//!
//! Requests wait in a [`RequestQueue`]; [`Llm::serve`] (run on the model's
//! thread) takes them at step boundaries, up to `max_batch` at a time. Each
//! joins the way it would run alone — the token stream's prefill and first
//! step, on its own cache — and then moves into the shared
//! [`BatchKvCache`] (left-padded, with per-row RoPE positions). Every row
//! keeps its own sampler (settings, penalty state, seed), stop conditions,
//! text layer and limits; a finished row leaves at once and frees its slot.
//! Decoding stays double-buffered: step n+1 of every row is queued before the
//! step-n tokens are read, in one host read for the whole batch.
//!
//! Sampling: when every row is greedy without logit processors the batch
//! takes one argmax; otherwise each row runs its own sampler on its logits
//! row (still one graph, one read).
//!
//! Generations that cannot share a batch cache run alone when their turn
//! comes (the batch waits meanwhile): sliding-window models, and requests
//! with `max_kv_size`.

use std::{
    collections::VecDeque,
    ops::ControlFlow,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use mlx_rs::{
    ops::{self, indexing::TryIndexOp},
    Dtype,
};

use super::{
    options::{Chunk, FinishReason, GenerateOptions, GenerationResult},
    text::{Counts, TextLayer},
    token_stream::{Pending, TokenStream},
    Llm, PromptSource,
};
use crate::{
    cache::BatchKvCache,
    sampling::{logprobs, Sampler},
    Error, Result,
};

/// Largest `max_batch` a model accepts.
pub const MAX_BATCH_SIZE: usize = 1024;

/// Most rows decoded together when the caller does not say: enough to fill
/// a GPU with small models, few enough that a CPU stays responsive.
pub fn default_max_batch_size() -> usize {
    let gpu = crate::backend::backend_info().is_ok_and(|info| info.device == "gpu");
    if gpu {
        32
    } else {
        8
    }
}

/// Where a queued generation reports to (from the model's thread).
pub trait GenerationSink: Send {
    /// The request left the queue and starts (before its prefill).
    fn started(&mut self) {}
    /// A streamed piece; `Break` stops this generation (`finish_reason` "abort").
    fn chunk(&mut self, chunk: &Chunk) -> ControlFlow<()>;
    /// The outcome; called exactly once per request (with `ERR_INTERNAL` if
    /// the engine failed before it could finish the request).
    fn finish(&mut self, result: Result<GenerationResult>);
}

/// A generation waiting for a slot in the batch.
pub struct GenerationRequest {
    pub prompt: PromptSource,
    pub options: GenerateOptions,
    sink: SinkSlot,
    queued_at: Instant,
}

impl GenerationRequest {
    pub fn new(
        prompt: PromptSource,
        options: GenerateOptions,
        sink: Box<dyn GenerationSink>,
    ) -> Self {
        Self {
            prompt,
            options,
            sink: SinkSlot(Some(sink)),
            queued_at: Instant::now(),
        }
    }

    /// Ends the request without running it.
    pub fn reject(mut self, error: Error) {
        self.sink.finish(Err(error));
    }
}

/// Requests waiting for a model, in arrival order.
#[derive(Default)]
pub struct RequestQueue {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    pending: VecDeque<GenerationRequest>,
    closed: bool,
}

impl RequestQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `request`; gives it back when the queue is closed.
    pub fn push(&self, request: GenerationRequest) -> std::result::Result<(), GenerationRequest> {
        let mut state = self.state.lock().unwrap();
        if state.closed {
            return Err(request);
        }
        state.pending.push_back(request);
        Ok(())
    }

    /// Refuses further requests and ends every waiting one with `ERR_DISPOSED`
    /// (rows already decoding finish).
    pub fn close(&self) {
        let waiting = {
            let mut state = self.state.lock().unwrap();
            state.closed = true;
            std::mem::take(&mut state.pending)
        };
        for request in waiting {
            request.reject(Error::Disposed);
        }
    }

    pub fn len(&self) -> usize {
        self.state.lock().unwrap().pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pop(&self) -> Option<GenerationRequest> {
        self.state.lock().unwrap().pending.pop_front()
    }
}

/// How [`Llm::serve`] runs.
pub struct ServeOptions<'a> {
    /// Most rows decoding at once (≥ 1).
    pub max_batch: usize,
    /// Asked before taking a request: `true` stops taking new ones (rows in
    /// flight finish, then `serve` returns) so that other work waiting for
    /// the model's thread gets its turn.
    pub yield_now: &'a dyn Fn() -> bool,
}

/// Finishes its request exactly once; a request dropped unfinished (a panic
/// unwinding through the engine) ends with `ERR_INTERNAL`.
struct SinkSlot(Option<Box<dyn GenerationSink>>);

impl SinkSlot {
    fn started(&mut self) {
        if let Some(sink) = &mut self.0 {
            sink.started();
        }
    }

    fn chunk(&mut self, chunk: &Chunk) -> ControlFlow<()> {
        match &mut self.0 {
            Some(sink) => sink.chunk(chunk),
            None => ControlFlow::Break(()),
        }
    }

    fn finish(&mut self, result: Result<GenerationResult>) {
        if let Some(mut sink) = self.0.take() {
            sink.finish(result);
        }
    }
}

impl Drop for SinkSlot {
    fn drop(&mut self) {
        self.finish(Err(Error::Internal(
            "the generation ended without a result".into(),
        )));
    }
}

/// One sequence decoding in the batch.
struct Row<'t> {
    sink: SinkSlot,
    text: TextLayer<'t>,
    sampler: Sampler,
    top_logprobs: Option<usize>,
    abort: Option<Arc<AtomicBool>>,
    max_tokens: usize,
    produced: usize,
    reads: u64,
    prompt_tokens: usize,
    queue_ms: f64,
}

impl Row<'_> {
    fn aborted(&self) -> bool {
        self.abort
            .as_ref()
            .is_some_and(|a| a.load(Ordering::Relaxed))
    }

    fn finish(self, reason: FinishReason) {
        let Row {
            mut sink,
            text,
            prompt_tokens,
            reads,
            queue_ms,
            ..
        } = self;
        let counts = Counts {
            prompt_tokens,
            prefilled_tokens: prompt_tokens,
            host_reads: reads,
            queue_ms,
        };
        let result = text.finish(reason, counts, &mut |c| sink.chunk(c));
        sink.finish(result);
    }
}

/// The rows decoding together, their shared cache and their queued step.
struct Batch<'t> {
    rows: Vec<Row<'t>>,
    cache: BatchKvCache,
    /// The step whose tokens are read next (one row each).
    pending: Option<Pending>,
}

impl Llm {
    /// Serves `queue` until it is empty and every row has finished, decoding
    /// up to `options.max_batch` requests together (continuous batching: new
    /// requests join at step boundaries). Every request is finished through
    /// its sink, successfully or not.
    pub fn serve(&self, queue: &RequestQueue, options: &ServeOptions) {
        let mut batch = Batch {
            rows: Vec::new(),
            cache: BatchKvCache::new(self.model.num_layers()),
            pending: None,
        };
        let max_batch = options.max_batch.max(1);
        loop {
            while batch.rows.len() < max_batch && !(options.yield_now)() {
                let Some(request) = queue.pop() else { break };
                if let Err(e) = self.admit(request, &mut batch) {
                    self.fail_batch(&mut batch, e);
                }
            }
            if batch.rows.is_empty() {
                return;
            }
            if let Err(e) = self.batch_step(&mut batch) {
                self.fail_batch(&mut batch, e);
            }
        }
    }

    /// Decodes `prompts` together (up to `max_batch` at a time), each with
    /// `options`; the results are in prompt order.
    pub fn generate_batch(
        &self,
        prompts: &[super::Prompt],
        options: &GenerateOptions,
        max_batch: usize,
    ) -> Vec<Result<GenerationResult>> {
        struct Collect(Arc<Mutex<Option<Result<GenerationResult>>>>);
        impl GenerationSink for Collect {
            fn chunk(&mut self, _: &Chunk) -> ControlFlow<()> {
                ControlFlow::Continue(())
            }
            fn finish(&mut self, result: Result<GenerationResult>) {
                *self.0.lock().unwrap() = Some(result);
            }
        }
        let queue = RequestQueue::new();
        let slots: Vec<_> = prompts
            .iter()
            .map(|prompt| {
                let slot = Arc::new(Mutex::new(None));
                let request = GenerationRequest::new(
                    PromptSource::from(*prompt),
                    options.clone(),
                    Box::new(Collect(slot.clone())),
                );
                let _ = queue.push(request);
                slot
            })
            .collect();
        self.serve(
            &queue,
            &ServeOptions {
                max_batch,
                yield_now: &|| false,
            },
        );
        slots
            .into_iter()
            .map(|slot| {
                slot.lock().unwrap().take().unwrap_or_else(|| {
                    Err(Error::Internal("a batched generation got no result".into()))
                })
            })
            .collect()
    }

    /// Ends every row with (a copy of) `error` and empties the batch.
    fn fail_batch(&self, batch: &mut Batch, error: Error) {
        for mut row in batch.rows.drain(..) {
            row.sink.finish(Err(error.duplicate()));
        }
        batch.cache = BatchKvCache::new(self.model.num_layers());
        batch.pending = None;
    }

    /// Starts `request`: alone up to its first sampled token, then into the
    /// batch. Errors of the request itself end it; `Err` is a failure of the
    /// batch (its cache could not take the row).
    fn admit<'t>(&'t self, request: GenerationRequest, batch: &mut Batch<'t>) -> Result<()> {
        let GenerationRequest {
            prompt,
            options,
            mut sink,
            queued_at,
        } = request;
        sink.started();
        let start = Instant::now();
        let queue_ms = start.duration_since(queued_at).as_secs_f64() * 1e3;
        if !self.model.supports_batching() || options.max_kv_size.is_some() {
            let result =
                self.generate_timed(prompt.as_prompt(), &options, start, queue_ms, &mut |c| {
                    sink.chunk(c)
                });
            sink.finish(result);
            return Ok(());
        }
        let started = (|| {
            let ids = self.encode_prompt(prompt.as_prompt())?;
            let mut caches = self.model.new_caches();
            let mut fed = Vec::new();
            let first = TokenStream::start(
                self.model.as_ref(),
                &mut caches,
                &mut fed,
                &ids,
                0,
                &options,
            )?
            .into_first_step();
            Ok((ids.len(), caches, first))
        })();
        let (prompt_tokens, caches, first) = match started {
            Ok(s) => s,
            Err(e) => {
                sink.finish(Err(e));
                return Ok(());
            }
        };
        let row = Row {
            sink,
            text: TextLayer::new(&self.tokenizer, &self.eos_ids, &options, start),
            sampler: first.sampler,
            top_logprobs: options.logprobs,
            abort: options.abort.clone(),
            max_tokens: first.max_tokens,
            produced: 0,
            reads: 0,
            prompt_tokens,
            queue_ms,
        };
        let Some(pending) = first.pending else {
            // Aborted during prefill.
            row.finish(FinishReason::Abort);
            return Ok(());
        };
        batch.cache.push_row(&caches)?;
        batch.pending = Some(match batch.pending.take() {
            Some(p) => p.concat(pending)?,
            None => pending,
        });
        batch.rows.push(row);
        Ok(())
    }

    /// One step of the batch: queue the next forward pass, read this step's
    /// tokens, hand them to the rows, let finished rows go.
    fn batch_step(&self, batch: &mut Batch) -> Result<()> {
        let pending = batch
            .pending
            .take()
            .ok_or_else(|| Error::Internal("a batch without a queued step".into()))?;
        let following = if batch.rows.iter().any(|r| r.produced + 1 < r.max_tokens) {
            Some(self.batch_forward(batch, &pending)?)
        } else {
            None
        };
        let tops: Vec<Option<usize>> = batch.rows.iter().map(|r| r.top_logprobs).collect();
        let tokens = pending.read(&tops)?;
        let mut keep = Vec::with_capacity(batch.rows.len());
        let mut kept = Vec::with_capacity(batch.rows.len());
        for (i, (mut row, token)) in batch.rows.drain(..).zip(tokens).enumerate() {
            row.reads += 1;
            let end = if row.aborted() {
                Some(FinishReason::Abort)
            } else {
                row.produced += 1;
                let pushed = row
                    .text
                    .push(token.id, token.logprob, &mut |c| row.sink.chunk(c));
                match pushed {
                    Ok(Some(reason)) => Some(reason),
                    Ok(None) if row.produced >= row.max_tokens => Some(FinishReason::Length),
                    Ok(None) => None,
                    Err(e) => {
                        row.sink.finish(Err(e));
                        continue;
                    }
                }
            };
            match end {
                Some(reason) => row.finish(reason),
                None => {
                    keep.push(i);
                    kept.push(row);
                }
            }
        }
        batch.rows = kept;
        batch.cache.retain_rows(&keep)?;
        batch.pending = match following {
            Some(f) if !batch.rows.is_empty() => Some(f.select(&keep)?),
            _ => None,
        };
        Ok(())
    }

    /// Forward pass of every row's pending token and sampling, queued.
    fn batch_forward(&self, batch: &mut Batch, pending: &Pending) -> Result<Pending> {
        let rows = batch.rows.len() as i32;
        let input = pending.tokens.reshape(&[rows, 1])?;
        let logits = self.model.forward_batch(&input, &mut batch.cache)?;
        let top = batch.rows.iter().filter_map(|r| r.top_logprobs).max();
        if batch.rows.iter().all(|r| r.sampler.is_plain_greedy()) {
            let tokens = ops::indexing::argmax_axis(&logits, -1, false)?.as_dtype(Dtype::Int32)?;
            let packed = top
                .map(|k| logprobs::pack(&logits.as_dtype(Dtype::Float32)?, &tokens, k))
                .transpose()?;
            return Pending::new(tokens, packed);
        }
        let mut tokens = Vec::with_capacity(batch.rows.len());
        let mut packed = Vec::new();
        for (i, row) in batch.rows.iter_mut().enumerate() {
            let i = i as i32;
            let (t, p) = row
                .sampler
                .sample_with_logprobs(&logits.try_index((i..i + 1, ..))?, top)?;
            tokens.push(t);
            packed.extend(p);
        }
        let tokens = ops::concatenate(&tokens, 0)?;
        let packed = (!packed.is_empty())
            .then(|| ops::concatenate(&packed, 0))
            .transpose()?;
        Pending::new(tokens, packed)
    }
}
