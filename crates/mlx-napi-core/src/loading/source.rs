//! Resolving a model source (local folder or Hugging Face repo id) to a folder.
//!
//! Repo ids are looked up in the local Hugging Face cache only (the layout
//! `huggingface_hub` and `hf-hub` write: `models--owner--name/snapshots/<sha>`).
//! The cache root follows the usual variables: `HF_HUB_CACHE`, else
//! `$HF_HOME/hub`, else `~/.cache/huggingface/hub`. This build never downloads;
//! with `HF_HUB_OFFLINE=1` the error says so explicitly.

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};

use crate::{Error, Result};

/// Folder of the model named by `source`: an existing directory, or a repo id
/// `owner/name` (optionally `owner/name@revision`) found in the local HF cache.
pub fn resolve_model_dir(source: &str) -> Result<PathBuf> {
    if source.trim().is_empty() {
        return Err(Error::invalid("model source must not be empty"));
    }
    let path = Path::new(source);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if path.exists() {
        return Err(Error::ModelNotFound(format!(
            "model source {source:?} is a file; pass the folder that holds config.json"
        )));
    }
    if !looks_like_repo_id(source) {
        return Err(Error::ModelNotFound(format!(
            "model folder {source:?} does not exist"
        )));
    }
    let (repo_id, revision) = match source.split_once('@') {
        Some((id, rev)) => (id, rev),
        None => (source, "main"),
    };
    let cache = hf_cache();
    let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string());
    if let Some(config) = cache.repo(repo).get("config.json") {
        if let Some(dir) = config.parent() {
            return Ok(dir.to_path_buf());
        }
    }
    let offline = std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes" | "ON" | "on"))
        .unwrap_or(false);
    let why = if offline {
        "HF_HUB_OFFLINE is set and it is not in the local cache"
    } else {
        "it is not in the local cache and this build does not download models"
    };
    Err(Error::ModelNotFound(format!(
        "model {repo_id:?} (revision {revision}) not found: {why} ({})",
        cache.path().display()
    )))
}

fn hf_cache() -> Cache {
    match std::env::var_os("HF_HUB_CACHE") {
        Some(dir) if !dir.is_empty() => Cache::new(PathBuf::from(dir)),
        _ => Cache::from_env(),
    }
}

/// `owner/name` with characters Hugging Face allows; a relative path such as
/// `models/foo` that does not exist also matches, and then fails the cache lookup.
fn looks_like_repo_id(source: &str) -> bool {
    let id = source.split('@').next().unwrap_or(source);
    let mut parts = id.split('/');
    let (Some(owner), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    ok(owner) && ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_id_shape() {
        assert!(looks_like_repo_id(
            "mlx-community/SmolLM2-135M-Instruct-4bit"
        ));
        assert!(looks_like_repo_id("a/b@v1.0"));
        assert!(!looks_like_repo_id("/abs/path"));
        assert!(!looks_like_repo_id("a/b/c"));
        assert!(!looks_like_repo_id("../x"));
    }
}
