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

use std::{cell::RefCell, sync::OnceLock};

use mlx_rs::{Array, Dtype};

use crate::{
    cuda_kernel::{self, CudaKernel, Launch, Template},
    Error, Result,
};

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
    *ENABLED.get_or_init(|| cuda_kernel::enabled("MLX_NAPI_PADDED_ATTENTION"))
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
                kernels.push((scale.to_bits(), new_kernel(scale)?));
                &kernels.last().unwrap().1
            }
        };
        // SAFETY: the kernel reads keys from `padding[b]` to the key length
        // and features below D, with the strides MLX passes, and writes each
        // element of its `[B, H, 1, D]` output once.
        let mut out = unsafe {
            kernel.apply(
                &[q, k, v, padding],
                &[(&[batch, heads, 1, d], q.dtype())],
                &Launch {
                    grid: (heads * 32 * WARPS, batch, 1),
                    block: (32 * WARPS, 1, 1),
                },
                &[
                    Template::Dtype("T", q.dtype()),
                    Template::Int("D", d),
                    Template::Int("WARPS", WARPS),
                ],
            )
        }?;
        out.pop()
            .ok_or_else(|| Error::Mlx("the padded attention kernel gave no output".into()))
    })
}

thread_local! {
    /// One kernel per softmax scale (a constant of its source); MLX caches
    /// the compiled module by source, on disk as well.
    static KERNELS: RefCell<Vec<(u32, CudaKernel)>> = const { RefCell::new(Vec::new()) };
}

fn new_kernel(scale: f32) -> Result<CudaKernel> {
    // `{:e}` prints the shortest text that reads back as the same f32.
    let header = format!(
        "constexpr float SCALE_LOG2 = {:e}f;\n",
        scale * std::f32::consts::LOG2_E
    );
    CudaKernel::new(
        "padded_decode_attention",
        &["q", "k", "v", "padding"],
        &["out"],
        BODY,
        &header,
        false,
    )
}
