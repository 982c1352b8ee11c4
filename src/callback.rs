//! Calling a JS callback from a worker thread and waiting for it, so that an
//! exception it throws comes back to the caller (which rejects its promise)
//! instead of ending the Node process.

use std::{sync::mpsc, time::Duration};

use napi::{
    bindgen_prelude::ToNapiValue,
    threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode},
    Status,
};

/// Calls `callback(value)` on the JS thread and blocks until it has run.
/// Returns the exception it threw, if any. Returns `None` without waiting when
/// the call cannot be queued (the environment is shutting down), and stops
/// waiting when the function is finalized: a queued call is neither run nor
/// dropped when its environment is torn down (a `worker_threads` Worker ending).
pub fn call_and_wait<T: ToNapiValue + 'static>(
    callback: &ThreadsafeFunction<T, (), T, Status, false>,
    value: T,
) -> Option<napi::Error> {
    let (done, finished) = mpsc::channel();
    let status = callback.call_with_return_value(
        value,
        ThreadsafeFunctionCallMode::Blocking,
        move |result: napi::Result<()>, _env| {
            let _ = done.send(result.err());
            Ok(())
        },
    );
    if status != Status::Ok {
        return None;
    }
    loop {
        match finished.recv_timeout(Duration::from_millis(50)) {
            Ok(error) => return error,
            Err(mpsc::RecvTimeoutError::Timeout) if !callback.aborted() => continue,
            Err(_) => return None,
        }
    }
}
