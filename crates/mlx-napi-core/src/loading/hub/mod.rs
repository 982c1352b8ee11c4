//! Models from the Hugging Face Hub, kept in the cache layout Python's
//! `huggingface_hub` uses (see [`cache`]), so both share one cache.
//!
//! [`snapshot`] makes sure the files a loader needs (JSON configs and
//! tokenizer, chat template, the weights — never `.bin`/`.h5`/ONNX copies) of
//! one revision are in the cache, downloading what is missing with progress,
//! resume, integrity checks and abort. Offline (`HF_HUB_OFFLINE=1`) it reads the
//! cache only. [`list_cached`] lists what the cache holds.
//!
//! Written on `ureq` rather than the `hf-hub` crate: hf-hub's blocking API has
//! no way to abort a transfer, names partial files differently from
//! `huggingface_hub` (so neither resumes the other's), checks no hash, and has
//! no offline mode or coded errors.

pub mod cache;
pub mod config;
mod fetch;
pub mod http;
mod list;

use std::{
    path::PathBuf,
    sync::atomic::AtomicBool,
    time::{Duration, Instant},
};

pub use config::{cache_root, HubConfig, HubOptions};
pub use list::{list_cached, model_kind, CachedModel, ModelKind};

use super::LoadProgress;
use crate::{Error, Result};
use cache::RepoCache;
use fetch::{fetch_blob, Target};
use http::{Client, FileMeta};

/// A revision of a repo, complete in the cache.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub repo_id: String,
    pub revision: String,
    pub commit: String,
    /// `snapshots/<commit>`: the folder to load from.
    pub dir: PathBuf,
    /// Size of the files this call fetched (0 when everything was cached;
    /// a resumed file counts whole).
    pub downloaded_bytes: u64,
}

/// `owner/name` with characters the Hub allows, optionally `@revision`.
pub fn parse_repo_id(source: &str) -> Option<(&str, Option<&str>)> {
    let (id, revision) = match source.split_once('@') {
        Some((id, rev)) if !rev.is_empty() => (id, Some(rev)),
        Some(_) => return None,
        None => (source, None),
    };
    let mut parts = id.split('/');
    let (Some(owner), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.contains("--")
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (ok(owner) && ok(name)).then_some((id, revision))
}

/// Makes sure the loader's files of `source` (`owner/name` or
/// `owner/name@revision`) are in the cache; see the module docs.
pub fn snapshot(
    source: &str,
    options: &HubOptions,
    abort: Option<&AtomicBool>,
    progress: Option<&mut dyn FnMut(&LoadProgress)>,
) -> Result<Snapshot> {
    let Some((repo_id, source_revision)) = parse_repo_id(source) else {
        return Err(Error::invalid(format!(
            "{source:?} is not a Hugging Face repo id (owner/name or owner/name@revision)"
        )));
    };
    let revision = match (source_revision, options.revision.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::invalid(format!(
                "{source:?} names revision {a:?} but the revision option is {b:?}"
            )))
        }
        (Some(r), _) | (None, Some(r)) => r,
        (None, None) => "main",
    };
    if revision.is_empty() || revision.contains("..") {
        return Err(Error::invalid(format!("bad revision {revision:?}")));
    }
    let config = HubConfig::resolve(options);
    let cache = RepoCache::new(&config.cache_dir, repo_id);
    let cached = || -> Option<Snapshot> {
        let commit = cache.commit_for(revision)?;
        cache.has_file(&commit, "config.json").then(|| Snapshot {
            repo_id: repo_id.to_string(),
            revision: revision.to_string(),
            dir: cache.snapshot_dir(&commit),
            commit,
            downloaded_bytes: 0,
        })
    };
    if config.offline {
        return cached().ok_or_else(|| {
            Error::Offline(format!(
                "model {repo_id:?} (revision {revision}) is not in the local cache ({}) and \
                 offline mode is on (HF_HUB_OFFLINE): download it first, e.g. `mlx-napi \
                 download {repo_id}`",
                config.cache_dir.display()
            ))
        });
    }
    let client = Client::new(&config.endpoint, config.token.clone());
    let info = match client.repo_info(repo_id, revision) {
        Ok(info) => info,
        // Like huggingface_hub: without a network, a cached revision still loads.
        Err(Error::Network(why)) => {
            return cached().ok_or(Error::Network(why));
        }
        Err(e) => return Err(e),
    };
    let commit = info.sha.trim().to_string();
    if !cache::is_commit(&commit) {
        return Err(Error::Network(format!(
            "{}: the Hub answered a bad commit id {commit:?} for {repo_id:?}",
            client.endpoint()
        )));
    }
    let siblings: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    let mut downloader = Downloader {
        client: &client,
        cache: &cache,
        repo_id,
        commit: &commit,
        abort,
    };
    // The shard list is inside the index: fetch it first (a few KiB, no progress).
    let index = "model.safetensors.index.json";
    if siblings.contains(&index) && !cache.has_file(&commit, index) {
        let meta = client.file_meta(repo_id, &commit, index)?;
        downloader.fetch(index, &meta, &mut |_| {})?;
    }
    let wanted = wanted_files(&siblings, &cache.snapshot_dir(&commit))?;
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|f| !cache.has_file(&commit, f))
        .collect();
    let mut plan = Vec::with_capacity(missing.len());
    for file in missing {
        let meta = client.file_meta(repo_id, &commit, file)?;
        // Another revision may share the blob: link it, nothing to transfer.
        if cache.blob_path(&meta.etag).is_file() {
            cache.link(&commit, file, &meta.etag)?;
        } else {
            plan.push((file, meta));
        }
    }
    let total_bytes: u64 = plan.iter().map(|(_, m)| m.size).sum();
    let mut reporter = Throttled::new(progress, plan.len(), total_bytes);
    let mut done_bytes = 0;
    for (i, (file, meta)) in plan.iter().enumerate() {
        reporter.report(i, file, done_bytes, false);
        downloader.fetch(file, meta, &mut |bytes| {
            reporter.report(i, file, done_bytes + bytes, false)
        })?;
        done_bytes += meta.size;
        reporter.report(i + 1, file, done_bytes, true);
    }
    cache.write_ref(revision, &commit)?;
    Ok(Snapshot {
        repo_id: repo_id.to_string(),
        revision: revision.to_string(),
        dir: cache.snapshot_dir(&commit),
        commit,
        downloaded_bytes: total_bytes,
    })
}

struct Downloader<'a> {
    client: &'a Client,
    cache: &'a RepoCache,
    repo_id: &'a str,
    commit: &'a str,
    abort: Option<&'a AtomicBool>,
}

impl Downloader<'_> {
    fn fetch(&mut self, file: &str, meta: &FileMeta, on_bytes: &mut dyn FnMut(u64)) -> Result<()> {
        let target = Target {
            repo_id: self.repo_id,
            commit: self.commit,
            file,
            meta,
        };
        fetch_blob(self.client, self.cache, &target, self.abort, on_bytes)?;
        self.cache.link(self.commit, file, &meta.etag)
    }
}

/// The files our loaders read, out of a repo's file list: every top-level JSON
/// file (config, tokenizer, generation config, shard index), the chat
/// template, and the weights the loader will pick — the index's shards, else
/// `model.safetensors`, else every top-level `.safetensors`, else `weights.npz`.
fn wanted_files(siblings: &[&str], snapshot_dir: &std::path::Path) -> Result<Vec<String>> {
    let top: Vec<&str> = siblings
        .iter()
        .copied()
        .filter(|f| !f.contains('/'))
        .collect();
    if !top.contains(&"config.json") {
        return Err(Error::ModelNotFound(
            "the repo has no config.json at its top level: not a model mlx-napi can load".into(),
        ));
    }
    let mut files: Vec<String> = top
        .iter()
        .filter(|f| f.ends_with(".json") || **f == "chat_template.jinja")
        .map(|f| f.to_string())
        .collect();
    let index_path = snapshot_dir.join("model.safetensors.index.json");
    let safetensors: Vec<&str> = top
        .iter()
        .copied()
        .filter(|f| f.ends_with(".safetensors"))
        .collect();
    if top.contains(&"model.safetensors.index.json") && index_path.is_file() {
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: std::collections::BTreeMap<String, String>,
        }
        let index: Index = super::read_json(snapshot_dir, "model.safetensors.index.json")?;
        let mut shards: Vec<String> = index.weight_map.into_values().collect();
        shards.sort();
        shards.dedup();
        if shards.iter().any(|s| s.contains('/') || s.contains("..")) {
            return Err(Error::format(
                "model.safetensors.index.json names a shard outside the model folder",
            ));
        }
        files.extend(shards);
    } else if top.contains(&"model.safetensors") {
        files.push("model.safetensors".into());
    } else if !safetensors.is_empty() {
        files.extend(safetensors.iter().map(|s| s.to_string()));
    } else if top.contains(&"weights.npz") {
        files.push("weights.npz".into());
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Download progress, at most every 100 ms (plus each file's start and end).
struct Throttled<'a> {
    progress: Option<&'a mut dyn FnMut(&LoadProgress)>,
    files: usize,
    total_bytes: u64,
    last: Option<Instant>,
}

impl<'a> Throttled<'a> {
    fn new(progress: Option<&'a mut dyn FnMut(&LoadProgress)>, files: usize, total: u64) -> Self {
        Throttled {
            progress,
            files,
            total_bytes: total,
            last: None,
        }
    }

    fn report(&mut self, done: usize, file: &str, bytes: u64, force: bool) {
        let Some(progress) = self.progress.as_mut() else {
            return;
        };
        let now = Instant::now();
        let due = self
            .last
            .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(100));
        if !(force || due) {
            return;
        }
        self.last = Some(now);
        progress(&LoadProgress {
            stage: "download",
            done,
            total: self.files,
            file: Some(file.to_string()),
            bytes: Some(bytes),
            total_bytes: Some(self.total_bytes),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        assert_eq!(
            parse_repo_id("mlx-community/SmolLM2-135M-Instruct-4bit"),
            Some(("mlx-community/SmolLM2-135M-Instruct-4bit", None))
        );
        assert_eq!(parse_repo_id("a/b@v1.0"), Some(("a/b", Some("v1.0"))));
        assert_eq!(parse_repo_id("a/b@"), None);
        assert_eq!(parse_repo_id("/abs/path"), None);
        assert_eq!(parse_repo_id("a/b/c"), None);
        assert_eq!(parse_repo_id("../x"), None);
        assert_eq!(parse_repo_id("a--b/c"), None);
    }

    #[test]
    fn picks_the_loader_files() {
        let dir = tempfile::tempdir().unwrap();
        let siblings = [
            ".gitattributes",
            "README.md",
            "config.json",
            "tokenizer.json",
            "chat_template.jinja",
            "model.safetensors",
            "pytorch_model.bin",
            "onnx/model.onnx",
            "onnx/config.json",
        ];
        let files = wanted_files(&siblings, dir.path()).unwrap();
        assert_eq!(
            files,
            [
                "chat_template.jinja",
                "config.json",
                "model.safetensors",
                "tokenizer.json"
            ]
        );
        let npz = wanted_files(&["config.json", "weights.npz"], dir.path()).unwrap();
        assert_eq!(npz, ["config.json", "weights.npz"]);
        let err = wanted_files(&["model.safetensors"], dir.path()).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::ModelNotFound);
    }

    #[test]
    fn sharded_weights_come_from_the_index() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            r#"{"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors","c":"model-00001-of-00002.safetensors"}}"#,
        )
        .unwrap();
        let siblings = [
            "config.json",
            "model.safetensors.index.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "consolidated.safetensors",
        ];
        let files = wanted_files(&siblings, dir.path()).unwrap();
        assert_eq!(
            files,
            [
                "config.json",
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                "model.safetensors.index.json"
            ]
        );
    }
}
