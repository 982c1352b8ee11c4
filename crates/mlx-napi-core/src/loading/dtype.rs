//! Choosing the floating dtype a model computes in and casting weights to it.
//!
//! On the MLX CPU backend float16/bfloat16 matmuls are emulated and tens of
//! times slower than float32, so `Auto` means float32 there; on a GPU `Auto`
//! keeps the checkpoint's own float dtype (what mlx-lm does).

use std::collections::HashMap;

use mlx_rs::{Array, Dtype};

use crate::{backend, Error, Result};

/// The caller's dtype request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DtypeChoice {
    #[default]
    Auto,
    Float32,
    Float16,
    Bfloat16,
}

impl DtypeChoice {
    /// Parses "auto", "float32"/"f32", "float16"/"f16", "bfloat16"/"bf16".
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "auto" => Self::Auto,
            "float32" | "f32" => Self::Float32,
            "float16" | "f16" => Self::Float16,
            "bfloat16" | "bf16" => Self::Bfloat16,
            other => {
                return Err(Error::invalid(format!(
                    "dtype must be auto, float32, float16 or bfloat16, got {other:?}"
                )))
            }
        })
    }
}

/// The dtype to compute in: explicit choices win; `Auto` is float32 on the CPU
/// device and otherwise the dtype of the checkpoint's floating tensors.
pub fn resolve_dtype(choice: DtypeChoice, weights: &HashMap<String, Array>) -> Result<Dtype> {
    Ok(match choice {
        DtypeChoice::Float32 => Dtype::Float32,
        DtypeChoice::Float16 => Dtype::Float16,
        DtypeChoice::Bfloat16 => Dtype::Bfloat16,
        DtypeChoice::Auto => {
            if backend::backend_info()?.device == "cpu" {
                Dtype::Float32
            } else {
                weights
                    .values()
                    .map(Array::dtype)
                    .find(|d| d.is_float())
                    .unwrap_or(Dtype::Float32)
            }
        }
    })
}

/// Casts every floating tensor (weights, norms, quantization scales/biases) to
/// `dtype`; packed integer tensors are left alone. Lazy: nothing is read yet.
pub fn cast_weights(weights: &mut HashMap<String, Array>, dtype: Dtype) -> Result<()> {
    for array in weights.values_mut() {
        if array.dtype().is_float() && array.dtype() != dtype {
            *array = array.as_dtype(dtype)?;
        }
    }
    Ok(())
}
