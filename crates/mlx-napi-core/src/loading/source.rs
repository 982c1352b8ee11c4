//! Resolving a model source (local folder or Hugging Face repo id) to a folder.
//!
//! A repo id (`owner/name`, optionally `owner/name@revision`) goes through
//! [`hub::snapshot`](super::hub::snapshot): the loader's files are taken from
//! the shared Hugging Face cache, downloading whatever is missing (unless
//! offline). See `loading/hub` for the cache layout and the environment.

use std::{
    path::{Path, PathBuf},
    sync::atomic::AtomicBool,
};

use super::{
    hub::{self, HubOptions},
    LoadProgress,
};
use crate::{Error, Result};

/// Folder of the model named by `source`, with default Hub settings, no
/// progress and no abort.
pub fn resolve_model_dir(source: &str) -> Result<PathBuf> {
    resolve_model_source(source, &HubOptions::default(), None, None)
}

/// Folder of the model named by `source`: an existing directory, or a repo id
/// made complete in the local cache (download progress goes to `progress` as
/// stage `"download"`; `abort` stops a download between reads).
pub fn resolve_model_source(
    source: &str,
    hub_options: &HubOptions,
    abort: Option<&AtomicBool>,
    progress: Option<&mut dyn FnMut(&LoadProgress)>,
) -> Result<PathBuf> {
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
    if hub::parse_repo_id(source).is_none() {
        return Err(Error::ModelNotFound(format!(
            "model folder {source:?} does not exist (and it is not a Hub repo id owner/name)"
        )));
    }
    Ok(hub::snapshot(source, hub_options, abort, progress)?.dir)
}
