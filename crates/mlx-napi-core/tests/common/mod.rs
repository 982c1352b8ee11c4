//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod longform;
pub mod wer;

use std::path::PathBuf;

/// `../shared` beside the project checkout, or `$MLX_TEST_SHARED`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("MLX_TEST_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// The shared file or folder `rel`, or `None` after printing a skip message.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let path = shared_dir().join(rel);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: {} not found", path.display());
        None
    }
}

pub fn smollm2_dir() -> Option<PathBuf> {
    shared("models/smollm2-135m-instruct-4bit/model.safetensors")
        .map(|p| p.parent().unwrap().to_path_buf())
}

pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Host copy of a float array (tests only).
pub fn to_vec_f32(a: &mlx_rs::Array) -> Vec<f32> {
    let a = a
        .as_dtype(mlx_rs::Dtype::Float32)
        .unwrap()
        .contiguous()
        .unwrap();
    a.eval().unwrap();
    a.as_slice::<f32>().to_vec()
}

pub fn to_vec_i32(a: &mlx_rs::Array) -> Vec<i32> {
    let a = a
        .as_dtype(mlx_rs::Dtype::Int32)
        .unwrap()
        .contiguous()
        .unwrap();
    a.eval().unwrap();
    a.as_slice::<i32>().to_vec()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
