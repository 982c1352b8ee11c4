//! What the cache holds: one entry per model repo, with its size on disk and
//! what kind of model its newest snapshot is.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::SystemTime,
};

use super::cache::repo_id_of;
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Llm,
    Whisper,
    Unknown,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Llm => "llm",
            ModelKind::Whisper => "whisper",
            ModelKind::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CachedModel {
    pub repo_id: String,
    /// The snapshot `main` points at, else the newest one.
    pub path: PathBuf,
    pub commit: String,
    /// Branches and tags recorded in `refs/`, with the commit each names.
    pub refs: Vec<(String, String)>,
    /// Snapshots (commits) present.
    pub snapshots: usize,
    /// Bytes of the repo's complete blobs.
    pub size_bytes: u64,
    /// Bytes in `.incomplete` files (interrupted downloads).
    pub incomplete_bytes: u64,
    pub kind: ModelKind,
    /// `model_type` from config.json.
    pub model_type: Option<String>,
}

/// What `config.json` in `dir` describes: an LLM architecture we run, Whisper,
/// or something else (with its `model_type`).
pub fn model_kind(dir: &Path) -> (ModelKind, Option<String>) {
    let Ok(text) = crate::loading::files::read_text_capped(
        &dir.join("config.json"),
        crate::loading::files::MAX_CONFIG_BYTES,
    ) else {
        return (ModelKind::Unknown, None);
    };
    let Ok(config) = serde_json::from_str::<serde_json::Value>(&text) else {
        return (ModelKind::Unknown, None);
    };
    let model_type = config
        .get("model_type")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    // mlx-community Whisper exports carry the OpenAI dimensions, no model_type.
    let kind = match model_type.as_deref() {
        Some("whisper") => ModelKind::Whisper,
        Some(t) if crate::llm::models::MODEL_TYPES.contains(&t) => ModelKind::Llm,
        None if config.get("n_audio_ctx").is_some() => ModelKind::Whisper,
        _ => ModelKind::Unknown,
    };
    (kind, model_type)
}

/// Every `models--*` repo under `cache_root` that has at least one snapshot,
/// sorted by repo id. A missing cache folder is an empty list.
pub fn list_cached(cache_root: &Path) -> Result<Vec<CachedModel>> {
    let entries = match std::fs::read_dir(cache_root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("listing {}", cache_root.display()), e)),
    };
    let mut models = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(repo_id) = repo_id_of(&name) else {
            continue;
        };
        if let Some(model) = describe(&entry.path(), repo_id) {
            models.push(model);
        }
    }
    models.sort_by(|a, b| a.repo_id.cmp(&b.repo_id));
    Ok(models)
}

fn describe(dir: &Path, repo_id: String) -> Option<CachedModel> {
    let mut snapshots: Vec<(SystemTime, String)> = std::fs::read_dir(dir.join("snapshots"))
        .ok()?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let modified = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (modified, e.file_name().to_string_lossy().to_string())
        })
        .collect();
    if snapshots.is_empty() {
        return None;
    }
    snapshots.sort();
    let mut refs = BTreeMap::new();
    collect_refs(&dir.join("refs"), "", &mut refs);
    let commit = refs
        .get("main")
        .filter(|c| snapshots.iter().any(|(_, s)| s == *c))
        .cloned()
        .unwrap_or_else(|| snapshots.last().map(|(_, c)| c.clone()).unwrap_or_default());
    let path = dir.join("snapshots").join(&commit);
    let (kind, model_type) = model_kind(&path);
    let (mut size_bytes, mut incomplete_bytes) = (0, 0);
    for blob in std::fs::read_dir(dir.join("blobs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let len = blob.metadata().map(|m| m.len()).unwrap_or(0);
        if blob.file_name().to_string_lossy().ends_with(".incomplete") {
            incomplete_bytes += len;
        } else {
            size_bytes += len;
        }
    }
    Some(CachedModel {
        repo_id,
        path,
        commit,
        refs: refs.into_iter().collect(),
        snapshots: snapshots.len(),
        size_bytes,
        incomplete_bytes,
        kind,
        model_type,
    })
}

/// `refs/<name>` files, including nested ones such as `refs/pr/1`.
fn collect_refs(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let path = entry.path();
        if path.is_dir() {
            collect_refs(&path, &format!("{name}/"), out);
        } else if let Ok(commit) =
            crate::loading::files::read_text_capped(&path, super::cache::REF_BYTES)
        {
            out.insert(name, commit.trim().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cache::RepoCache;
    use super::*;

    #[test]
    fn lists_repos_with_kind_and_size() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(list_cached(&tmp.path().join("absent")).unwrap().is_empty());
        let repo = RepoCache::new(tmp.path(), "o/whisper");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(repo.dir().join("blobs")).unwrap();
        std::fs::write(repo.blob_path("c"), br#"{"model_type":"whisper"}"#).unwrap();
        std::fs::write(repo.incomplete_path("w"), [0u8; 10]).unwrap();
        repo.link(commit, "config.json", "c").unwrap();
        repo.write_ref("main", commit).unwrap();
        std::fs::create_dir_all(tmp.path().join("models--o--empty")).unwrap();
        let models = list_cached(tmp.path()).unwrap();
        assert_eq!(models.len(), 1);
        let m = &models[0];
        assert_eq!(m.repo_id, "o/whisper");
        assert_eq!(m.kind, ModelKind::Whisper);
        assert_eq!(m.commit, commit);
        assert_eq!(m.refs, [("main".to_string(), commit.to_string())]);
        assert_eq!(m.size_bytes, 24);
        assert_eq!(m.incomplete_bytes, 10);
    }
}
