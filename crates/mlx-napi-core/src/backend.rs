//! What MLX runs on here, and a self-test that proves it computes.

use std::{ffi::CStr, time::Instant};

use mlx_rs::{ops, Array, Dtype};

use crate::{Error, Result};

/// Which MLX backend executes GPU work in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Cuda,
    Metal,
    Cpu,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Cuda => "cuda",
            Backend::Metal => "metal",
            Backend::Cpu => "cpu",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BackendInfo {
    /// Version of the loaded libmlx (not the one we compiled against).
    pub mlx_version: String,
    /// `"gpu"` or `"cpu"`: MLX's default device.
    pub device: &'static str,
    pub backend: Backend,
    /// e.g. "NVIDIA H200" or "Apple M3 Max", when MLX reports it.
    pub device_name: Option<String>,
    /// Device memory in bytes, when MLX reports it.
    pub memory: Option<u64>,
    /// Where compiled GPU kernels are cached across runs (`runtime::kernel_cache_dir`).
    pub kernel_cache_dir: Option<std::path::PathBuf>,
}

/// The process's default MLX device, freed on drop.
struct DefaultDevice(mlx_sys::mlx_device);

impl DefaultDevice {
    fn get() -> Result<Self> {
        crate::runtime::init();
        let mut device = DefaultDevice(unsafe { mlx_sys::mlx_device_new() });
        unsafe {
            check(
                mlx_sys::mlx_get_default_device(&mut device.0),
                "mlx_get_default_device",
            )?
        };
        Ok(device)
    }

    fn is_gpu(&self) -> Result<bool> {
        let mut kind = mlx_sys::mlx_device_type__MLX_CPU;
        unsafe {
            check(
                mlx_sys::mlx_device_get_type(&mut kind, self.0),
                "mlx_device_get_type",
            )?
        };
        Ok(kind == mlx_sys::mlx_device_type__MLX_GPU)
    }
}

impl Drop for DefaultDevice {
    fn drop(&mut self) {
        unsafe { mlx_sys::mlx_device_free(self.0) };
    }
}

/// Turns a non-zero mlx-c status into our error, with MLX's message when mlx-rs's
/// error handler captured one.
fn check(status: i32, what: &str) -> Result<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(Error::Mlx(format!("{what} failed")))
    }
}

fn mlx_string(s: mlx_sys::mlx_string) -> String {
    // SAFETY: mlx_string_data returns a NUL-terminated buffer owned by `s`.
    let text = unsafe { CStr::from_ptr(mlx_sys::mlx_string_data(s)) }
        .to_string_lossy()
        .into_owned();
    unsafe { mlx_sys::mlx_string_free(s) };
    text
}

pub fn mlx_version() -> Result<String> {
    crate::runtime::init();
    raw_mlx_version()
}

/// [`mlx_version`] without the runtime set-up (for `runtime::init` itself,
/// after mlx-rs's error handler is installed).
pub(crate) fn raw_mlx_version() -> Result<String> {
    unsafe {
        let mut s = mlx_sys::mlx_string_new();
        check(mlx_sys::mlx_version(&mut s), "mlx_version")?;
        Ok(mlx_string(s))
    }
}

/// Whether MLX's default device is a GPU (CUDA or Metal): the one fact the
/// defaults that differ by device need, without the rest of [`backend_info`].
/// `false` when MLX cannot say.
pub fn default_device_is_gpu() -> bool {
    DefaultDevice::get()
        .and_then(|device| device.is_gpu())
        .unwrap_or(false)
}

/// Whether the loaded libmlx has a working CUDA backend (`false` when MLX
/// cannot say).
pub fn cuda_available() -> bool {
    let mut available = false;
    // SAFETY: plain out-parameter call.
    let status = unsafe { mlx_sys::mlx_cuda_is_available(&mut available) };
    status == 0 && available
}

pub fn backend_info() -> Result<BackendInfo> {
    crate::runtime::init();
    let mut cuda = false;
    let mut metal = false;
    unsafe {
        check(
            mlx_sys::mlx_cuda_is_available(&mut cuda),
            "mlx_cuda_is_available",
        )?;
        check(
            mlx_sys::mlx_metal_is_available(&mut metal),
            "mlx_metal_is_available",
        )?;
    }
    let backend = if cuda {
        Backend::Cuda
    } else if metal {
        Backend::Metal
    } else {
        Backend::Cpu
    };
    let device = DefaultDevice::get()?;
    let is_gpu = device.is_gpu()?;
    let (device_name, memory) = device_details(&device);
    Ok(BackendInfo {
        mlx_version: mlx_version()?,
        device: if is_gpu { "gpu" } else { "cpu" },
        backend,
        device_name,
        memory,
        kernel_cache_dir: crate::runtime::kernel_cache_dir(),
    })
}

/// Name and memory size from MLX's device-info map; absent keys are not errors
/// (the CPU device reports little).
fn device_details(device: &DefaultDevice) -> (Option<String>, Option<u64>) {
    unsafe {
        let mut info = mlx_sys::mlx_device_info_new();
        if mlx_sys::mlx_device_info_get(&mut info, device.0) != 0 {
            mlx_sys::mlx_device_info_free(info);
            return (None, None);
        }
        let has = |key: &CStr| {
            let mut present = false;
            mlx_sys::mlx_device_info_has_key(&mut present, info, key.as_ptr()) == 0 && present
        };
        let name = if has(c"device_name") {
            let mut ptr: *const std::os::raw::c_char = std::ptr::null();
            (mlx_sys::mlx_device_info_get_string(&mut ptr, info, c"device_name".as_ptr()) == 0
                && !ptr.is_null())
            .then(|| CStr::from_ptr(ptr).to_string_lossy().into_owned())
        } else {
            None
        };
        let memory = ["total_memory", "memory_size"].iter().find_map(|key| {
            let key = std::ffi::CString::new(*key).unwrap();
            if !has(&key) {
                return None;
            }
            let mut size = 0usize;
            (mlx_sys::mlx_device_info_get_size(&mut size, info, key.as_ptr()) == 0)
                .then_some(size as u64)
        });
        mlx_sys::mlx_device_info_free(info);
        (name, memory)
    }
}

#[derive(Debug, Clone)]
pub struct SelfTestReport {
    pub n: i32,
    pub dtype: Dtype,
    /// Sum of the product's elements, computed in float32.
    pub checksum: f64,
    /// The checksum the inputs imply, computed on the host.
    pub expected: f64,
    /// |checksum − expected| / expected.
    pub relative_error: f64,
    pub millis: f64,
    pub device: &'static str,
}

/// Multiplies two deterministic `n`×`n` matrices on the default device and
/// checks the result against a closed form, so a broken backend cannot pass.
///
/// A = ones, B[i][j] = (i mod 8) / 8 (exact in every float type): every element
/// of A·B is Σ_i (i mod 8)/8, so the sum over the product is n² · Σ_i (i mod 8)/8.
pub fn self_test(n: i32, dtype: Dtype) -> Result<SelfTestReport> {
    if !(1..=16384).contains(&n) {
        return Err(Error::invalid(format!(
            "self-test size must be in 1..=16384, got {n}"
        )));
    }
    crate::runtime::init();
    let start = Instant::now();
    let a = ops::ones_dtype(&[n, n], dtype)?;
    let rows = ops::arange::<_, f32>(0, n, None)?;
    let col = ops::divide(
        &ops::remainder(&rows, Array::from_f32(8.0))?,
        Array::from_f32(8.0),
    )?;
    let b = ops::broadcast_to(&col.reshape(&[n, 1])?, &[n, n])?.as_dtype(dtype)?;
    let product = ops::matmul(&a, &b)?;
    let sum = product.as_dtype(Dtype::Float32)?.sum(None)?;
    sum.eval()?;
    let checksum = f64::from(sum.item_cast::<f32>());
    let expected =
        f64::from(n) * f64::from(n) * (0..n).map(|i| f64::from(i % 8) / 8.0).sum::<f64>();
    let info = backend_info()?;
    let relative_error = (checksum - expected).abs() / expected.abs().max(f64::MIN_POSITIVE);
    let tolerance = self_test_tolerance(dtype);
    // A NaN checksum fails too.
    if relative_error.is_nan() || relative_error > tolerance {
        return Err(Error::SelfTestFailed(format!(
            "self-test failed: {n}×{n} {dtype:?} matmul on {} has a relative error of {relative_error:.3e} \
             (checksum {checksum}, expected {expected}); the tolerance for {dtype:?} is {tolerance:.0e}",
            info.device
        )));
    }
    Ok(SelfTestReport {
        n,
        dtype,
        checksum,
        expected,
        relative_error,
        millis: start.elapsed().as_secs_f64() * 1e3,
        device: info.device,
    })
}

/// Largest relative error of the self-test's checksum that a correct backend
/// can produce: a few units in the last place of the dtype (every input and
/// the exact product are representable; only accumulation rounds).
pub fn self_test_tolerance(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::Float32 => 1e-5,
        Dtype::Float16 => 1e-2,
        Dtype::Bfloat16 => 2e-2,
        _ => 1e-5,
    }
}

/// Frees MLX's buffer cache (after a model is dropped, so memory goes back to
/// the OS or the device pool's baseline).
pub fn release_cached_memory() {
    // SAFETY: no arguments; MLX frees only buffers no array holds.
    unsafe {
        mlx_sys::mlx_clear_cache();
    }
}

/// Parses a dtype name as used in the JS API ("float32", "bfloat16", ...).
pub fn parse_dtype(name: &str) -> Result<Dtype> {
    Ok(match name {
        "float32" => Dtype::Float32,
        "float16" => Dtype::Float16,
        "bfloat16" => Dtype::Bfloat16,
        "int32" => Dtype::Int32,
        other => {
            return Err(Error::invalid(format!(
                "unknown dtype '{other}': expected 'float32', 'float16', 'bfloat16' or 'int32'"
            )))
        }
    })
}

/// Timings of repeated n×n×n matmuls on inputs that already live on the device.
#[derive(Debug, Clone)]
pub struct MatmulTimings {
    pub n: i32,
    pub dtype: Dtype,
    /// Wall time of each timed product, evaluated one at a time (ms).
    pub millis: Vec<f64>,
}

impl MatmulTimings {
    pub fn median_millis(&self) -> f64 {
        let mut sorted = self.millis.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    /// Throughput at the median time, in TFLOP/s (2·n³ operations per product).
    pub fn median_tflops(&self) -> f64 {
        2.0 * f64::from(self.n).powi(3) / (self.median_millis() * 1e-3) / 1e12
    }
}

/// Measures matmul throughput: `warmup` untimed products (kernel compilation and
/// allocation happen there), then `iterations` timed ones.
pub fn benchmark_matmul(
    n: i32,
    dtype: Dtype,
    warmup: u32,
    iterations: u32,
) -> Result<MatmulTimings> {
    if !(1..=32768).contains(&n) {
        return Err(Error::invalid(format!(
            "matmul size must be in 1..=32768, got {n}"
        )));
    }
    if iterations == 0 {
        return Err(Error::invalid("iterations must be at least 1"));
    }
    crate::runtime::init();
    let key = mlx_rs::random::key(0)?;
    let a = mlx_rs::random::normal::<f32>(&[n, n], None, None, &key)?.as_dtype(dtype)?;
    let b = mlx_rs::random::normal::<f32>(&[n, n], None, None, &key)?.as_dtype(dtype)?;
    mlx_rs::transforms::eval([&a, &b])?;
    for _ in 0..warmup {
        ops::matmul(&a, &b)?.eval()?;
    }
    let mut millis = Vec::with_capacity(iterations as usize);
    for _ in 0..iterations {
        let start = Instant::now();
        ops::matmul(&a, &b)?.eval()?;
        millis.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(MatmulTimings { n, dtype, millis })
}

/// MLX's allocator counters, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct MemoryStats {
    /// Memory held by live arrays.
    pub active: u64,
    /// The highest `active` since start (or the last reset).
    pub peak: u64,
    /// Freed buffers MLX keeps for reuse.
    pub cache: u64,
}

pub fn memory_stats() -> Result<MemoryStats> {
    crate::runtime::init();
    let (mut active, mut peak, mut cache) = (0usize, 0usize, 0usize);
    unsafe {
        check(
            mlx_sys::mlx_get_active_memory(&mut active),
            "mlx_get_active_memory",
        )?;
        check(
            mlx_sys::mlx_get_peak_memory(&mut peak),
            "mlx_get_peak_memory",
        )?;
        check(
            mlx_sys::mlx_get_cache_memory(&mut cache),
            "mlx_get_cache_memory",
        )?;
    }
    Ok(MemoryStats {
        active: active as u64,
        peak: peak as u64,
        cache: cache as u64,
    })
}

pub fn reset_peak_memory() -> Result<()> {
    crate::runtime::init();
    unsafe { check(mlx_sys::mlx_reset_peak_memory(), "mlx_reset_peak_memory") }
}
