//! Node binding of mlx-napi (NAPI-RS). Thin: argument conversion, async tasks,
//! error mapping. All inference lives in `crates/mlx-napi-core`.
