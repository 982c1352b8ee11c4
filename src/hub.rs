//! `downloadModel`, `listModels`, `hubCacheDir`: the Hugging Face cache from JS.
//! The rules (which files, cache layout, resume, checks) are the core's
//! (`loading::hub`); this converts options and results and runs the download on
//! its own thread (a transfer can take minutes: not on libuv's small pool).

use mlx_napi_core::{
    loading::{
        hub::{self, CachedModel, Snapshot},
        LoadProgress as CoreProgress,
    },
    Error as CoreError,
};
use napi::{
    bindgen_prelude::{AsyncTask, Object, Unknown},
    Env,
};
use napi_derive::napi;

use crate::{
    load::{self, HubOptionsJs, KindLoadOptions, ProgressCallback},
    options::Kind,
    promise::Settler,
    task::{self, CoreTask, Work},
};

#[napi(object, object_to_js = false)]
pub struct DownloadOptions {
    /// Branch, tag or commit (default "main"; `owner/name@rev` works too).
    pub revision: Option<String>,
    /// Hub endpoint, token, cache folder and offline mode.
    #[napi(ts_type = "HubOptions")]
    pub hub: Option<HubOptionsJs>,
    /// Called (on the JS thread) with stage "download", `file`, `bytes`,
    /// `totalBytes`, and `done` / `total` files, at most every 100 ms.
    #[napi(ts_type = "(progress: LoadProgress) => void")]
    pub on_progress: Option<ProgressCallback>,
    /// Stops the download (rejecting with an AbortError); what arrived is kept
    /// and the next call resumes it.
    #[napi(ts_type = "AbortSignal")]
    #[allow(dead_code)] // read from the raw object, see `abort_watch`
    pub signal: Option<Unknown<'static>>,
}

/// A repo revision complete in the local cache.
#[napi(object)]
pub struct DownloadedModel {
    pub repo_id: String,
    pub revision: String,
    pub commit: String,
    /// The snapshot folder: pass it (or the repo id) to `loadLLM` / `loadWhisper`.
    pub path: String,
    /// Size of the files this call fetched (0 when everything was cached;
    /// a resumed file counts whole).
    pub downloaded_bytes: f64,
    /// "llm", "whisper" or "unknown", from config.json.
    #[napi(ts_type = "'llm' | 'whisper' | 'unknown'")]
    pub kind: String,
    /// `model_type` from config.json.
    pub model_type: Option<String>,
}

impl From<Snapshot> for DownloadedModel {
    fn from(s: Snapshot) -> Self {
        let (kind, model_type) = hub::model_kind(&s.dir);
        DownloadedModel {
            repo_id: s.repo_id,
            revision: s.revision,
            commit: s.commit,
            path: s.dir.to_string_lossy().into_owned(),
            downloaded_bytes: s.downloaded_bytes as f64,
            kind: kind.as_str().into(),
            model_type,
        }
    }
}

/// Makes sure the files a loader needs of a Hugging Face repo (`owner/name`,
/// optionally `owner/name@revision`) are in the local cache, downloading what
/// is missing (resumable, checked against the Hub's size and ETag). Offline
/// (`HF_HUB_OFFLINE=1` or `hub.offline`) it only looks in the cache.
#[napi(
    ts_args_type = "repo: string, options?: DownloadOptions",
    ts_return_type = "Promise<DownloadedModel>"
)]
pub fn download_model<'env>(
    env: &'env Env,
    repo: Unknown,
    options: Option<Unknown>,
) -> napi::Result<Object<'env>> {
    let (mut settler, promise) = Settler::new(
        env,
        |_env, (snapshot, thrown): (Snapshot, Option<napi::Error>)| match thrown {
            // onProgress threw: the download fails with its exception.
            Some(thrown) => Err(thrown),
            None => Ok(DownloadedModel::from(snapshot)),
        },
    )?;
    let request = load::request::<DownloadOptions, _, _>(env, &mut settler, &repo, options);
    let Some((request, settler)) = settler.ok_or_settle(request) else {
        return Ok(promise);
    };
    let spawned = std::thread::Builder::new()
        .name("mlx-napi-download".into())
        .spawn(move || {
            let reporter = load::Reporter::new(request.progress);
            let mut report = |p: &CoreProgress| reporter.report(p);
            let result = hub::snapshot(
                &request.source,
                &request.hub,
                Some(&request.abort),
                Some(&mut report as &mut dyn FnMut(&CoreProgress)),
            );
            settler.settle(result.map(|snapshot| (snapshot, reporter.thrown())));
        });
    if let Err(e) = spawned {
        return Err(napi::Error::from_reason(format!(
            "cannot start a download thread: {e}"
        )));
    }
    Ok(promise)
}

impl KindLoadOptions for DownloadOptions {
    type Own = ();
    const SOURCE: &'static str = "repo";
    const BASE: &'static [(&'static str, Kind)] = load::DOWNLOAD_FIELDS;
    const FIELDS: &'static [(&'static str, Kind)] = &[];
    fn split(self) -> (load::CommonLoadJs, ()) {
        let common = load::CommonLoadJs {
            dtype: None,
            quantize: None,
            on_progress: self.on_progress,
            revision: self.revision,
            hub: self.hub,
        };
        (common, ())
    }
}

#[napi(object, object_to_js = false)]
pub struct ListModelsOptions {
    /// Cache root (default as for downloads: `HF_HUB_CACHE`, `$HF_HOME/hub`, …).
    pub cache_dir: Option<String>,
}

/// A branch or tag recorded in the cache, and the commit it named.
#[napi(object)]
pub struct CachedRef {
    pub name: String,
    pub commit: String,
}

/// One model repo in the local Hugging Face cache.
#[napi(object)]
pub struct CachedModelInfo {
    pub repo_id: String,
    /// Snapshot folder of `main` (else the newest snapshot).
    pub path: String,
    pub commit: String,
    pub refs: Vec<CachedRef>,
    /// Number of snapshots (commits) present.
    pub snapshots: u32,
    /// Bytes of the repo's complete files.
    pub size_bytes: f64,
    /// Bytes of interrupted downloads (resumed by the next download).
    pub incomplete_bytes: f64,
    #[napi(ts_type = "'llm' | 'whisper' | 'unknown'")]
    pub kind: String,
    pub model_type: Option<String>,
}

impl From<CachedModel> for CachedModelInfo {
    fn from(m: CachedModel) -> Self {
        CachedModelInfo {
            repo_id: m.repo_id,
            path: m.path.to_string_lossy().into_owned(),
            commit: m.commit,
            refs: m
                .refs
                .into_iter()
                .map(|(name, commit)| CachedRef { name, commit })
                .collect(),
            snapshots: m.snapshots as u32,
            size_bytes: m.size_bytes as f64,
            incomplete_bytes: m.incomplete_bytes as f64,
            kind: m.kind.as_str().into(),
            model_type: m.model_type,
        }
    }
}

pub struct ListWork {
    cache_dir: std::path::PathBuf,
}

impl Work for ListWork {
    type Output = Vec<CachedModel>;
    type JsValue = Vec<CachedModelInfo>;

    fn run(&mut self) -> Result<Self::Output, CoreError> {
        hub::list_cached(&self.cache_dir)
    }

    fn to_js(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output.into_iter().map(Into::into).collect())
    }
}

/// The model repos in the local Hugging Face cache, by repo id.
#[napi(ts_return_type = "Promise<Array<CachedModelInfo>>")]
pub fn list_models(options: Option<ListModelsOptions>) -> AsyncTask<CoreTask<ListWork>> {
    let cache_dir = options
        .and_then(|o| o.cache_dir)
        .map(Into::into)
        .unwrap_or_else(hub::cache_root);
    task::spawn(ListWork { cache_dir })
}

/// The Hugging Face cache root downloads go to (`HF_HUB_CACHE`, else
/// `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
#[napi]
pub fn hub_cache_dir() -> String {
    hub::cache_root().to_string_lossy().into_owned()
}
