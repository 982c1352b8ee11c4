//! Load options shared by every model kind (`loadLLM`, `loadWhisper`): dtype,
//! quantize-at-load, Hub settings and a progress callback.

use mlx_napi_core::{
    loading::{self, hub::HubOptions, DtypeChoice, QuantSpec},
    Error as CoreError,
};
use std::sync::{atomic::AtomicBool, Arc, Mutex};

use napi::{
    bindgen_prelude::{FromNapiValue, JsObjectValue, ToNapiValue, Unknown},
    threadsafe_function::ThreadsafeFunction,
    Env, Status,
};
use napi_derive::napi;

use crate::{
    options::{abort_watch, check_options, string_arg, typed, Kind},
    promise::Settler,
};

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

/// The options every model kind's load takes, with their JS types (a kind adds
/// its own; unknown names are rejected).
pub const LOAD_FIELDS: &[(&str, Kind)] = &[
    ("dtype", Kind::String),
    ("quantize", Kind::Object),
    ("onProgress", Kind::Function),
    ("revision", Kind::String),
    ("hub", Kind::Object),
    ("signal", Kind::Signal),
];

/// `downloadModel`'s options: the Hub part of a load.
pub const DOWNLOAD_FIELDS: &[(&str, Kind)] = &[
    ("onProgress", Kind::Function),
    ("revision", Kind::String),
    ("hub", Kind::Object),
    ("signal", Kind::Signal),
];

const HUB_FIELDS: &[(&str, Kind)] = &[
    ("endpoint", Kind::String),
    ("token", Kind::String),
    ("cacheDir", Kind::String),
    ("offline", Kind::Boolean),
];

const QUANTIZE_FIELDS: &[(&str, Kind)] = &[("bits", Kind::Number), ("groupSize", Kind::Number)];

/// The shared part of a kind's typed load options.
pub struct CommonLoadJs {
    pub dtype: Option<String>,
    pub quantize: Option<QuantizeOptions>,
    pub on_progress: Option<ProgressCallback>,
    pub revision: Option<String>,
    pub hub: Option<HubOptionsJs>,
}

/// A kind's typed load options (`LoadLlmOptions`, `LoadWhisperOptions`,
/// `DownloadOptions`): the shared part and the kind's own settings.
pub trait KindLoadOptions: FromNapiValue {
    type Own: Default;
    /// The name of the first argument, for messages.
    const SOURCE: &'static str = "source";
    /// The shared option names it takes.
    const BASE: &'static [(&'static str, Kind)] = LOAD_FIELDS;
    /// The kind's own option names and JS types.
    const FIELDS: &'static [(&'static str, Kind)];
    fn split(self) -> (CommonLoadJs, Self::Own);
}

/// A load call's arguments, checked.
pub struct LoadRequest<Own> {
    pub source: String,
    pub dtype: DtypeChoice,
    pub quantize: Option<QuantSpec>,
    pub progress: Option<ProgressCallback>,
    pub hub: HubOptions,
    /// Set when `options.signal` fires (watched until the load settles).
    pub abort: Arc<AtomicBool>,
    pub own: Own,
}

/// Checks a load call's arguments — `source` a string, option names and JS
/// types, nested `hub` / `quantize` fields, the dtype and quantize choices —
/// and watches `options.signal` until `settler` settles. An already-aborted
/// signal is `ERR_ABORTED` before any work.
pub fn request<O: KindLoadOptions, T: Send + 'static, V: ToNapiValue + 'static>(
    env: &Env,
    settler: &mut Settler<T, V>,
    source: &Unknown,
    options: Option<Unknown>,
) -> Result<LoadRequest<O::Own>, CoreError> {
    let source = string_arg(O::SOURCE, source)?;
    let fields: Vec<(&str, Kind)> = O::BASE.iter().chain(O::FIELDS).copied().collect();
    let object = check_options("options", options, &fields)?;
    let invalid = |e: napi::Error| CoreError::invalid(format!("invalid options: {}", e.reason));
    if let Some(o) = &object {
        for (name, nested) in [("hub", HUB_FIELDS), ("quantize", QUANTIZE_FIELDS)] {
            let value: Option<Unknown> = o.get_named_property(name).map_err(invalid)?;
            check_options(&format!("options.{name}"), value, nested)?;
        }
    }
    let mut watch = abort_watch(env, &object).map_err(invalid)?;
    let (abort, aborted) = (watch.flag(), watch.aborted());
    settler.on_settle(move |env| watch.release(env));
    if aborted {
        return Err(CoreError::Aborted);
    }
    let (common, own) = match typed::<O>(env, &object).map_err(invalid)? {
        Some(o) => o.split(),
        None => (
            CommonLoadJs {
                dtype: None,
                quantize: None,
                on_progress: None,
                revision: None,
                hub: None,
            },
            O::Own::default(),
        ),
    };
    let (dtype, quantize) = parse_choices(common.dtype.as_deref(), common.quantize)?;
    Ok(LoadRequest {
        source,
        dtype,
        quantize,
        progress: common.on_progress,
        hub: hub_options(common.revision, common.hub),
        abort,
        own,
    })
}

/// Forwards the core's load progress to `onProgress` on the JS thread and
/// waits for it, so that an exception it throws is caught (and rejects the
/// load) instead of ending the Node process. After a throw, no more events.
pub struct Reporter {
    callback: Option<ProgressCallback>,
    thrown: Mutex<Option<napi::Error>>,
}

impl Reporter {
    pub fn new(callback: Option<ProgressCallback>) -> Self {
        Reporter {
            callback,
            thrown: Mutex::new(None),
        }
    }

    pub fn report(&self, p: &loading::LoadProgress) {
        let Some(cb) = &self.callback else { return };
        if self.thrown.lock().unwrap().is_some() {
            return;
        }
        let event = LoadProgress {
            stage: p.stage.to_string(),
            done: p.done as u32,
            total: p.total as u32,
            file: p.file.clone(),
            bytes: p.bytes.map(|b| b as f64),
            total_bytes: p.total_bytes.map(|b| b as f64),
        };
        let error = crate::callback::call_and_wait(cb, event);
        if let Some(error) = error {
            *self.thrown.lock().unwrap() = Some(error);
        }
    }

    /// The exception `onProgress` threw, if any.
    pub fn thrown(&self) -> Option<napi::Error> {
        self.thrown.lock().unwrap().take()
    }
}
