//! Continuous batching: concurrent generations on one model decode together,
//! one forward pass per step for all of them.
//!
//! Requests wait in a [`RequestQueue`]; [`Llm::serve`] (run on the model's
//! thread) takes them at step boundaries, up to `max_batch` at a time. One
//! arriving alone starts the way it would run alone — the token stream's
//! prefill and first step, on its own cache; several arriving together
//! prefill as one right-padded batch (mlx-lm's prefill batches; groups of
//! similar length) and sample their first token in the batch's next step.
//! Either way they move into the shared [`BatchKvCache`] (left-padded, with
//! per-row RoPE positions). Every row
//! keeps its own sampler (settings, penalty state, seed), stop conditions,
//! text layer and limits; a finished row leaves at once and frees its slot.
//! Decoding stays double-buffered: step n+1 of every row is queued before the
//! step-n tokens are read, in one host read for the whole batch.
//!
//! Sampling: when every row is greedy without logit processors the batch
//! takes one argmax; otherwise each row runs its own sampler on its logits
//! row (still one graph, one read).
//!
//! Constrained rows (`GenerateOptions::constraint`): while any row of the
//! batch has a constraint, a step's forward pass is still queued before the
//! previous tokens are read, but the sampling of every row is built after
//! the read — a constrained row's mask depends on the token just read, and
//! is computed on the host while the device runs the forward pass.
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
    transforms, Array, Dtype,
};

use super::{
    constraint::Constraint,
    options::{Chunk, FinishReason, GenerateOptions, GenerationResult},
    text::{Counts, TextLayer},
    token_stream::{check_prompt, Chunking, Pending, StreamToken, TokenStream},
    Llm, PromptSource,
};
use crate::{
    cache::{BatchKvCache, KvCache},
    sampling::{logprobs, AllowedTokens, Sampler},
    Error, Result,
};

/// Largest `max_batch` a model accepts.
pub const MAX_BATCH_SIZE: usize = 1024;

/// Most rows decoded together when the caller does not say: enough to fill
/// a GPU with small models, few enough that a CPU stays responsive.
pub fn default_max_batch_size() -> usize {
    if crate::backend::default_device_is_gpu() {
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
    pub fn push(
        &self,
        request: GenerationRequest,
    ) -> std::result::Result<(), Box<GenerationRequest>> {
        let mut state = self.state.lock().unwrap();
        if state.closed {
            return Err(Box::new(request));
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
    /// Joined with its last prompt token queued: the next read is not its.
    warming: bool,
    prompt_tokens: usize,
    queue_ms: f64,
    constraint: Option<Constraint>,
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

impl Batch<'_> {
    /// Queues joining rows' step after the existing rows'.
    fn add_pending(&mut self, pending: Pending) -> Result<()> {
        self.pending = Some(match self.pending.take() {
            Some(p) => p.concat(pending)?,
            None => pending,
        });
        Ok(())
    }
}

/// A request out of the queue, tokenized and checked, not yet in the batch.
struct Admitted {
    sink: SinkSlot,
    options: GenerateOptions,
    ids: Vec<u32>,
    max_tokens: usize,
    start: Instant,
    queue_ms: f64,
    constraint: Option<Constraint>,
}

impl Admitted {
    fn aborted(&self) -> bool {
        self.options
            .abort
            .as_ref()
            .is_some_and(|a| a.load(Ordering::Relaxed))
    }
}

/// Most requests prefilled in one batch (mlx-lm's `prefill_batch_size`).
const PREFILL_GROUP: usize = 8;

/// Splits requests (longest prompt first) into prefill groups of up to
/// [`PREFILL_GROUP`] whose padding stays small: a group's padded size
/// (rows × longest) is at most twice its real tokens (plus a little).
fn prefill_groups(requests: Vec<Admitted>) -> Vec<Vec<Admitted>> {
    let mut groups: Vec<Vec<Admitted>> = Vec::new();
    for a in requests {
        let fits = groups.last().is_some_and(|g| {
            let longest = g[0].ids.len();
            let real: usize = g.iter().map(|x| x.ids.len()).sum::<usize>() + a.ids.len();
            g.len() < PREFILL_GROUP && longest * (g.len() + 1) <= 2 * real + 256
        });
        if fits {
            groups.last_mut().unwrap().push(a);
        } else {
            groups.push(vec![a]);
        }
    }
    groups
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
            let mut arrived = Vec::new();
            if !(options.yield_now)() {
                while batch.rows.len() + arrived.len() < max_batch {
                    let Some(request) = queue.pop() else { break };
                    arrived.push(request);
                }
            }
            if !arrived.is_empty() {
                if let Err(e) = self.admit_all(arrived, &mut batch) {
                    self.fail_batch(&mut batch, e);
                }
            }
            if batch.rows.is_empty() {
                // Statics MLX created for these steps: see the runtime module.
                crate::runtime::guard_exit_again();
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

    /// Starts the requests that arrived since the last step. One alone
    /// (or the only one of a prefill group) runs the token stream's own
    /// prefill and first step, exactly as it would alone; several prefill
    /// together, grouped by similar length, and sample their first token in
    /// the batch's next step. Errors of a request end it; `Err` is a failure
    /// of the batch (its cache could not take the rows).
    fn admit_all<'t>(
        &'t self,
        requests: Vec<GenerationRequest>,
        batch: &mut Batch<'t>,
    ) -> Result<()> {
        let mut ready: Vec<Admitted> = requests.into_iter().filter_map(|r| self.take(r)).collect();
        // Longest first; a one-token prompt has nothing to prefill.
        ready.sort_by_key(|a| std::cmp::Reverse(a.ids.len()));
        let singles = ready
            .iter()
            .rposition(|a| a.ids.len() > 1)
            .map_or(0, |last| last + 1);
        let alone: Vec<Admitted> = ready.split_off(singles);
        for group in prefill_groups(ready) {
            if group.len() == 1 {
                self.join_alone(group.into_iter().next().unwrap(), batch)?;
            } else {
                self.join_group(group, batch)?;
            }
        }
        for a in alone {
            self.join_alone(a, batch)?;
        }
        Ok(())
    }

    /// Takes a request out of the queue: its prompt tokenized and checked,
    /// or — when it cannot share the batch cache — run alone to its end.
    /// `None` when it already ended (an error, or it ran alone).
    fn take(&self, request: GenerationRequest) -> Option<Admitted> {
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
            return None;
        }
        let checked = self
            .encode_request(prompt.as_prompt(), &options)
            .and_then(|ids| {
                let max_tokens = check_prompt(self.model.as_ref(), &ids, &options)?;
                let constraint = self.compile_constraint(&options)?;
                Ok((ids, max_tokens, constraint))
            });
        match checked {
            Ok((ids, max_tokens, constraint)) => Some(Admitted {
                sink,
                options,
                ids,
                max_tokens,
                start,
                queue_ms,
                constraint,
            }),
            Err(e) => {
                sink.finish(Err(e));
                None
            }
        }
    }

    /// Ends `a`, aborted before its first token.
    fn finish_aborted(&self, a: Admitted) {
        let Admitted {
            mut sink,
            options,
            ids,
            start,
            queue_ms,
            ..
        } = a;
        let counts = Counts {
            prompt_tokens: ids.len(),
            prefilled_tokens: ids.len(),
            host_reads: 0,
            queue_ms,
        };
        let text = TextLayer::new(&self.tokenizer, &self.eos_ids, &options, start);
        let result = text.finish(FinishReason::Abort, counts, &mut |c| sink.chunk(c));
        sink.finish(result);
    }

    /// A row for `a`, whose first token comes next.
    fn row<'t>(
        &'t self,
        a: Admitted,
        sampler: Sampler,
        max_tokens: usize,
        warming: bool,
        constraint: Option<Constraint>,
    ) -> Row<'t> {
        Row {
            text: TextLayer::new(&self.tokenizer, &self.eos_ids, &a.options, a.start),
            sink: a.sink,
            sampler,
            top_logprobs: a.options.logprobs,
            abort: a.options.abort.clone(),
            max_tokens,
            produced: 0,
            reads: 0,
            warming,
            prompt_tokens: a.ids.len(),
            queue_ms: a.queue_ms,
            constraint,
        }
    }

    /// Alone up to its first sampled token (the token stream), then into the batch.
    fn join_alone<'t>(&'t self, mut a: Admitted, batch: &mut Batch<'t>) -> Result<()> {
        let started = (|| {
            let mut caches = self.model.new_caches();
            let mut fed = Vec::new();
            let first = TokenStream::start(
                self.model.as_ref(),
                &mut caches,
                &mut fed,
                &a.ids,
                0,
                &a.options,
                a.constraint.take(),
            )?
            .into_first_step();
            Ok((caches, first))
        })();
        let (caches, first) = match started {
            Ok(s) => s,
            Err(e) => {
                a.sink.finish(Err(e));
                return Ok(());
            }
        };
        let row = self.row(a, first.sampler, first.max_tokens, false, first.constraint);
        let Some(pending) = first.pending else {
            // Aborted during prefill.
            row.finish(FinishReason::Abort);
            return Ok(());
        };
        batch.cache.push_row(&caches)?;
        batch.add_pending(pending)?;
        batch.rows.push(row);
        Ok(())
    }

    /// Prefills `group` (prompts of ≥ 2 tokens) in one batch — right-padded,
    /// so plain causal attention keeps every row to its own tokens — and
    /// moves the rows into the batch with their last prompt token queued:
    /// the batch's next step samples their first token. A row aborted
    /// during the prefill ends at once (its slot is computed to the end).
    fn join_group<'t>(&'t self, group: Vec<Admitted>, batch: &mut Batch<'t>) -> Result<()> {
        let mut rows: Vec<Option<Admitted>> = group.into_iter().map(Some).collect();
        let prefill = (|| -> Result<Option<(Vec<KvCache>, Vec<usize>)>> {
            let lens: Vec<usize> = rows.iter().flatten().map(|a| a.ids.len() - 1).collect();
            let width = lens.iter().copied().max().unwrap_or(0);
            let mut flat = vec![0i32; rows.len() * width];
            for (i, a) in rows.iter().flatten().enumerate() {
                for (j, &id) in a.ids[..lens[i]].iter().enumerate() {
                    flat[i * width + j] = id as i32;
                }
            }
            let tokens = Array::from_slice(&flat, &[rows.len() as i32, width as i32]);
            let mut caches = self.model.new_caches();
            // `prefillChunkSize` bounds the tokens of one forward pass (all
            // rows together), as it does alone.
            let max_chunk = rows
                .iter()
                .flatten()
                .map(|a| a.options.prefill_chunk_size)
                .min()
                .unwrap_or(1)
                / rows.len();
            let mut chunk = Chunking::new(
                max_chunk,
                rows.iter().flatten().any(|a| a.options.abort.is_some()),
            );
            let mut pos = 0;
            while pos < width {
                for slot in rows.iter_mut() {
                    if slot.as_ref().is_some_and(Admitted::aborted) {
                        self.finish_aborted(slot.take().unwrap());
                    }
                }
                if rows.iter().all(Option::is_none) {
                    return Ok(None);
                }
                let end = (pos + chunk.size()).min(width);
                let began = Instant::now();
                let part = tokens.try_index((.., pos as i32..end as i32))?;
                self.model.forward(&part, &mut caches, true)?;
                transforms::eval(caches.iter().flat_map(|c| c.arrays()))?;
                chunk.adapt(began.elapsed().as_secs_f64());
                pos = end;
            }
            Ok(Some((caches, lens)))
        })();
        let (caches, lens) = match prefill {
            Ok(Some(done)) => done,
            Ok(None) => return Ok(()),
            Err(e) => {
                for mut a in rows.into_iter().flatten() {
                    a.sink.finish(Err(e.duplicate()));
                }
                return Ok(());
            }
        };
        let contents = caches
            .iter()
            .map(|c| {
                c.contents()?
                    .ok_or_else(|| Error::Internal("a prefill left an empty cache".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut joining = Vec::new();
        let mut kv_rows = Vec::new();
        let mut last_ids = Vec::new();
        for (i, slot) in rows.into_iter().enumerate() {
            let Some(mut a) = slot else { continue };
            if a.aborted() {
                self.finish_aborted(a);
                continue;
            }
            let (r, n) = (i as i32, lens[i] as i32);
            kv_rows.push(
                contents
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            k.try_index((r..r + 1, .., ..n))?,
                            v.try_index((r..r + 1, .., ..n))?,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?,
            );
            let sampler = Sampler::new(
                a.options.sampler.clone(),
                self.model.vocab_size(),
                1,
                &[&a.ids],
            )?;
            last_ids.push(*a.ids.last().unwrap() as i32);
            let max = a.max_tokens;
            let constraint = a.constraint.take();
            joining.push(self.row(a, sampler, max, true, constraint));
        }
        if joining.is_empty() {
            return Ok(());
        }
        batch.cache.push_rows(kv_rows)?;
        let queued = Array::from_slice(&last_ids, &[last_ids.len() as i32]);
        batch.add_pending(Pending::new(queued, None)?)?;
        batch.rows.extend(joining);
        Ok(())
    }

    /// One step of the batch: queue the next forward pass, read this step's
    /// tokens, hand them to the rows, let finished rows go.
    fn batch_step(&self, batch: &mut Batch) -> Result<()> {
        let pending = batch
            .pending
            .take()
            .ok_or_else(|| Error::Internal("a batch without a queued step".into()))?;
        let more = batch
            .rows
            .iter()
            .any(|r| r.warming || r.produced + 1 < r.max_tokens);
        // With a constrained row, only the forward pass is queued now; the
        // sampling waits for the masks that this step's tokens decide.
        let constrained = batch.rows.iter().any(|r| r.constraint.is_some());
        let (following, logits) = match (more, constrained) {
            (false, _) => (None, None),
            (true, false) => (Some(self.batch_forward(batch, &pending)?), None),
            (true, true) => {
                let logits = self.batch_logits(batch, &pending)?;
                transforms::async_eval([&logits])?;
                (None, Some(logits))
            }
        };
        // Rows that joined with their last prompt token queued have nothing
        // to read yet; when all rows are such, the step needs no read.
        let tokens: Vec<Option<StreamToken>> = if batch.rows.iter().all(|r| r.warming) {
            batch.rows.iter().map(|_| None).collect()
        } else {
            let tops: Vec<Option<usize>> = batch.rows.iter().map(|r| r.top_logprobs).collect();
            pending.read(&tops)?.into_iter().map(Some).collect()
        };
        let mut keep = Vec::with_capacity(batch.rows.len());
        let mut kept = Vec::with_capacity(batch.rows.len());
        let mut masks = Vec::with_capacity(batch.rows.len());
        for (i, (mut row, token)) in batch.rows.drain(..).zip(tokens).enumerate() {
            let end = if row.aborted() {
                Some(FinishReason::Abort)
            } else if row.warming {
                // The step just queued samples its first token.
                row.warming = false;
                None
            } else if let Some(token) = token {
                row.reads += 1;
                row.produced += 1;
                let pushed = row
                    .text
                    .push(token.id, token.logprob, &mut |c| row.sink.chunk(c));
                let complete = match row.constraint.as_mut() {
                    Some(c) => c.consume(token.id),
                    None => Ok(false),
                };
                match pushed.and_then(|end| Ok((end, complete?))) {
                    Ok((Some(reason), _)) => Some(reason),
                    // The constraint admits nothing more: the output is whole.
                    Ok((None, true)) => Some(FinishReason::Stop),
                    Ok((None, false)) if row.produced >= row.max_tokens => {
                        Some(FinishReason::Length)
                    }
                    Ok((None, false)) => None,
                    Err(e) => {
                        row.sink.finish(Err(e));
                        continue;
                    }
                }
            } else {
                return Err(Error::Internal(
                    "a batch step read no token for a row".into(),
                ));
            };
            match end {
                Some(reason) => row.finish(reason),
                None => {
                    // The next mask, now that this token is known; a row whose
                    // constraint fails ends alone, the others go on.
                    let mask = match (&logits, row.constraint.as_mut()) {
                        (Some(_), Some(c)) => match c.mask() {
                            Ok(m) => Some(m),
                            Err(e) => {
                                row.sink.finish(Err(e));
                                continue;
                            }
                        },
                        _ => None,
                    };
                    masks.push(mask);
                    keep.push(i);
                    kept.push(row);
                }
            }
        }
        batch.rows = kept;
        batch.cache.retain_rows(&keep)?;
        batch.pending = match (following, logits) {
            _ if batch.rows.is_empty() => None,
            (Some(f), _) => Some(f.select(&keep)?),
            (None, Some(logits)) => {
                let logits = if keep.len() == logits.dim(0) as usize {
                    logits
                } else {
                    let index: Vec<i32> = keep.iter().map(|&k| k as i32).collect();
                    logits.take_axis(Array::from_slice(&index, &[index.len() as i32]), 0)?
                };
                Some(self.batch_sample(batch, &logits, masks)?)
            }
            (None, None) => None,
        };
        Ok(())
    }

    /// Forward pass of every row's pending token and sampling, queued.
    fn batch_forward(&self, batch: &mut Batch, pending: &Pending) -> Result<Pending> {
        let logits = self.batch_logits(batch, pending)?;
        let masks = batch.rows.iter().map(|_| None).collect();
        self.batch_sample(batch, &logits, masks)
    }

    /// Forward pass of every row's pending token → `[B, V]` logits (lazy).
    fn batch_logits(&self, batch: &mut Batch, pending: &Pending) -> Result<Array> {
        let rows = batch.rows.len() as i32;
        let input = pending.tokens.reshape(&[rows, 1])?;
        self.model.forward_batch(&input, &mut batch.cache)
    }

    /// Every row's sampling of its `logits` row (`masks[i]`: row i's
    /// constraint mask), queued.
    fn batch_sample(
        &self,
        batch: &mut Batch,
        logits: &Array,
        masks: Vec<Option<AllowedTokens>>,
    ) -> Result<Pending> {
        let top = batch.rows.iter().filter_map(|r| r.top_logprobs).max();
        if batch
            .rows
            .iter()
            .all(|r| r.sampler.is_plain_greedy() && r.constraint.is_none())
            && masks.iter().all(Option::is_none)
        {
            let tokens = ops::indexing::argmax_axis(logits, -1, false)?.as_dtype(Dtype::Int32)?;
            let packed = top
                .map(|k| logprobs::pack(&logits.as_dtype(Dtype::Float32)?, &tokens, k))
                .transpose()?;
            return Pending::new(tokens, packed);
        }
        let mut tokens = Vec::with_capacity(batch.rows.len());
        let mut packed = Vec::new();
        for (i, (row, mask)) in batch.rows.iter_mut().zip(masks).enumerate() {
            let i = i as i32;
            let (t, p) = row.sampler.sample_masked(
                &logits.try_index((i..i + 1, ..))?,
                mask.as_ref(),
                top,
            )?;
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
