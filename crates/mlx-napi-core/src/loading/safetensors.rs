//! Safetensors checkpoints: find the files, validate them, load them lazily.
//!
//! MLX's own loader is lazy (tensors are read from the file when first
//! evaluated), so loading is cheap and memory follows use. It is also the
//! faster one: for the 84 MB SmolLM2 checkpoint, open + eval took 31–81 ms vs
//! 80–113 ms for reading the file ourselves and copying each tensor into an
//! array (`examples/load_bench.rs`, CPU, warm page cache). It trusts the file,
//! though: a truncated file would only fail deep inside evaluation. We
//! therefore check every header up front (a few KiB read per file) — sizes,
//! offsets within the file, known dtypes — and turn problems into
//! `ERR_MODEL_FORMAT` errors naming the file and tensor.

use std::{
    collections::{BTreeSet, HashMap},
    io::Read,
    path::{Path, PathBuf},
};

use mlx_rs::Array;
use serde::Deserialize;

use crate::{Error, Result};

/// Largest header we accept; real ones are well under 1 MiB.
const MAX_HEADER_BYTES: u64 = 100 << 20;

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

/// The safetensors files of a model folder: the shards named by
/// `model.safetensors.index.json`, else `model.safetensors`, else every
/// `*.safetensors` file (sorted).
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index_path = dir.join("model.safetensors.index.json");
    if index_path.exists() {
        let index: ShardIndex = super::read_json(dir, "model.safetensors.index.json")?;
        let shards: BTreeSet<&String> = index.weight_map.values().collect();
        if shards.is_empty() {
            return Err(Error::format(format!(
                "{}: empty weight_map",
                index_path.display()
            )));
        }
        let mut files = Vec::new();
        for shard in shards {
            let path = dir.join(shard);
            // `exists`, not `is_file`: a FIFO or device shard must reach the
            // regular-file check (ERR_IO), not pass as missing.
            if !path.exists() {
                return Err(Error::ModelNotFound(format!(
                    "weight shard {shard} listed in {} is missing",
                    index_path.display()
                )));
            }
            files.push(path);
        }
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::ModelNotFound(format!(
            "no .safetensors weights in {}",
            dir.display()
        )));
    }
    Ok(files)
}

/// One tensor's entry in a safetensors header.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub dtype: String,
    pub shape: Vec<usize>,
}

fn dtype_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" => 8,
        _ => return None,
    })
}

/// Reads and checks the header of one safetensors file.
pub fn read_header(path: &Path) -> Result<HashMap<String, TensorInfo>> {
    let bad = |what: String| Error::format(format!("{}: {what}", path.display()));
    let mut file = super::files::open_regular(path)?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
        .len();
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes)
        .map_err(|_| bad("truncated: shorter than the 8-byte header length".into()))?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER_BYTES || header_len > file_len.saturating_sub(8) {
        return Err(bad(format!(
            "corrupt or truncated: header length {header_len} but the file has {file_len} bytes"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad(format!("reading header: {e}")))?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("corrupt header: {e}")))?;
    let data_len = file_len - 8 - header_len;
    let mut tensors = HashMap::new();
    for (name, entry) in json {
        if name == "__metadata__" {
            continue;
        }
        let dtype = entry["dtype"].as_str().unwrap_or_default().to_string();
        let size = dtype_size(&dtype)
            .ok_or_else(|| bad(format!("tensor {name}: unsupported dtype {dtype:?}")))?;
        let shape: Vec<usize> = entry["shape"]
            .as_array()
            .and_then(|dims| {
                dims.iter()
                    .map(|d| d.as_u64().map(|d| d as usize))
                    .collect()
            })
            .ok_or_else(|| bad(format!("tensor {name}: missing or invalid shape")))?;
        let offsets: Vec<u64> = entry["data_offsets"]
            .as_array()
            .and_then(|o| o.iter().map(|v| v.as_u64()).collect())
            .filter(|o: &Vec<u64>| o.len() == 2)
            .ok_or_else(|| bad(format!("tensor {name}: missing or invalid data_offsets")))?;
        let (start, end) = (offsets[0], offsets[1]);
        // Checked: a forged shape must not overflow into a small byte count.
        let expected = shape
            .iter()
            .try_fold(size as u64, |n, &d| n.checked_mul(d as u64))
            .filter(|&n| n <= data_len)
            .ok_or_else(|| {
                bad(format!(
                    "tensor {name}: shape {shape:?} {dtype} is larger than the file's {data_len}-byte data section"
                ))
            })?;
        if shape.iter().any(|&d| d > i32::MAX as usize) {
            return Err(bad(format!(
                "tensor {name}: dimension of shape {shape:?} exceeds 2^31 - 1"
            )));
        }
        if end < start || end - start != expected {
            return Err(bad(format!(
                "tensor {name}: {} bytes of data for shape {shape:?} {dtype} (expected {expected})",
                end.saturating_sub(start)
            )));
        }
        if end > data_len {
            return Err(bad(format!(
                "truncated: tensor {name} ends at byte {end} of a {data_len}-byte data section"
            )));
        }
        tensors.insert(name, TensorInfo { dtype, shape });
    }
    Ok(tensors)
}

/// Validates and lazily loads every tensor of `files` into one map. A tensor
/// name appearing in two files is an error.
pub fn load_weights(
    files: &[PathBuf],
    mut progress: impl FnMut(usize, usize),
) -> Result<HashMap<String, Array>> {
    let mut weights = HashMap::new();
    for (i, path) in files.iter().enumerate() {
        let header = read_header(path)?;
        let arrays = Array::load_safetensors(path)
            .map_err(|e| Error::format(format!("{}: {e}", path.display())))?;
        if arrays.len() != header.len() {
            return Err(Error::format(format!(
                "{}: MLX read {} tensors, the header lists {}",
                path.display(),
                arrays.len(),
                header.len()
            )));
        }
        for (name, array) in arrays {
            if weights.insert(name.clone(), array).is_some() {
                return Err(Error::format(format!(
                    "tensor {name} appears in more than one weight file"
                )));
            }
        }
        progress(i + 1, files.len());
    }
    Ok(weights)
}
