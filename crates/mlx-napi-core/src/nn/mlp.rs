//! The gated feed-forward block of Llama-family models: `down(silu(gate(x)) * up(x))`.
//!
//! `silu(g) * u` is one compiled (fused) element-wise kernel instead of three:
//! decoding small models is bound by kernel launches, not bandwidth. MLX
//! compiles GPU kernels itself; on the CPU it needs a system C++ compiler and
//! quietly runs the ops unfused when there is none (`MLX_DISABLE_COMPILE=1`
//! forces that everywhere).

use mlx_rs::{error::Exception, ops, transforms::compile::compile, Array};

use super::{Linear, WeightTree};
use crate::Result;

#[derive(Clone)]
pub struct SwiGluMlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl SwiGluMlp {
    /// Loads `<prefix>.{gate,up,down}_proj`.
    pub fn load(
        tree: &mut WeightTree,
        prefix: &str,
        dim: i32,
        hidden: i32,
        bias: bool,
    ) -> Result<Self> {
        Ok(Self {
            gate: Linear::load(tree, &format!("{prefix}.gate_proj"), dim, hidden, bias)?,
            up: Linear::load(tree, &format!("{prefix}.up_proj"), dim, hidden, bias)?,
            down: Linear::load(tree, &format!("{prefix}.down_proj"), hidden, dim, bias)?,
        })
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        let gated = swiglu(&self.gate.forward(x)?, &self.up.forward(x)?)?;
        self.down.forward(&gated)
    }
}

/// `silu(gate) * up`, compiled once per process (shapeless: any batch/length).
fn swiglu(gate: &Array, up: &Array) -> Result<Array> {
    let f = |(g, u): (&Array, &Array)| -> std::result::Result<Array, Exception> {
        g.multiply(ops::sigmoid(g)?)?.multiply(u)
    };
    Ok(compile(f, true)((gate, up))?)
}
