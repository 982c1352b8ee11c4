//! Reading the JSON files of a model folder with errors that say which file
//! and what is wrong.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Parses `dir/name` into `T`. A missing file is `ERR_MODEL_NOT_FOUND`, bad
/// JSON or a wrong field type is `ERR_MODEL_FORMAT`.
pub fn read_json<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<T> {
    read_json_opt(dir, name)?
        .ok_or_else(|| Error::ModelNotFound(format!("{} not found in {}", name, dir.display())))
}

/// Like [`read_json`] but `Ok(None)` when the file does not exist.
pub fn read_json_opt<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>> {
    let path = dir.join(name);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = super::files::read_capped(&path, super::files::MAX_CONFIG_BYTES)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::format(format!("{}: {e}", path.display())))
}

/// Token ids given as a number or a list (`eos_token_id` in HF configs).
pub fn ids_from_value(value: Option<&serde_json::Value>) -> Vec<u32> {
    match value {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().map(|v| vec![v as u32]).unwrap_or_default()
        }
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_u64().map(|v| v as u32))
            .collect(),
        _ => Vec::new(),
    }
}
