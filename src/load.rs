//! Load options shared by every model kind (`loadLLM`, `loadWhisper`): dtype,
//! quantize-at-load and a progress callback.

use mlx_napi_core::{
    loading::{self, DtypeChoice, QuantSpec},
    Error as CoreError,
};
use std::{
    sync::{mpsc, Mutex},
    time::Duration,
};

use napi::{
    threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode},
    Status,
};
use napi_derive::napi;

#[napi(object)]
pub struct QuantizeOptions {
    /// 4 or 8 (also 2, 3, 6 where MLX supports them). Default 4.
    pub bits: Option<i32>,
    /// 32, 64 or 128. Default 64.
    pub group_size: Option<i32>,
}

#[napi(object)]
#[derive(Clone)]
pub struct LoadProgress {
    /// What is being done: "weights", "model", "tokenizer".
    pub stage: String,
    pub done: u32,
    pub total: u32,
}

pub type ProgressCallback = ThreadsafeFunction<LoadProgress, (), LoadProgress, Status, false>;

/// Parses the `dtype` and `quantize` options (ranges are checked by the core).
pub fn parse_choices(
    dtype: Option<&str>,
    quantize: Option<QuantizeOptions>,
) -> Result<(DtypeChoice, Option<QuantSpec>), CoreError> {
    let dtype = dtype
        .map(DtypeChoice::parse)
        .transpose()?
        .unwrap_or_default();
    let quantize = quantize.map(|q| QuantSpec {
        group_size: q.group_size.unwrap_or(64),
        bits: q.bits.unwrap_or(4),
    });
    Ok((dtype, quantize))
}

/// Forwards the core's load progress to `onProgress` on the JS thread and
/// waits for it, so that an exception it throws is caught (and rejects the
/// load) instead of ending the Node process. After a throw, no more events.
pub struct Reporter {
    callback: Option<ProgressCallback>,
    thrown: Mutex<Option<napi::Error>>,
}

impl Reporter {
    pub fn new(callback: Option<ProgressCallback>) -> Self {
        Reporter {
            callback,
            thrown: Mutex::new(None),
        }
    }

    pub fn report(&self, p: &loading::LoadProgress) {
        let Some(cb) = &self.callback else { return };
        if self.thrown.lock().unwrap().is_some() {
            return;
        }
        let event = LoadProgress {
            stage: p.stage.to_string(),
            done: p.done as u32,
            total: p.total as u32,
        };
        let (done, finished) = mpsc::channel();
        let status = cb.call_with_return_value(
            event,
            ThreadsafeFunctionCallMode::Blocking,
            move |result: napi::Result<()>, _env| {
                let _ = done.send(result.err());
                Ok(())
            },
        );
        if status != Status::Ok {
            return;
        }
        // The environment may be torn down (a Worker ending) without running
        // the call: stop waiting once the function is finalized.
        let error = loop {
            match finished.recv_timeout(Duration::from_millis(50)) {
                Ok(error) => break error,
                Err(mpsc::RecvTimeoutError::Timeout) if !cb.aborted() => continue,
                Err(_) => break None,
            }
        };
        if let Some(error) = error {
            *self.thrown.lock().unwrap() = Some(error);
        }
    }

    /// The exception `onProgress` threw, if any.
    pub fn thrown(&self) -> Option<napi::Error> {
        self.thrown.lock().unwrap().take()
    }
}
