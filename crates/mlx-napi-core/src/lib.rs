//! mlx-napi-core: the inference engine behind the `mlx-napi` Node addon.
//!
//! Pure Rust over mlx-rs; no Node types here, so everything is testable with
//! `cargo test`. The addon crate (`src/` at the repository root) only converts
//! arguments and results and schedules work off the JS thread.

pub mod audio;
pub mod backend;
pub mod error;
pub mod whisper;

pub use error::{Error, ErrorCode, Result};
