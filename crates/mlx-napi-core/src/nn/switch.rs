//! Mixture-of-experts feed-forward: each token runs through its top-k
//! experts' SwiGLU MLPs, all experts' weights stacked `[E, out, in]` and
//! multiplied with MLX's gather matmuls (`gather_mm`, or `gather_qmm` for
//! quantized experts), so one kernel per projection serves every token and
//! expert — no per-expert loop on the host.
//!
//! Checkpoint layouts: Hugging Face's one tensor per expert
//! (`<prefix>.experts.<e>.{gate,up,down}_proj.weight`, stacked at load) or
//! mlx-lm's stacked `<prefix>.switch_mlp.{gate,up,down}_proj.*` (dense, or
//! packed with `.scales` / `.biases` `[E, out, in / group_size]`).

use mlx_rs::{
    ops::{self, indexing::TryIndexOp},
    Array, Dtype,
};

use super::{fused, WeightTree};
use crate::{loading::QuantSpec, Error, Result};

#[derive(Clone)]
enum Experts {
    /// `[E, out, in]`.
    Dense(Array),
    Quantized {
        weight: Array,
        scales: Array,
        biases: Array,
        spec: QuantSpec,
    },
}

/// One projection of every expert.
#[derive(Clone)]
pub struct SwitchLinear {
    experts: Experts,
}

impl SwitchLinear {
    /// `mlx_name` (stacked) if present, else `hf_name(e)` for each expert.
    fn load(
        tree: &mut WeightTree,
        stacked: &str,
        per_expert: impl Fn(i32) -> String,
        experts: i32,
        input: i32,
        output: i32,
    ) -> Result<Self> {
        let experts = if tree.contains(&format!("{stacked}.scales")) {
            let spec = tree.quantization().spec_for(stacked)?;
            if input % spec.group_size != 0 {
                return Err(Error::format(format!(
                    "{stacked}: {input} columns are not a multiple of the group size {}",
                    spec.group_size
                )));
            }
            let weight = tree.take_shaped(
                &format!("{stacked}.weight"),
                &[experts, output, input * spec.bits / 32],
            )?;
            if weight.dtype() != Dtype::Uint32 {
                return Err(Error::format(format!(
                    "tensor {stacked}.weight is {:?}; a quantized weight must be packed uint32",
                    weight.dtype()
                )));
            }
            let groups = [experts, output, input / spec.group_size];
            Experts::Quantized {
                weight,
                scales: tree.take_shaped(&format!("{stacked}.scales"), &groups)?,
                biases: tree.take_shaped(&format!("{stacked}.biases"), &groups)?,
                spec,
            }
        } else {
            let dense = if tree.contains(&format!("{stacked}.weight")) {
                tree.take_float(&format!("{stacked}.weight"), &[experts, output, input])?
            } else {
                let each = (0..experts)
                    .map(|e| {
                        tree.take_float(&format!("{}.weight", per_expert(e)), &[output, input])
                    })
                    .collect::<Result<Vec<_>>>()?;
                ops::stack(&each, 0)?
            };
            match tree.quantize_on_load() {
                Some(spec) if input % spec.group_size == 0 => {
                    let (weight, scales, biases) =
                        ops::quantize(&dense, spec.group_size, spec.bits)?;
                    mlx_rs::transforms::eval([&weight, &scales, &biases])?;
                    Experts::Quantized {
                        weight,
                        scales,
                        biases,
                        spec,
                    }
                }
                _ => Experts::Dense(dense),
            }
        };
        Ok(Self { experts })
    }

    /// `x [..., 1, in]` through expert `indices [...]` → `[..., 1, out]`.
    fn forward(&self, x: &Array, indices: &Array, sorted: bool) -> Result<Array> {
        match &self.experts {
            // A transposed view: the kernel reads `[E, out, in]` as `[E, in, out]`.
            Experts::Dense(w) => Ok(ops::gather_mm(
                x,
                w.swap_axes(-1, -2)?,
                None,
                indices,
                sorted,
            )?),
            Experts::Quantized {
                weight,
                scales,
                biases,
                spec,
            } => Ok(ops::gather_qmm(
                x,
                weight,
                scales,
                biases,
                None,
                indices,
                true,
                spec.group_size,
                spec.bits,
                sorted,
            )?),
        }
    }
}

/// The experts' gated MLPs: `down_e(silu(gate_e(x)) · up_e(x))`.
#[derive(Clone)]
pub struct SwitchGlu {
    gate: SwitchLinear,
    up: SwitchLinear,
    down: SwitchLinear,
}

impl SwitchGlu {
    /// Loads `experts` experts of `dim → hidden → dim` under `prefix`
    /// (the MoE block, e.g. `model.layers.0.mlp`).
    pub fn load(
        tree: &mut WeightTree,
        prefix: &str,
        experts: i32,
        dim: i32,
        hidden: i32,
    ) -> Result<Self> {
        let load = |tree: &mut WeightTree, name: &str, input: i32, output: i32| {
            SwitchLinear::load(
                tree,
                &format!("{prefix}.switch_mlp.{name}"),
                |e| format!("{prefix}.experts.{e}.{name}"),
                experts,
                input,
                output,
            )
        };
        Ok(Self {
            gate: load(tree, "gate_proj", dim, hidden)?,
            up: load(tree, "up_proj", dim, hidden)?,
            down: load(tree, "down_proj", hidden, dim)?,
        })
    }

    /// `x [B, L, D]`, `indices [B, L, k]` (int) → each token through each
    /// of its k experts, `[B, L, k, D]`.
    pub fn forward(&self, x: &Array, indices: &Array) -> Result<Array> {
        let (b, l, d) = (x.dim(0), x.dim(1), x.dim(2));
        let k = indices.dim(2);
        // Many (token, expert) pairs: group them by expert so that each
        // expert's weights are read once (the kernel's sorted path).
        if indices.size() >= 64 {
            let flat = indices.reshape(&[-1])?;
            let order = ops::argsort_axis(&flat, 0)?;
            let inverse = ops::argsort_axis(&order, 0)?;
            let rows = order.floor_divide(Array::from_int(k))?;
            let xs = x.reshape(&[b * l, 1, d])?.take_axis(&rows, 0)?;
            let idx = flat.take_axis(&order, 0)?;
            let y = self.run(&xs, &idx, true)?; // [N·k, 1, D]
            return Ok(y.take_axis(&inverse, 0)?.reshape(&[b, l, k, d])?);
        }
        // Few pairs (decoding): x [B, L, 1, 1, D] broadcast against the k experts.
        let xs = x.reshape(&[b, l, 1, 1, d])?;
        let y = self.run(&xs, indices, false)?; // [B, L, k, 1, D]
        Ok(y.squeeze_axes(&[-2])?)
    }

    fn run(&self, x: &Array, indices: &Array, sorted: bool) -> Result<Array> {
        let gate = self.gate.forward(x, indices, sorted)?;
        let up = self.up.forward(x, indices, sorted)?;
        self.down
            .forward(&fused::swiglu(&gate, &up)?, indices, sorted)
    }
}

/// Top-k routing: softmax over the router's logits `[B, L, E]` (in float32,
/// as HF does), the k largest → `(indices [B, L, k], weights [B, L, k])`,
/// the weights renormalized to sum to 1 when `normalize`.
pub fn top_k_routing(logits: &Array, k: i32, normalize: bool) -> Result<(Array, Array)> {
    let probs = ops::softmax_axis(logits.as_dtype(Dtype::Float32)?, -1, true)?;
    let e = probs.dim(-1);
    // argpartition puts the k largest (of −p: smallest) first, unordered.
    let indices = ops::argpartition_axis(probs.negative()?, k - 1, -1)?;
    let indices = indices.try_index((.., .., 0..k))?;
    let mut weights = probs.take_along_axis(&indices, -1)?;
    if normalize {
        weights = weights.divide(weights.sum_axis(-1, true)?)?;
    }
    debug_assert!(k <= e);
    Ok((indices, weights.as_dtype(logits.dtype())?))
}
