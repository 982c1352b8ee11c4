//! Element-wise chains fused into one kernel by MLX's `compile`, each compiled
//! once per thread and reused.
//!
//! Why not `mlx_rs::nn::gelu` and friends: mlx-rs 0.33 builds a new compiled
//! function (a fresh id in MLX's compile cache) on every call, so every call
//! re-traces and re-fuses its graph on the host (~20 % of a 0.5B model's decode
//! speed on an H200, measured with our SwiGLU written the same way). Its GELU
//! also multiplies by float32 scalars, which promotes float16/bfloat16
//! activations to float32 (MLX has no weakly typed scalars in C): every layer
//! after the first GELU then ran in float32 — our large-v3-turbo encoder took
//! 2.2× mlx-whisper's time. Constants here take the input's dtype.
//!
//! MLX compiles GPU kernels itself; on the CPU it needs a system C++ compiler
//! and runs the ops unfused when there is none (`MLX_DISABLE_COMPILE=1` forces
//! that everywhere).

use std::{cell::RefCell, f32::consts::SQRT_2, thread::LocalKey};

use mlx_rs::{error::Exception, ops, transforms::compile::compile, Array};

use crate::Result;

type MlxResult<T> = std::result::Result<T, Exception>;
type Unary = Box<dyn for<'a> FnMut(&'a Array) -> MlxResult<Array>>;
type Binary = Box<dyn for<'a> FnMut((&'a Array, &'a Array)) -> MlxResult<Array>>;

thread_local! {
    static GELU: RefCell<Option<Unary>> = const { RefCell::new(None) };
    static SWIGLU: RefCell<Option<Binary>> = const { RefCell::new(None) };
    static GEGLU_TANH: RefCell<Option<Binary>> = const { RefCell::new(None) };
}

/// Calls this thread's compiled function in `slot`, compiling it with `build`
/// on first use.
fn with_compiled<F>(
    slot: &'static LocalKey<RefCell<Option<F>>>,
    build: fn() -> F,
    call: impl FnOnce(&mut F) -> MlxResult<Array>,
) -> Result<Array> {
    slot.with(|slot| Ok(call(slot.borrow_mut().get_or_insert_with(build))?))
}

/// A scalar in `like`'s dtype, so that it does not promote `like`.
fn scalar(value: f32, like: &Array) -> MlxResult<Array> {
    Array::from_f32(value).as_dtype(like.dtype())
}

/// Exact GELU, `x · (1 + erf(x / √2)) / 2` (Whisper's activation), in `x`'s dtype.
pub fn gelu(x: &Array) -> Result<Array> {
    fn build() -> Unary {
        Box::new(compile(
            |x: &Array| -> MlxResult<Array> {
                let erf = ops::erf(x.divide(scalar(SQRT_2, x)?)?)?;
                x.multiply(erf.add(scalar(1.0, x)?)?)?
                    .divide(scalar(2.0, x)?)
            },
            true,
        ))
    }
    with_compiled(&GELU, build, |f| f(x))
}

/// `silu(gate) · up` (the gated feed-forward of Llama-family models).
pub fn swiglu(gate: &Array, up: &Array) -> Result<Array> {
    fn build() -> Binary {
        Box::new(compile(
            |(g, u): (&Array, &Array)| -> MlxResult<Array> {
                g.multiply(ops::sigmoid(g)?)?.multiply(u)
            },
            true,
        ))
    }
    with_compiled(&SWIGLU, build, |f| f((gate, up)))
}

/// `gelu_tanh(gate) · up` (Gemma's gated feed-forward), with the tanh
/// approximation `x · (1 + tanh(√(2/π) · (x + 0.044715 x³))) / 2` that
/// Gemma was trained with (HF's `gelu_pytorch_tanh`).
pub fn geglu_tanh(gate: &Array, up: &Array) -> Result<Array> {
    fn build() -> Binary {
        Box::new(compile(
            |(g, u): (&Array, &Array)| -> MlxResult<Array> {
                let cube = g.multiply(g)?.multiply(g)?;
                let inner = g
                    .add(cube.multiply(scalar(0.044715, g)?)?)?
                    .multiply(scalar((2.0 / std::f32::consts::PI).sqrt(), g)?)?;
                let gelu = g
                    .multiply(ops::tanh(&inner)?.add(scalar(1.0, g)?)?)?
                    .multiply(scalar(0.5, g)?)?;
                gelu.multiply(u)
            },
            true,
        ))
    }
    with_compiled(&GEGLU_TANH, build, |f| f((gate, up)))
}
