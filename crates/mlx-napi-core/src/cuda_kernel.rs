//! Our own CUDA kernels, through `mlx::core::fast::cuda_kernel` (mlx-c's
//! `mlx_fast_cuda_kernel`; mlx-rs 0.33 binds only the Metal one).
//!
//! A kernel is a body of CUDA source that MLX wraps into a `__global__`
//! function taking the named inputs (with `<name>_shape` / `<name>_strides`
//! when the body uses them) and outputs; MLX compiles it with NVRTC on first
//! use and caches the module by source (on disk too, `MLX_PTX_CACHE_DIR`).
//! Applying one is lazy, like any MLX op. Used by `nn::padded_attention` and
//! `sampling::allowed`.

use std::ffi::CString;

use mlx_rs::{Array, Dtype, Stream};

use crate::{Error, Result};

/// Whether one of our kernels runs: on the CUDA backend, unless the
/// environment variable `off_switch` is `0` (each kernel has one, for A/B
/// benchmarks). Callers keep the answer in a `OnceLock`.
pub(crate) fn enabled(off_switch: &str) -> bool {
    std::env::var(off_switch).as_deref() != Ok("0")
        && crate::backend::default_device_is_gpu()
        && crate::backend::cuda_available()
}

/// A template argument of a kernel launch.
pub(crate) enum Template<'a> {
    Dtype(&'a str, Dtype),
    Int(&'a str, i32),
}

/// One launch's geometry: `grid` counts threads (not blocks) per axis, as in
/// MLX's custom kernels; `block` is the threads per block.
pub(crate) struct Launch {
    pub grid: (i32, i32, i32),
    pub block: (i32, i32, i32),
}

/// A compiled-on-first-use CUDA kernel.
pub(crate) struct CudaKernel {
    raw: mlx_sys::mlx_fast_cuda_kernel,
    /// For error messages.
    name: &'static str,
}

impl CudaKernel {
    /// `body` is the kernel's source without its signature; `header` goes
    /// before the function (constants, helpers). `row_contiguous`: MLX copies
    /// any input that is not row-contiguous first (the body may then index
    /// inputs linearly).
    pub fn new(
        name: &'static str,
        inputs: &[&str],
        outputs: &[&str],
        body: &str,
        header: &str,
        row_contiguous: bool,
    ) -> Result<Self> {
        let c_name = c(name)?;
        let body = c(body)?;
        let header = c(header)?;
        let inputs = StringVector::new(inputs)?;
        let outputs = StringVector::new(outputs)?;
        // SAFETY: every pointer is a live NUL-terminated string or vector for
        // the call; mlx-c copies what it keeps.
        let raw = unsafe {
            mlx_sys::mlx_fast_cuda_kernel_new(
                c_name.as_ptr(),
                inputs.0,
                outputs.0,
                body.as_ptr(),
                header.as_ptr(),
                row_contiguous,
                0,
            )
        };
        if raw.ctx.is_null() {
            return Err(Error::Mlx(format!("could not create the {name} kernel")));
        }
        Ok(Self { raw, name })
    }

    /// Queues the kernel on `inputs` with outputs of the given shapes and
    /// dtypes (lazy).
    ///
    /// # Safety
    /// The kernel's body, run with this launch, must read only inside its
    /// inputs (as shaped and strided when they reach it) and write only
    /// inside its outputs: nothing checks it on the device.
    pub unsafe fn apply(
        &self,
        inputs: &[&Array],
        outputs: &[(&[i32], Dtype)],
        launch: &Launch,
        templates: &[Template],
    ) -> Result<Vec<Array>> {
        let config = Config::new();
        let names = templates
            .iter()
            .map(|t| match t {
                Template::Dtype(n, _) | Template::Int(n, _) => c(n),
            })
            .collect::<Result<Vec<_>>>()?;
        let (grid, block) = (launch.grid, launch.block);
        // SAFETY: `config` is live; shapes and names outlive each call.
        let mut status = unsafe {
            mlx_sys::mlx_fast_cuda_kernel_config_set_grid(config.0, grid.0, grid.1, grid.2)
                | mlx_sys::mlx_fast_cuda_kernel_config_set_thread_group(
                    config.0, block.0, block.1, block.2,
                )
        };
        for (shape, dtype) in outputs {
            // SAFETY: as above.
            status |= unsafe {
                mlx_sys::mlx_fast_cuda_kernel_config_add_output_arg(
                    config.0,
                    shape.as_ptr(),
                    shape.len(),
                    (*dtype).into(),
                )
            };
        }
        for (template, name) in templates.iter().zip(&names) {
            // SAFETY: as above.
            status |= unsafe {
                match template {
                    Template::Dtype(_, dtype) => {
                        mlx_sys::mlx_fast_cuda_kernel_config_add_template_arg_dtype(
                            config.0,
                            name.as_ptr(),
                            (*dtype).into(),
                        )
                    }
                    Template::Int(_, value) => {
                        mlx_sys::mlx_fast_cuda_kernel_config_add_template_arg_int(
                            config.0,
                            name.as_ptr(),
                            *value,
                        )
                    }
                }
            };
        }
        if status != 0 {
            return Err(Error::Mlx(format!(
                "could not configure the {} kernel",
                self.name
            )));
        }
        let raw_inputs: Vec<mlx_sys::mlx_array> = inputs.iter().map(|a| a.as_ptr()).collect();
        let stream = Stream::thread_local_or_default();
        // SAFETY: the arrays outlive the call (mlx-c takes its own
        // references); each returned array is a new reference we own; the
        // kernel's accesses are the caller's contract.
        unsafe {
            let input_vector =
                mlx_sys::mlx_vector_array_new_data(raw_inputs.as_ptr(), raw_inputs.len());
            let mut results = mlx_sys::mlx_vector_array_new();
            let status = mlx_sys::mlx_fast_cuda_kernel_apply(
                &mut results,
                self.raw,
                input_vector,
                config.0,
                stream.as_ptr(),
            );
            mlx_sys::mlx_vector_array_free(input_vector);
            if status != 0 {
                mlx_sys::mlx_vector_array_free(results);
                return Err(Error::Mlx(format!(
                    "the {} kernel could not be queued",
                    self.name
                )));
            }
            let mut arrays = Vec::new();
            for i in 0..mlx_sys::mlx_vector_array_size(results) {
                let mut array = mlx_sys::mlx_array_new();
                if mlx_sys::mlx_vector_array_get(&mut array, results, i) != 0 {
                    mlx_sys::mlx_array_free(array);
                    mlx_sys::mlx_vector_array_free(results);
                    return Err(Error::Mlx(format!("reading the {} output", self.name)));
                }
                arrays.push(Array::from_ptr(array));
            }
            mlx_sys::mlx_vector_array_free(results);
            if arrays.len() != outputs.len() {
                return Err(Error::Mlx(format!(
                    "the {} kernel gave {} outputs, not {}",
                    self.name,
                    arrays.len(),
                    outputs.len()
                )));
            }
            Ok(arrays)
        }
    }
}

impl Drop for CudaKernel {
    fn drop(&mut self) {
        // SAFETY: created by mlx_fast_cuda_kernel_new, freed once.
        unsafe { mlx_sys::mlx_fast_cuda_kernel_free(self.raw) };
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
            // SAFETY: `vector` is live, `item` NUL-terminated.
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
