//! One OS thread per loaded model.
//!
//! The model is created on its thread and never leaves it; requests are closures
//! queued in order, so calls to one model run one after another while several
//! models work side by side. The JS thread never waits on a model.

use std::{
    sync::mpsc,
    thread::{self, JoinHandle},
};

use mlx_napi_core::Error as CoreError;

type Job<M> = Box<dyn FnOnce(&mut M) + Send>;

pub struct Worker<M: 'static> {
    jobs: Option<mpsc::Sender<Job<M>>>,
    thread: Option<JoinHandle<()>>,
}

impl<M: 'static> Worker<M> {
    /// Starts the thread, builds the model there with `load`, reports the outcome
    /// through `loaded`, then serves jobs until the worker is closed.
    pub fn start(
        name: &str,
        load: impl FnOnce() -> Result<M, CoreError> + Send + 'static,
        loaded: impl FnOnce(Result<(), CoreError>) + Send + 'static,
    ) -> Result<Self, CoreError> {
        let (jobs, queue) = mpsc::channel::<Job<M>>();
        let thread = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let mut model = match load() {
                    Ok(model) => {
                        loaded(Ok(()));
                        model
                    }
                    Err(err) => return loaded(Err(err)),
                };
                for job in queue {
                    job(&mut model);
                }
            })
            .map_err(|e| CoreError::Io {
                context: "cannot start a model thread".into(),
                source: e,
            })?;
        Ok(Worker {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Queues `job`; `Err` when the worker was closed (or its model failed to load).
    pub fn submit(&self, job: impl FnOnce(&mut M) + Send + 'static) -> Result<(), CoreError> {
        let closed = || CoreError::Disposed;
        self.jobs
            .as_ref()
            .ok_or_else(closed)?
            .send(Box::new(job))
            .map_err(|_| closed())
    }

    /// Stops accepting jobs; queued ones still run, then the model is dropped on
    /// its own thread.
    pub fn close(&mut self) {
        self.jobs = None;
    }
}

impl<M: 'static> Drop for Worker<M> {
    fn drop(&mut self) {
        self.jobs = None;
        // Detach: joining here could block the JS thread behind a long generation.
        drop(self.thread.take());
    }
}
