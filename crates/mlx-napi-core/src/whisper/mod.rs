//! Whisper speech-to-text on MLX.

pub mod mel;
