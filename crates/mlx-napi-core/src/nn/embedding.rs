//! Token embedding, dense or quantized; `as_linear` reuses it as a tied LM head.

use mlx_rs::{ops, Array};

use super::{linear::QuantizedWeight, WeightTree};
use crate::Result;

#[derive(Clone)]
enum Table {
    Dense(Array),
    Quantized(QuantizedWeight),
}

/// Lookup table `[vocab, dim]`.
#[derive(Clone)]
pub struct Embedding {
    table: Table,
}

impl Embedding {
    pub fn load(tree: &mut WeightTree, prefix: &str, vocab: i32, dim: i32) -> Result<Self> {
        let table = if tree.contains(&format!("{prefix}.scales")) {
            Table::Quantized(QuantizedWeight::take(tree, prefix, vocab, dim)?)
        } else {
            let dense = tree.take_float(&format!("{prefix}.weight"), &[vocab, dim])?;
            match tree.quantize_on_load() {
                Some(spec) if dim % spec.group_size == 0 => {
                    Table::Quantized(QuantizedWeight::quantize(&dense, spec)?)
                }
                _ => Table::Dense(dense),
            }
        };
        Ok(Self { table })
    }

    /// Rows for integer `ids` of any shape → `[...ids.shape, dim]`.
    pub fn forward(&self, ids: &Array) -> Result<Array> {
        match &self.table {
            Table::Dense(w) => Ok(w.take_axis(ids, 0)?),
            Table::Quantized(q) => {
                // Gather the packed rows and their scales first, then dequantize
                // only those rows.
                let rows = q.weight.take_axis(ids, 0)?;
                let scales = q.scales.take_axis(ids, 0)?;
                let biases = q.biases.take_axis(ids, 0)?;
                Ok(ops::dequantize(
                    &rows,
                    &scales,
                    &biases,
                    q.spec.group_size,
                    q.spec.bits,
                )?)
            }
        }
    }

    /// `x @ tableᵀ`: logits over the vocabulary for tied-embedding models.
    pub fn as_linear(&self, x: &Array) -> Result<Array> {
        match &self.table {
            Table::Dense(w) => Ok(x.matmul(w.t())?),
            Table::Quantized(q) => q.matmul_t(x),
        }
    }
}
