//! Everything needed to go from "a model name or folder" to named MLX arrays,
//! shared by the LLM and Whisper engines.
//!
//! * [`source`]: resolve a local folder or a Hugging Face repo id.
//! * [`hub`]: the Hugging Face cache (Python's layout) and downloads into it.
//! * [`config`]: read `config.json` & friends with errors that name the file.
//! * [`safetensors`]: validate and lazily load (single or sharded) checkpoints.
//! * [`quant`]: the MLX-community `quantization` block and quantize-at-load.
//! * [`dtype`]: which floating dtype to compute in, and casting the weights to it.
//! * [`npz`]: NumPy `.npz` checkpoints (older mlx-community exports).

pub mod config;
pub mod dtype;
pub mod files;
pub mod hub;
pub mod npz;
pub mod quant;
pub mod safetensors;
pub mod source;

pub use config::{read_json, read_json_opt};
pub use dtype::{cast_weights, resolve_dtype, DtypeChoice};
pub use npz::load_npz;
pub use quant::{QuantSpec, Quantization};
pub use safetensors::{load_weights, weight_files};
pub use source::{resolve_model_dir, resolve_model_source};

/// Progress of a model load, reported through `LoadOptions::progress`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadProgress {
    /// What is being done, e.g. "weights" or "tokenizer".
    pub stage: &'static str,
    /// Work done so far and in total, in the stage's own unit (files, tensors).
    pub done: usize,
    pub total: usize,
    /// Stage "download": the file being written.
    pub file: Option<String>,
    /// Stage "download": bytes on disk so far / in all, over every file this
    /// load downloads.
    pub bytes: Option<u64>,
    pub total_bytes: Option<u64>,
}

impl LoadProgress {
    /// A `(stage, done, total)` reporter that forwards to `progress`, if any.
    pub fn reporter<'a>(
        mut progress: Option<&'a mut dyn FnMut(&LoadProgress)>,
    ) -> impl FnMut(&'static str, usize, usize) + 'a {
        move |stage, done, total| {
            if let Some(progress) = progress.as_mut() {
                progress(&LoadProgress {
                    stage,
                    done,
                    total,
                    file: None,
                    bytes: None,
                    total_bytes: None,
                });
            }
        }
    }
}
