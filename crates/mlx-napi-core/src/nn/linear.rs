//! Linear layer, dense or affine-quantized (`quantized_matmul`).

use mlx_rs::{ops, Array, Dtype};

use super::weight_tree::WeightTree;
use crate::{loading::QuantSpec, Error, Result};

/// Packed quantized weight `[out, in * bits / 32]` (uint32) with per-group
/// `scales` and `biases` `[out, in / group_size]`.
#[derive(Clone)]
pub struct QuantizedWeight {
    pub weight: Array,
    pub scales: Array,
    pub biases: Array,
    pub spec: QuantSpec,
}

impl QuantizedWeight {
    /// Takes `<prefix>.weight/.scales/.biases`, checking them against a logical
    /// `[rows, cols]` matrix.
    pub fn take(tree: &mut WeightTree, prefix: &str, rows: i32, cols: i32) -> Result<Self> {
        let spec = tree.quantization().spec_for(prefix)?;
        let weight =
            tree.take_shaped(&format!("{prefix}.weight"), &[rows, cols * spec.bits / 32])?;
        if weight.dtype() != Dtype::Uint32 {
            return Err(Error::format(format!(
                "tensor {prefix}.weight is {:?}; a quantized weight must be packed uint32",
                weight.dtype()
            )));
        }
        if cols % spec.group_size != 0 {
            return Err(Error::format(format!(
                "{prefix}: {cols} columns are not a multiple of the group size {}",
                spec.group_size
            )));
        }
        let groups = [rows, cols / spec.group_size];
        let scales = tree.take_shaped(&format!("{prefix}.scales"), &groups)?;
        let biases = tree.take_shaped(&format!("{prefix}.biases"), &groups)?;
        Ok(Self {
            weight,
            scales,
            biases,
            spec,
        })
    }

    /// Quantizes a dense `[rows, cols]` matrix with MLX's affine quantizer.
    pub fn quantize(dense: &Array, spec: QuantSpec) -> Result<Self> {
        let (weight, scales, biases) = ops::quantize(dense, spec.group_size, spec.bits)?;
        // Materialize now so the dense original can be freed.
        mlx_rs::transforms::eval([&weight, &scales, &biases])?;
        Ok(Self {
            weight,
            scales,
            biases,
            spec,
        })
    }

    /// `x @ Wᵀ` with the packed weight.
    pub fn matmul_t(&self, x: &Array) -> Result<Array> {
        Ok(ops::quantized_matmul(
            x,
            &self.weight,
            &self.scales,
            &self.biases,
            true,
            self.spec.group_size,
            self.spec.bits,
        )?)
    }
}

#[derive(Clone)]
enum LinearWeight {
    Dense(Array),
    Quantized(QuantizedWeight),
}

/// `y = x Wᵀ + b`, with `W` of shape `[out, in]`.
#[derive(Clone)]
pub struct Linear {
    weight: LinearWeight,
    bias: Option<Array>,
}

impl Linear {
    /// Loads `<prefix>.weight` (quantized when `<prefix>.scales` exists) and,
    /// when `bias`, `<prefix>.bias`.
    pub fn load(
        tree: &mut WeightTree,
        prefix: &str,
        input: i32,
        output: i32,
        bias: bool,
    ) -> Result<Self> {
        let weight = if tree.contains(&format!("{prefix}.scales")) {
            LinearWeight::Quantized(QuantizedWeight::take(tree, prefix, output, input)?)
        } else {
            let dense = tree.take_float(&format!("{prefix}.weight"), &[output, input])?;
            match tree.quantize_on_load() {
                Some(spec) if input % spec.group_size == 0 => {
                    LinearWeight::Quantized(QuantizedWeight::quantize(&dense, spec)?)
                }
                _ => LinearWeight::Dense(dense),
            }
        };
        let bias = if bias {
            Some(tree.take_float(&format!("{prefix}.bias"), &[output])?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    pub fn is_quantized(&self) -> bool {
        matches!(self.weight, LinearWeight::Quantized(_))
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        match (&self.weight, &self.bias) {
            (LinearWeight::Dense(w), Some(b)) => Ok(ops::addmm(b, x, w.t(), None, None)?),
            (LinearWeight::Dense(w), None) => Ok(x.matmul(w.t())?),
            (LinearWeight::Quantized(q), Some(b)) => Ok(q.matmul_t(x)?.add(b)?),
            (LinearWeight::Quantized(q), None) => q.matmul_t(x),
        }
    }
}
