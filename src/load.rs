//! Load options shared by every model kind (`loadLLM`, `loadWhisper`): dtype,
//! quantize-at-load and a progress callback.

use mlx_napi_core::{
    loading::{self, DtypeChoice, QuantSpec},
    Error as CoreError,
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

/// Forwards the core's load progress to `callback` (non-blocking: loading never
/// waits for the JS thread).
pub fn reporter(callback: &Option<ProgressCallback>) -> impl FnMut(&loading::LoadProgress) + '_ {
    move |p| {
        if let Some(cb) = callback {
            let event = LoadProgress {
                stage: p.stage.to_string(),
                done: p.done as u32,
                total: p.total as u32,
            };
            cb.call(event, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}
