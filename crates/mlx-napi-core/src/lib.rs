//! mlx-napi-core: the inference engine behind the `mlx-napi` Node addon.
//!
//! Pure Rust over mlx-rs; no Node types here, so everything is testable with
//! `cargo test`. The addon crate (`src/` at the repository root) only converts
//! arguments and results and schedules work off the JS thread.
//!
//! Shared building blocks (used by both engines): [`loading`], [`nn`],
//! [`cache`], [`sampling`], [`tokenizer`].

pub mod audio;
pub mod backend;
pub mod cache;
mod cuda_host;
mod cuda_kernel;
pub mod error;
pub mod llm;
pub mod loading;
pub mod nn;
pub mod runtime;
pub mod sampling;
pub mod tokenizer;
pub mod vad;
pub mod whisper;

pub use error::{Error, ErrorCode, Result};
