//! `backendInfo()` and `selfTest()`.

use mlx_napi_core::{backend, Error as CoreError};
use napi::{bindgen_prelude::AsyncTask, Env};
use napi_derive::napi;

use crate::{
    errors::throw,
    task::{self, CoreTask, Work},
};

#[napi(object)]
pub struct BackendInfo {
    /// Version of the MLX library loaded in this process, e.g. "0.32.2".
    pub mlx_version: String,
    /// MLX's default device.
    #[napi(ts_type = "'gpu' | 'cpu'")]
    pub device: String,
    /// The backend that runs GPU work.
    #[napi(ts_type = "'cuda' | 'metal' | 'cpu'")]
    pub backend: String,
    /// Device name reported by MLX (e.g. "NVIDIA H200"), when known.
    pub device_name: Option<String>,
    /// Device memory in bytes, when known.
    pub memory: Option<f64>,
    /// Where MLX's CUDA backend caches the GPU kernels it compiles, so that
    /// only the first run on a machine pays for compiling them: the
    /// `MLX_PTX_CACHE_DIR` environment variable when set, else a per-user
    /// cache directory (`$XDG_CACHE_HOME` or `~/.cache` on Linux,
    /// `~/Library/Caches` on macOS, then `mlx-napi/mlx-<version>/kernels`),
    /// exported as `MLX_PTX_CACHE_DIR` for MLX. Metal and CPU builds keep
    /// no kernel cache on disk. Null without a home directory.
    pub kernel_cache_dir: Option<String>,
}

/// Which MLX build is loaded and what it runs on. Cheap and synchronous.
#[napi]
pub fn backend_info(env: Env) -> napi::Result<BackendInfo> {
    let info = backend::backend_info().map_err(|e| throw(&env, e))?;
    Ok(BackendInfo {
        mlx_version: info.mlx_version,
        device: info.device.to_string(),
        backend: info.backend.as_str().to_string(),
        device_name: info.device_name,
        memory: info.memory.map(|m| m as f64),
        kernel_cache_dir: info
            .kernel_cache_dir
            .map(|d| d.to_string_lossy().into_owned()),
    })
}

#[napi(object)]
pub struct SelfTestOptions {
    /// Matrix size n of the n×n×n product (default 1024).
    pub size: Option<i32>,
    /// Element type handed to MLX (default "float32"); MLX itself rejects
    /// types its matmul does not support, which surfaces as `ERR_MLX`.
    #[napi(ts_type = "'float32' | 'float16' | 'bfloat16' | 'int32'")]
    pub dtype: Option<String>,
}

#[napi(object)]
pub struct SelfTestResult {
    pub size: i32,
    pub dtype: String,
    pub device: String,
    /// Sum of the product's elements.
    pub checksum: f64,
    /// What the checksum must be, computed on the host.
    pub expected: f64,
    pub relative_error: f64,
    /// Wall time of the whole test, including any kernel compilation.
    pub millis: f64,
}

pub struct SelfTest {
    size: i32,
    dtype: String,
}

impl Work for SelfTest {
    type Output = backend::SelfTestReport;
    type JsValue = SelfTestResult;

    fn run(&mut self) -> Result<Self::Output, CoreError> {
        backend::self_test(self.size, backend::parse_dtype(&self.dtype)?)
    }

    fn to_js(&mut self, _env: Env, r: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(SelfTestResult {
            size: r.n,
            dtype: self.dtype.clone(),
            device: r.device.to_string(),
            checksum: r.checksum,
            expected: r.expected,
            relative_error: r.relative_error,
            millis: r.millis,
        })
    }
}

/// Runs an n×n matrix product on the default device on a worker thread and checks
/// its checksum against the closed form. Resolves with the numbers and the time.
#[napi(ts_return_type = "Promise<SelfTestResult>")]
pub fn self_test(options: Option<SelfTestOptions>) -> AsyncTask<CoreTask<SelfTest>> {
    let options = options.unwrap_or(SelfTestOptions {
        size: None,
        dtype: None,
    });
    task::spawn(SelfTest {
        size: options.size.unwrap_or(1024),
        dtype: options.dtype.unwrap_or_else(|| "float32".into()),
    })
}

#[napi(object)]
pub struct MatmulBenchmarkOptions {
    /// Matrix size n (default 4096).
    pub size: Option<i32>,
    #[napi(ts_type = "'float32' | 'float16' | 'bfloat16'")]
    pub dtype: Option<String>,
    /// Untimed products first, where MLX compiles its kernels (default 3).
    pub warmup: Option<u32>,
    /// Timed products (default 10).
    pub iterations: Option<u32>,
}

#[napi(object)]
pub struct MatmulBenchmarkResult {
    pub size: i32,
    pub dtype: String,
    /// Wall time of each timed product in ms.
    pub millis: Vec<f64>,
    pub median_millis: f64,
    /// 2·n³ / median time.
    pub median_tflops: f64,
}

pub struct MatmulBenchmark {
    size: i32,
    dtype: String,
    warmup: u32,
    iterations: u32,
}

impl Work for MatmulBenchmark {
    type Output = backend::MatmulTimings;
    type JsValue = MatmulBenchmarkResult;

    fn run(&mut self) -> Result<Self::Output, CoreError> {
        let dtype = backend::parse_dtype(&self.dtype)?;
        backend::benchmark_matmul(self.size, dtype, self.warmup, self.iterations)
    }

    fn to_js(&mut self, _env: Env, t: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(MatmulBenchmarkResult {
            size: t.n,
            dtype: self.dtype.clone(),
            median_millis: t.median_millis(),
            median_tflops: t.median_tflops(),
            millis: t.millis,
        })
    }
}

/// Times repeated n×n matmuls on device-resident random inputs (after warm-up):
/// the raw compute ceiling this process reaches through MLX.
#[napi(ts_return_type = "Promise<MatmulBenchmarkResult>")]
pub fn benchmark_matmul(
    options: Option<MatmulBenchmarkOptions>,
) -> AsyncTask<CoreTask<MatmulBenchmark>> {
    let o = options.unwrap_or(MatmulBenchmarkOptions {
        size: None,
        dtype: None,
        warmup: None,
        iterations: None,
    });
    task::spawn(MatmulBenchmark {
        size: o.size.unwrap_or(4096),
        dtype: o.dtype.unwrap_or_else(|| "bfloat16".into()),
        warmup: o.warmup.unwrap_or(3),
        iterations: o.iterations.unwrap_or(10),
    })
}

#[napi(object)]
pub struct MemoryStats {
    /// Bytes held by live MLX arrays (weights, caches, activations).
    pub active: f64,
    /// Highest `active` since start or `resetPeakMemory()`.
    pub peak: f64,
    /// Freed buffers MLX keeps for reuse.
    pub cache: f64,
}

/// MLX allocator counters for this process (device memory on a GPU).
#[napi]
pub fn memory_stats(env: Env) -> napi::Result<MemoryStats> {
    let m = backend::memory_stats().map_err(|e| throw(&env, e))?;
    Ok(MemoryStats {
        active: m.active as f64,
        peak: m.peak as f64,
        cache: m.cache as f64,
    })
}

/// Restarts `memoryStats().peak` from the current usage.
#[napi]
pub fn reset_peak_memory(env: Env) -> napi::Result<()> {
    backend::reset_peak_memory().map_err(|e| throw(&env, e))
}
