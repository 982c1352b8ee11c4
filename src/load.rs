//! Load options shared by every model kind (`loadLLM`, `loadWhisper`): dtype,
//! quantize-at-load, Hub settings and a progress callback.

use mlx_napi_core::{
    loading::{self, hub::HubOptions, DtypeChoice, QuantSpec},
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
    /// What is being done: "download" (repo ids not in the cache), "weights",
    /// "model", "tokenizer".
    pub stage: String,
    /// Units done and in all: files for "download" and "weights".
    pub done: u32,
    pub total: u32,
    /// "download": the file being written.
    pub file: Option<String>,
    /// "download": bytes on disk so far, over all files of this download.
    pub bytes: Option<f64>,
    /// "download": bytes of all files of this download.
    pub total_bytes: Option<f64>,
}

/// Where and how repo ids are fetched from the Hugging Face Hub. Unset fields
/// come from the environment, as for Python's `huggingface_hub`.
#[napi(object, object_to_js = false, js_name = "HubOptions")]
pub struct HubOptionsJs {
    /// Hub base URL. Default: `HF_ENDPOINT`, else `https://huggingface.co`.
    pub endpoint: Option<String>,
    /// Access token for gated / private repos. Default: `HF_TOKEN`, else the
    /// token saved by `huggingface-cli login`.
    pub token: Option<String>,
    /// Cache root. Default: `HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`.
    pub cache_dir: Option<String>,
    /// Use the cache only (a miss is `ERR_OFFLINE`). Default: `HF_HUB_OFFLINE`.
    pub offline: Option<bool>,
}

/// The core's Hub options from a `revision` option and a `hub` object.
pub fn hub_options(revision: Option<String>, hub: Option<HubOptionsJs>) -> HubOptions {
    let hub = hub.unwrap_or(HubOptionsJs {
        endpoint: None,
        token: None,
        cache_dir: None,
        offline: None,
    });
    HubOptions {
        revision,
        endpoint: hub.endpoint,
        token: hub.token,
        cache_dir: hub.cache_dir.map(Into::into),
        offline: hub.offline,
    }
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
                file: p.file.clone(),
                bytes: p.bytes.map(|b| b as f64),
                total_bytes: p.total_bytes.map(|b| b as f64),
            };
            cb.call(event, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}
