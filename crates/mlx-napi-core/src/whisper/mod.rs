//! Whisper speech-to-text on MLX.

pub mod logit_filters;
pub mod mel;
