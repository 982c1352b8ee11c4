//! Whisper speech-to-text on MLX.

pub mod config;
pub mod logit_filters;
pub mod mel;
pub mod model;
pub mod tokenizer;
pub mod weights;
