//! Named tensors of a checkpoint, handed out to layers by name.
//!
//! Layers `take` what they need; whatever is left at the end is reported as
//! unexpected, so a checkpoint that does not match the architecture fails
//! loudly (missing, mis-shaped and extra tensors are all `ERR_MODEL_FORMAT`,
//! naming the tensor).

use std::collections::HashMap;

use mlx_rs::Array;

use crate::{
    loading::{QuantSpec, Quantization},
    Error, Result,
};

pub struct WeightTree {
    tensors: HashMap<String, Array>,
    quantization: Quantization,
    quantize_on_load: Option<QuantSpec>,
}

impl WeightTree {
    /// `quantization` describes how the checkpoint is stored; `quantize_on_load`
    /// asks dense linear/embedding weights to be quantized as they are taken.
    pub fn new(
        tensors: HashMap<String, Array>,
        quantization: Quantization,
        quantize_on_load: Option<QuantSpec>,
    ) -> Self {
        Self {
            tensors,
            quantization,
            quantize_on_load,
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn quantization(&self) -> &Quantization {
        &self.quantization
    }

    pub fn quantize_on_load(&self) -> Option<QuantSpec> {
        self.quantize_on_load
    }

    /// Removes and returns `name`, or a "missing tensor" error.
    pub fn take(&mut self, name: &str) -> Result<Array> {
        self.tensors
            .remove(name)
            .ok_or_else(|| Error::format(format!("missing tensor {name}")))
    }

    /// Like [`take`](Self::take) but also checks the shape.
    pub fn take_shaped(&mut self, name: &str, shape: &[i32]) -> Result<Array> {
        let array = self.take(name)?;
        check_shape(name, &array, shape)?;
        Ok(array)
    }

    /// A floating-point tensor of the given shape (dense weights, norms, biases).
    pub fn take_float(&mut self, name: &str, shape: &[i32]) -> Result<Array> {
        let array = self.take_shaped(name, shape)?;
        if !array.dtype().is_float() {
            return Err(Error::format(format!(
                "tensor {name} is {:?}, expected a floating-point tensor (a quantized layer without .scales?)",
                array.dtype()
            )));
        }
        Ok(array)
    }

    pub fn take_opt(&mut self, name: &str) -> Option<Array> {
        self.tensors.remove(name)
    }

    /// Drops tensors the checkpoint may carry but no model uses (e.g. the
    /// precomputed `rotary_emb.inv_freq` of older Llama exports).
    pub fn discard_where(&mut self, mut unused: impl FnMut(&str) -> bool) {
        self.tensors.retain(|name, _| !unused(name));
    }

    /// Renames every tensor under `from` to sit under `to` instead (a model
    /// nested in a larger checkpoint, e.g. Gemma 3's language model beside
    /// its vision tower), and the per-layer quantization settings with them.
    pub fn rename_prefix(&mut self, from: &str, to: &str) {
        let layers: Vec<String> = self
            .quantization
            .per_layer
            .keys()
            .filter(|n| n.starts_with(from))
            .cloned()
            .collect();
        for layer in layers {
            if let Some(spec) = self.quantization.per_layer.remove(&layer) {
                self.quantization
                    .per_layer
                    .insert(format!("{to}{}", &layer[from.len()..]), spec);
            }
        }
        let names: Vec<String> = self
            .tensors
            .keys()
            .filter(|n| n.starts_with(from))
            .cloned()
            .collect();
        for name in names {
            if let Some(array) = self.tensors.remove(&name) {
                self.tensors
                    .insert(format!("{to}{}", &name[from.len()..]), array);
            }
        }
    }

    /// Errors when tensors were left over: the checkpoint has weights this
    /// architecture does not know.
    pub fn finish(self) -> Result<()> {
        if self.tensors.is_empty() {
            return Ok(());
        }
        let mut names: Vec<&String> = self.tensors.keys().collect();
        names.sort();
        let shown: Vec<&str> = names.iter().take(8).map(|s| s.as_str()).collect();
        Err(Error::format(format!(
            "{} unexpected tensor(s) in the checkpoint: {}{}",
            names.len(),
            shown.join(", "),
            if names.len() > 8 { ", ..." } else { "" }
        )))
    }
}

pub fn check_shape(name: &str, array: &Array, shape: &[i32]) -> Result<()> {
    if array.shape() != shape {
        return Err(Error::format(format!(
            "tensor {name} has shape {:?}, expected {shape:?}",
            array.shape()
        )));
    }
    Ok(())
}
