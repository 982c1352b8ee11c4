//! Node binding of mlx-napi (NAPI-RS v3). Thin by design: argument conversion,
//! scheduling work off the JS thread, and error mapping. All inference lives in
//! `crates/mlx-napi-core`.

// napi-derive registers exports only outside `cfg(test)`, so a test build of
// this crate (clippy --all-targets) would see every export as dead.
#![cfg_attr(test, allow(dead_code))]

mod abort;
mod backend;
mod batching;
mod callback;
mod errors;
mod hub;
mod llm;
mod load;
mod options;
mod promise;
mod task;
mod whisper;
mod worker;
