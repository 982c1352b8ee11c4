//! Token sampling, entirely on the device and batch-aware (`[B, V]` logits).
//!
//! Order of operations (mlx-lm's processors, then its samplers):
//! logit bias → repetition penalty (last N tokens) → presence / frequency
//! penalties → temperature → top-k → top-p → min-p → categorical draw
//! (temperature 0 = argmax). Filters act on the temperature-scaled
//! distribution (as Hugging Face does).
//!
//! State kept on device between steps: the recent-token window for the
//! repetition penalty (a ring `[B, N]` written with a slice update), per-token
//! counts `[B, V]` for presence/frequency penalties (scatter-add), and the PRNG
//! key (split once per draw, so a seed reproduces a run). Nothing is read back
//! to the host here.
//!
//! The draw (temperature → filters → categorical, `draw.rs`) is one compiled
//! MLX function on a GPU and eager on the CPU backend, where the compiled
//! filter chain was no faster (vocab 49152, temperature + top-k + top-p +
//! min-p: 6.3 ms eager vs 7.1 ms compiled per step; the sort for top-p
//! dominates). `examples/sampler_compile_bench.rs` repeats the measurement on
//! any device.

mod allowed;
mod config;
mod draw;
mod filters;
pub mod logprobs;
mod sampler;

pub use allowed::{mapped_words, AllowedTokens, MaskWords};
pub use config::SamplerConfig;
pub use draw::CACHED_CHAINS;
pub use filters::{apply_min_p, apply_top_k, apply_top_p};
pub use logprobs::{TokenLogprob, MAX_TOP_LOGPROBS};
pub use sampler::Sampler;
