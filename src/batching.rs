//! Scheduling of `generate` / `stream` / `generateBatch` calls on a model's
//! thread so that concurrent calls decode together (the core's
//! `Llm::serve`, continuous batching).
//!
//! A call puts its request into the model's `RequestQueue` and queues a
//! "drive" job on the model thread; the first drive job to run serves every
//! request in the queue (later ones join its batch at step boundaries), the
//! others find the queue empty and return. Other jobs (chat turns, warm-up)
//! count themselves as waiting while queued: a drive job then stops taking
//! new requests, lets its rows finish and re-queues itself behind them, so
//! they are never starved by a stream of generate calls.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use mlx_napi_core::{
    llm::{GenerationRequest, GenerationResult, GenerationSink, RequestQueue, ServeOptions},
    Error as CoreError,
};
use napi::bindgen_prelude::ToNapiValue;

use crate::{abort::AbortHooks, promise::Settler, worker::WorkerSlot};

/// What the model thread's jobs get: anything holding the `Llm`.
pub trait HasLlm: 'static {
    fn llm(&self) -> &mlx_napi_core::llm::Llm;
}

pub struct Batching {
    queue: RequestQueue,
    max_batch: usize,
    /// Non-generation jobs queued on the model thread.
    waiting: Arc<AtomicUsize>,
}

impl Batching {
    pub fn new(max_batch: usize) -> Arc<Self> {
        Arc::new(Self {
            queue: RequestQueue::new(),
            max_batch,
            waiting: Arc::default(),
        })
    }

    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Queues `request` and makes sure a drive job will serve it; a disposed
    /// model rejects it with `ERR_DISPOSED`.
    pub fn enqueue<M: HasLlm>(self: &Arc<Self>, slot: &WorkerSlot<M>, request: GenerationRequest) {
        if let Err(request) = self.queue.push(request) {
            return (*request).reject(CoreError::Disposed);
        }
        self.drive(slot);
    }

    /// Refuses new requests; waiting ones reject with `ERR_DISPOSED`, rows
    /// already decoding finish.
    pub fn close(&self) {
        self.queue.close();
    }

    /// A token held by a queued non-generation job until it runs (or is dropped).
    pub fn waiting(&self) -> Waiting {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(self.waiting.clone())
    }

    fn drive<M: HasLlm>(self: &Arc<Self>, slot: &WorkerSlot<M>) {
        let guard = slot.lock().unwrap();
        let Some(worker) = guard.as_ref() else {
            return;
        };
        let (this, slot_again) = (self.clone(), slot.clone());
        let _ = worker.submit(move |model: &mut M| {
            let waiting = this.waiting.clone();
            let yield_now = move || waiting.load(Ordering::SeqCst) > 0;
            let options = ServeOptions {
                max_batch: this.max_batch,
                yield_now: &yield_now,
            };
            // A panic ends the rows in flight with ERR_INTERNAL (the core's
            // sinks see to it); the queue is served on.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                model.llm().serve(&this.queue, &options)
            }));
            if !this.queue.is_empty() {
                this.drive(&slot_again);
            }
        });
    }
}

/// Counts a queued non-generation job as waiting until dropped.
pub struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A promise that settles with one generation's result. While the request
/// waits in the queue the call's AbortSignal rejects it at once
/// (`ABORT_ERR`); once it runs, an abort ends it with `finishReason: 'abort'`.
pub struct PromiseSink<V: ToNapiValue + 'static> {
    queued: Arc<Mutex<Option<Settler<GenerationResult, V>>>>,
    running: Option<Settler<GenerationResult, V>>,
}

impl<V: ToNapiValue + 'static> PromiseSink<V> {
    pub fn new(settler: Settler<GenerationResult, V>, hooks: &AbortHooks) -> Self {
        let queued = Arc::new(Mutex::new(Some(settler)));
        let on_abort = queued.clone();
        hooks.add(Box::new(move || {
            if let Some(s) = on_abort.lock().unwrap().take() {
                s.settle(Err(CoreError::Aborted));
            }
        }));
        Self {
            queued,
            running: None,
        }
    }
}

impl<V: ToNapiValue + 'static> GenerationSink for PromiseSink<V> {
    fn started(&mut self) {
        self.running = self.queued.lock().unwrap().take();
    }

    fn chunk(&mut self, _: &mlx_napi_core::llm::Chunk) -> std::ops::ControlFlow<()> {
        std::ops::ControlFlow::Continue(())
    }

    fn finish(&mut self, result: Result<GenerationResult, CoreError>) {
        if let Some(s) = self
            .running
            .take()
            .or_else(|| self.queued.lock().unwrap().take())
        {
            s.settle(result);
        }
    }
}

/// `generateBatch`: one promise for all rows, in prompt order; the first
/// error rejects it and stops the other rows.
pub struct BatchCollector<V: ToNapiValue + 'static> {
    state: Mutex<CollectorState<V>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

struct CollectorState<V: ToNapiValue + 'static> {
    results: Vec<Option<GenerationResult>>,
    remaining: usize,
    settler: Option<Settler<Vec<GenerationResult>, V>>,
    /// A row has started: the signal no longer rejects the call.
    started: bool,
}

impl<V: ToNapiValue + 'static> BatchCollector<V> {
    /// `stop`: the rows' abort flag (set on the first error).
    pub fn new(
        settler: Settler<Vec<GenerationResult>, V>,
        rows: usize,
        stop: Arc<std::sync::atomic::AtomicBool>,
        hooks: &AbortHooks,
    ) -> Arc<Self> {
        let collector = Arc::new(Self {
            state: Mutex::new(CollectorState {
                results: (0..rows).map(|_| None).collect(),
                remaining: rows,
                settler: Some(settler),
                started: false,
            }),
            stop,
        });
        let on_abort = collector.clone();
        hooks.add(Box::new(move || {
            let mut state = on_abort.state.lock().unwrap();
            if !state.started {
                if let Some(s) = state.settler.take() {
                    s.settle(Err(CoreError::Aborted));
                }
            }
        }));
        collector
    }

    pub fn sink(self: &Arc<Self>, row: usize) -> Box<dyn GenerationSink> {
        Box::new(RowSink {
            collector: self.clone(),
            row,
        })
    }
}

struct RowSink<V: ToNapiValue + 'static> {
    collector: Arc<BatchCollector<V>>,
    row: usize,
}

impl<V: ToNapiValue + 'static> GenerationSink for RowSink<V> {
    fn started(&mut self) {
        self.collector.state.lock().unwrap().started = true;
    }

    fn chunk(&mut self, _: &mlx_napi_core::llm::Chunk) -> std::ops::ControlFlow<()> {
        std::ops::ControlFlow::Continue(())
    }

    fn finish(&mut self, result: Result<GenerationResult, CoreError>) {
        let mut state = self.collector.state.lock().unwrap();
        match result {
            Ok(r) => {
                state.results[self.row] = Some(r);
                state.remaining -= 1;
                if state.remaining == 0 {
                    if let Some(s) = state.settler.take() {
                        let all = state.results.iter_mut().filter_map(Option::take).collect();
                        s.settle(Ok(all));
                    }
                }
            }
            Err(e) => {
                self.collector
                    .stop
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                if let Some(s) = state.settler.take() {
                    s.settle(Err(e));
                }
            }
        }
    }
}
