//! Compares two ways of loading a safetensors checkpoint into MLX arrays:
//! MLX's own (lazy, reads on eval) and reading the file ourselves and copying
//! each tensor into an array. Both are evaluated fully.
//!
//! `cargo run --release -p mlx-napi-core --example load_bench -- path/to/model.safetensors`

use std::{collections::HashMap, io::Read, time::Instant};

use mlx_napi_core::loading::safetensors::read_header;
use mlx_rs::{transforms::eval, Array, Dtype};

fn by_hand(path: &std::path::Path) -> Result<HashMap<String, Array>, Box<dyn std::error::Error>> {
    let header = read_header(path)?;
    let mut file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let header_len = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    let raw: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len])?;
    let data = &bytes[8 + header_len..];
    let mut out = HashMap::new();
    for (name, info) in header {
        let offsets = &raw[&name]["data_offsets"];
        let (start, end) = (
            offsets[0].as_u64().unwrap() as usize,
            offsets[1].as_u64().unwrap() as usize,
        );
        let dtype = match info.dtype.as_str() {
            "F32" => Dtype::Float32,
            "F16" => Dtype::Float16,
            "BF16" => Dtype::Bfloat16,
            "U32" => Dtype::Uint32,
            other => return Err(format!("dtype {other}").into()),
        };
        let shape: Vec<i32> = info.shape.iter().map(|&d| d as i32).collect();
        let array = Array::from_slice(&data[start..end], &[(end - start) as i32])
            .view_dtype(dtype)?
            .reshape(&shape)?;
        out.insert(name, array);
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("path to a .safetensors file"),
    );
    for round in 0..3 {
        let start = Instant::now();
        let lazy = Array::load_safetensors(&path)?;
        let opened = start.elapsed();
        eval(lazy.values())?;
        let mlx = start.elapsed();
        let start = Instant::now();
        let ours = by_hand(&path)?;
        eval(ours.values())?;
        let manual = start.elapsed();
        println!(
            "round {round}: mlx load {:.1} ms (+eval {:.1} ms total), read+copy {:.1} ms ({} tensors)",
            opened.as_secs_f64() * 1e3,
            mlx.as_secs_f64() * 1e3,
            manual.as_secs_f64() * 1e3,
            ours.len()
        );
    }
    Ok(())
}
