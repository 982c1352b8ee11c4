//! One way to run core work on libuv's thread pool and resolve a Promise.
//!
//! Implement [`Work`] (the off-thread part and the conversion back to JS) and
//! return `AsyncTask<CoreTask<_>>` from a `#[napi]` function. A core error is
//! kept aside during `compute` so that `reject` — on the JS thread — can build a
//! proper JS error with its `code` (see `errors.rs`).

use mlx_napi_core::Error as CoreError;
use napi::{
    bindgen_prelude::{AsyncTask, ToNapiValue, TypeName},
    Env, Task,
};

use crate::errors::to_js_error;

pub trait Work: Send + Sized + 'static {
    type Output: Send + 'static;
    type JsValue: ToNapiValue + TypeName;

    /// Runs on a worker thread.
    fn run(&mut self) -> Result<Self::Output, CoreError>;

    /// Runs on the JS thread with the result of `run`.
    fn to_js(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue>;
}

pub struct CoreTask<W> {
    work: W,
    error: Option<CoreError>,
}

pub fn spawn<W: Work>(work: W) -> AsyncTask<CoreTask<W>> {
    AsyncTask::new(CoreTask { work, error: None })
}

impl<W: Work> Task for CoreTask<W> {
    type Output = W::Output;
    type JsValue = W::JsValue;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        self.work.run().map_err(|e| {
            let reason = e.to_string();
            self.error = Some(e);
            napi::Error::from_reason(reason)
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        self.work.to_js(env, output)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<Self::JsValue> {
        Err(match self.error.take() {
            Some(core) => to_js_error(&env, &core),
            None => err,
        })
    }
}
