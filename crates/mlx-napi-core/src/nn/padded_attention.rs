//! Decode attention over a left-padded batch cache, as one CUDA kernel.
//!
//! A batch step ([`crate::cache::BatchKvCache`]) must hide each row's left
//! padding. MLX 0.32's CUDA backend has no fused decode attention that takes a
//! mask: `fast::scaled_dot_product_attention` with a mask array falls back to
//! separate matmul, mask, softmax and matmul kernels in every layer. This
//! kernel takes the rows' padding instead of a mask (row `b` attends to keys
//! `padding[b]..`) and does the whole attention of one step in one launch
//! (`padded_attention.cu`: one block per head and row, an online softmax per
//! warp, float accumulation).
//!
//! Used on the CUDA backend for one query per row, head sizes that are a
//! multiple of 32 up to 256, and float16/bfloat16/float32. Metal's fused
//! attention takes the mask itself and the CPU has no custom kernels: both keep
//! the mask. `MLX_NAPI_PADDED_ATTENTION=0` turns the kernel off (benchmarks
//! compare the two).

use std::{cell::RefCell, ffi::CString, sync::OnceLock};

use mlx_rs::{Array, Dtype, Stream};

use crate::{Error, Result};

const BODY: &str = include_str!("padded_attention.cu");

/// Warps per (head, row) block: each reads every 32nd key.
const WARPS: i32 = 32;

/// Whether a batch step's attention with these shapes runs the kernel.
pub fn applies(q: &Array, k: &Array) -> bool {
    let d = q.dim(-1);
    enabled()
        && q.ndim() == 4
        && k.ndim() == 4
        && q.dim(2) == 1
        && d % 32 == 0
        && d <= 256
        && k.dim(-1) == d
        && q.dim(1) % k.dim(1) == 0
        && matches!(q.dtype(), Dtype::Float16 | Dtype::Bfloat16 | Dtype::Float32)
        && k.dtype() == q.dtype()
}

/// On by default on the CUDA backend, off elsewhere; `MLX_NAPI_PADDED_ATTENTION`
/// `0` turns it off.
fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::env::var("MLX_NAPI_PADDED_ATTENTION").as_deref() != Ok("0")
            && crate::backend::default_device_is_gpu()
            && crate::backend::cuda_available()
    })
}

/// `softmax(q kᵀ · scale) v` for `q [B, H, 1, D]`, `k, v [B, Hkv, L, D]`,
/// where row `b` sees only keys `padding[b]..L` (`padding`: int32 `[B]`) →
/// `[B, H, 1, D]`. Check [`applies`] first.
pub fn attention(q: &Array, k: &Array, v: &Array, scale: f32, padding: &Array) -> Result<Array> {
    let (batch, heads, d) = (q.dim(0), q.dim(1), q.dim(3));
    KERNELS.with(|kernels| {
        let mut kernels = kernels.borrow_mut();
        let kernel = match kernels.iter().position(|(s, _)| *s == scale.to_bits()) {
            Some(i) => &kernels[i].1,
            None => {
                kernels.push((scale.to_bits(), CudaKernel::new(scale)?));
                &kernels.last().unwrap().1
            }
        };
        let mut out = kernel.apply(
            &[q, k, v, padding],
            &[batch, heads, 1, d],
            q.dtype(),
            (heads * 32 * WARPS, batch, 1),
            (32 * WARPS, 1, 1),
            d,
        )?;
        out.pop()
            .ok_or_else(|| Error::Mlx("the padded attention kernel gave no output".into()))
    })
}

thread_local! {
    /// One kernel per softmax scale (a constant of its source); MLX caches
    /// the compiled module by source, on disk as well.
    static KERNELS: RefCell<Vec<(u32, CudaKernel)>> = const { RefCell::new(Vec::new()) };
}

/// An `mlx::core::fast::cuda_kernel` (mlx-rs 0.33 binds only the Metal one).
struct CudaKernel(mlx_sys::mlx_fast_cuda_kernel);

impl CudaKernel {
    fn new(scale: f32) -> Result<Self> {
        // `{:e}` prints the shortest text that reads back as the same f32.
        let header = format!(
            "constexpr float SCALE_LOG2 = {:e}f;\n",
            scale * std::f32::consts::LOG2_E
        );
        let name = c("padded_decode_attention")?;
        let body = c(BODY)?;
        let header = c(&header)?;
        let inputs = StringVector::new(&["q", "k", "v", "padding"])?;
        let outputs = StringVector::new(&["out"])?;
        // SAFETY: every pointer is a live NUL-terminated string or vector for
        // the call; mlx-c copies what it keeps.
        let raw = unsafe {
            mlx_sys::mlx_fast_cuda_kernel_new(
                name.as_ptr(),
                inputs.0,
                outputs.0,
                body.as_ptr(),
                header.as_ptr(),
                false,
                0,
            )
        };
        if raw.ctx.is_null() {
            return Err(Error::Mlx(
                "could not create the padded attention kernel".into(),
            ));
        }
        Ok(Self(raw))
    }

    /// Queues the kernel (lazy, like any MLX op; it compiles on first use).
    fn apply(
        &self,
        inputs: &[&Array],
        shape: &[i32],
        dtype: Dtype,
        grid: (i32, i32, i32),
        block: (i32, i32, i32),
        head_dim: i32,
    ) -> Result<Vec<Array>> {
        let config = Config::new();
        let t = c("T")?;
        let d = c("D")?;
        let warps = c("WARPS")?;
        // SAFETY: `config` is live; names are NUL-terminated for each call.
        let status = unsafe {
            mlx_sys::mlx_fast_cuda_kernel_config_add_output_arg(
                config.0,
                shape.as_ptr(),
                shape.len(),
                dtype.into(),
            ) | mlx_sys::mlx_fast_cuda_kernel_config_set_grid(config.0, grid.0, grid.1, grid.2)
                | mlx_sys::mlx_fast_cuda_kernel_config_set_thread_group(
                    config.0, block.0, block.1, block.2,
                )
                | mlx_sys::mlx_fast_cuda_kernel_config_add_template_arg_dtype(
                    config.0,
                    t.as_ptr(),
                    dtype.into(),
                )
                | mlx_sys::mlx_fast_cuda_kernel_config_add_template_arg_int(
                    config.0,
                    d.as_ptr(),
                    head_dim,
                )
                | mlx_sys::mlx_fast_cuda_kernel_config_add_template_arg_int(
                    config.0,
                    warps.as_ptr(),
                    WARPS,
                )
        };
        if status != 0 {
            return Err(Error::Mlx(
                "could not configure the padded attention kernel".into(),
            ));
        }
        let raw_inputs: Vec<mlx_sys::mlx_array> = inputs.iter().map(|a| a.as_ptr()).collect();
        let stream = Stream::thread_local_or_default();
        // SAFETY: the arrays outlive the call (mlx-c takes its own
        // references); the kernel reads only inside its inputs (keys from
        // `padding[b]` to the key length, features below D, strides as MLX
        // passes them) and writes each output element once.
        unsafe {
            let input_vector =
                mlx_sys::mlx_vector_array_new_data(raw_inputs.as_ptr(), raw_inputs.len());
            let mut results = mlx_sys::mlx_vector_array_new();
            let status = mlx_sys::mlx_fast_cuda_kernel_apply(
                &mut results,
                self.0,
                input_vector,
                config.0,
                stream.as_ptr(),
            );
            mlx_sys::mlx_vector_array_free(input_vector);
            if status != 0 {
                mlx_sys::mlx_vector_array_free(results);
                return Err(Error::Mlx(
                    "the padded attention kernel could not be queued".into(),
                ));
            }
            let mut arrays = Vec::new();
            for i in 0..mlx_sys::mlx_vector_array_size(results) {
                let mut array = mlx_sys::mlx_array_new();
                if mlx_sys::mlx_vector_array_get(&mut array, results, i) != 0 {
                    mlx_sys::mlx_array_free(array);
                    mlx_sys::mlx_vector_array_free(results);
                    return Err(Error::Mlx("reading the padded attention output".into()));
                }
                arrays.push(Array::from_ptr(array));
            }
            mlx_sys::mlx_vector_array_free(results);
            Ok(arrays)
        }
    }
}

impl Drop for CudaKernel {
    fn drop(&mut self) {
        // SAFETY: created by mlx_fast_cuda_kernel_new, freed once.
        unsafe { mlx_sys::mlx_fast_cuda_kernel_free(self.0) };
    }
}

struct Config(mlx_sys::mlx_fast_cuda_kernel_config);

impl Config {
    fn new() -> Self {
        // SAFETY: plain constructor.
        Self(unsafe { mlx_sys::mlx_fast_cuda_kernel_config_new() })
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        // SAFETY: created above, freed once.
        unsafe { mlx_sys::mlx_fast_cuda_kernel_config_free(self.0) };
    }
}

struct StringVector(mlx_sys::mlx_vector_string);

impl StringVector {
    fn new(items: &[&str]) -> Result<Self> {
        // SAFETY: plain constructor; each appended string is copied.
        let vector = Self(unsafe { mlx_sys::mlx_vector_string_new() });
        for item in items {
            let item = c(item)?;
            if unsafe { mlx_sys::mlx_vector_string_append_value(vector.0, item.as_ptr()) } != 0 {
                return Err(Error::Mlx("building a kernel's argument names".into()));
            }
        }
        Ok(vector)
    }
}

impl Drop for StringVector {
    fn drop(&mut self) {
        // SAFETY: created above, freed once.
        unsafe { mlx_sys::mlx_vector_string_free(self.0) };
    }
}

fn c(text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::Internal("a kernel string holds a NUL byte".into()))
}
