mod common;

use std::{collections::HashMap, fs, path::Path};

use mlx_napi_core::loading::{
    cast_weights, load_weights, read_json, resolve_model_dir, safetensors::read_header,
    weight_files,
};
use mlx_rs::{Array, Dtype};

fn save(path: &Path, tensors: &[(&str, Array)]) {
    let map: HashMap<String, Array> = tensors
        .iter()
        .map(|(n, a)| (n.to_string(), a.clone()))
        .collect();
    Array::save_safetensors(&map, None, path).unwrap();
}

#[test]
fn local_dirs_and_missing_sources() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        resolve_model_dir(dir.path().to_str().unwrap()).unwrap(),
        dir.path()
    );
    let missing = dir.path().join("nope");
    let err = resolve_model_dir(missing.to_str().unwrap()).unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_MODEL_NOT_FOUND");
    assert_eq!(
        resolve_model_dir("").unwrap_err().code().as_str(),
        "ERR_INVALID_ARG"
    );
}

/// Offline, a repo id resolves through the HF cache layout (`HF_HUB_CACHE`), and
/// a repo absent from the cache gives ERR_OFFLINE that names the repo.
#[test]
fn repo_ids_resolve_through_the_offline_cache() {
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--acme--tiny-llm");
    let commit = "0123abcd0123abcd0123abcd0123abcd0123abcd";
    let snapshot = repo.join("snapshots").join(commit);
    fs::create_dir_all(&snapshot).unwrap();
    fs::create_dir_all(repo.join("refs")).unwrap();
    fs::write(repo.join("refs/main"), commit).unwrap();
    fs::write(snapshot.join("config.json"), "{}").unwrap();
    // Environment variables are process-wide; only this test touches them.
    std::env::set_var("HF_HUB_CACHE", cache.path());
    std::env::set_var("HF_HUB_OFFLINE", "1");
    assert_eq!(resolve_model_dir("acme/tiny-llm").unwrap(), snapshot);
    let pinned = format!("acme/tiny-llm@{commit}");
    assert_eq!(resolve_model_dir(&pinned).unwrap(), snapshot);
    let err = resolve_model_dir("acme/other").unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_OFFLINE");
    assert!(
        err.to_string().contains("acme/other") && err.to_string().contains("HF_HUB_OFFLINE"),
        "{err}"
    );
    let err = resolve_model_dir("acme/tiny-llm@v2").unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_OFFLINE");
    std::env::remove_var("HF_HUB_CACHE");
    std::env::remove_var("HF_HUB_OFFLINE");
}

#[test]
fn sharded_checkpoints_load_every_shard() {
    let dir = tempfile::tempdir().unwrap();
    save(
        &dir.path().join("model-00001-of-00002.safetensors"),
        &[("a", Array::from_slice(&[1f32, 2.0], &[2]))],
    );
    save(
        &dir.path().join("model-00002-of-00002.safetensors"),
        &[("b", Array::from_slice(&[3f32], &[1]))],
    );
    fs::write(
        dir.path().join("model.safetensors.index.json"),
        r#"{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let files = weight_files(dir.path()).unwrap();
    assert_eq!(files.len(), 2);
    let mut calls = Vec::new();
    let weights = load_weights(&files, |done, total| calls.push((done, total))).unwrap();
    assert_eq!(calls, vec![(1, 2), (2, 2)]);
    assert_eq!(common::to_vec_f32(&weights["a"]), vec![1.0, 2.0]);
    assert_eq!(common::to_vec_f32(&weights["b"]), vec![3.0]);

    // A shard named in the index but absent.
    fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    assert_eq!(
        weight_files(dir.path()).unwrap_err().code().as_str(),
        "ERR_MODEL_NOT_FOUND"
    );
    // No weights at all.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        weight_files(empty.path()).unwrap_err().code().as_str(),
        "ERR_MODEL_NOT_FOUND"
    );
}

#[test]
fn truncated_and_corrupt_files_are_format_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    save(&path, &[("w", Array::from_slice(&[0.5f32; 64], &[8, 8]))]);
    let bytes = fs::read(&path).unwrap();
    assert!(read_header(&path).is_ok());

    // Cut off in the tensor data.
    fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let err = load_weights(std::slice::from_ref(&path), |_, _| {}).unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_MODEL_FORMAT");
    assert!(
        // The header's offsets are checked against the file's size first.
        (err.to_string().contains("truncated") || err.to_string().contains("larger than the file"))
            && err.to_string().contains('w'),
        "{err}"
    );

    // Cut off inside the header, and shorter than the length prefix.
    fs::write(&path, &bytes[..20]).unwrap();
    assert_eq!(
        load_weights(std::slice::from_ref(&path), |_, _| {})
            .unwrap_err()
            .code()
            .as_str(),
        "ERR_MODEL_FORMAT"
    );
    fs::write(&path, &bytes[..3]).unwrap();
    assert_eq!(
        load_weights(std::slice::from_ref(&path), |_, _| {})
            .unwrap_err()
            .code()
            .as_str(),
        "ERR_MODEL_FORMAT"
    );

    // Garbage header JSON of a plausible length.
    let mut garbage = bytes.clone();
    garbage[8] = b'!';
    fs::write(&path, &garbage).unwrap();
    let err = load_weights(std::slice::from_ref(&path), |_, _| {}).unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_MODEL_FORMAT");
    assert!(err.to_string().contains("corrupt header"), "{err}");
}

#[test]
fn truncated_copy_of_the_real_model_is_rejected() {
    let Some(src) = common::smollm2_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bytes = fs::read(src.join("model.safetensors")).unwrap();
    let path = dir.path().join("model.safetensors");
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_weights(&[path], |_, _| {}).unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_MODEL_FORMAT");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn config_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_json::<serde_json::Value>(dir.path(), "config.json").unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_MODEL_NOT_FOUND");
    fs::write(dir.path().join("config.json"), "{\"hidden_size\": ").unwrap();
    let err = read_json::<serde_json::Value>(dir.path(), "config.json").unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_MODEL_FORMAT");
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn real_model_loads_lazily_and_casts() {
    let Some(dir) = common::smollm2_dir() else {
        return;
    };
    let files = weight_files(&dir).unwrap();
    assert_eq!(files.len(), 1);
    let start = std::time::Instant::now();
    let mut weights = load_weights(&files, |_, _| {}).unwrap();
    // Lazy: 84 MB are not read in this time on any machine we run on.
    assert!(
        start.elapsed().as_millis() < 2000,
        "load took {:?}",
        start.elapsed()
    );
    assert_eq!(weights.len(), 694);
    assert_eq!(weights["model.embed_tokens.weight"].dtype(), Dtype::Uint32);
    assert_eq!(weights["model.norm.weight"].dtype(), Dtype::Float16);
    cast_weights(&mut weights, Dtype::Float32).unwrap();
    assert_eq!(weights["model.embed_tokens.weight"].dtype(), Dtype::Uint32);
    assert_eq!(weights["model.embed_tokens.scales"].dtype(), Dtype::Float32);
    assert_eq!(weights["model.norm.weight"].dtype(), Dtype::Float32);
}
