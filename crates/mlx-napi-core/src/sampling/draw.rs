//! The draw of a sampled token: temperature → top-k → top-p → min-p →
//! categorical, eager or as one compiled MLX function.
//!
//! Why compiled: the chain is a dozen small kernels per step (a partition or a
//! sort, softmax, cumsum, selects, the Gumbel draw); on CUDA MLX's `compile`
//! fuses the element-wise ones and cuts their launches — 16–51 % faster per
//! stage on an H200 (`examples/sampler_compile_bench.rs`, benchmark/RESULTS.md
//! 2026-11-25). mlx-lm compiles its samplers the same way (`mx.compile` with
//! the parameters closed over).
//!
//! Compiled once per parameter set and input shape: temperature, k and p are
//! constants of the traced graph, MLX traces again only for a new shape (a
//! batch of another size) and reuses the trace after that. The compiled
//! functions live in a per-thread cache (a model's thread) of
//! [`CACHED_CHAINS`] parameter sets, so a chat app that samples with the same
//! settings every turn traces once, and a server whose clients vary them
//! cannot grow it without bound.
//!
//! Default: compiled on a GPU, eager on the CPU, where the compiled chain
//! measured slower (sampling/mod.rs). `MLX_NAPI_COMPILE_SAMPLER=0|1` forces
//! either (benchmarks compare the two); `Sampler::with_compiled_draw` does it
//! for one sampler (tests: on the CPU the tokens are the same either way; a
//! GPU's fused kernels may round a last bit differently, which can flip a
//! near-tie of the draw).

use std::{cell::RefCell, sync::OnceLock};

use mlx_rs::{
    error::Exception, ops, ops::indexing::TryIndexOp, random, transforms::compile::compile, Array,
    Dtype,
};

use super::{apply_min_p, apply_top_p, SamplerConfig};
use crate::Result;

type MlxResult<T> = std::result::Result<T, Exception>;
type Compiled = Box<dyn for<'a> FnMut(&'a [Array]) -> MlxResult<Vec<Array>>>;

/// Parameter sets whose compiled chain a thread keeps.
pub const CACHED_CHAINS: usize = 16;

thread_local! {
    /// Compiled chains of this thread, oldest first.
    static COMPILED: RefCell<Vec<(Params, Compiled)>> = const { RefCell::new(Vec::new()) };
}

/// What the chain computes: constants of its graph.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Params {
    inv_temperature: f32,
    /// Only when k < vocabulary (else it keeps everything).
    top_k: Option<i32>,
    /// Only when < 1.
    top_p: Option<f32>,
    /// Only when > 0.
    min_p: Option<f32>,
}

/// One sampler's draw (temperature > 0).
pub(crate) struct DrawChain {
    params: Params,
    compiled: bool,
}

impl DrawChain {
    /// The chain of `config`, `None` at temperature 0 (the draw is an argmax).
    /// `compiled`: `None` for the device's default.
    pub fn new(config: &SamplerConfig, vocab: i32, compiled: Option<bool>) -> Option<Self> {
        if config.temperature == 0.0 {
            return None;
        }
        let params = Params {
            inv_temperature: 1.0 / config.temperature,
            top_k: config
                .top_k
                .map(|k| k.min(i32::MAX as u32) as i32)
                .filter(|&k| k < vocab),
            top_p: config.top_p.filter(|&p| p < 1.0),
            min_p: config.min_p.filter(|&p| p > 0.0),
        };
        Some(Self {
            params,
            compiled: compiled.unwrap_or_else(compile_by_default),
        })
    }

    pub fn is_compiled(&self) -> bool {
        self.compiled
    }

    /// Draws one token per row of float32 logits `x` `[B, V]` with `key`
    /// → int32 `[B]`.
    pub fn draw(&mut self, x: &Array, key: &Array) -> Result<Array> {
        if !self.compiled {
            return eager(self.params, x, key);
        }
        let params = self.params;
        let mut out = COMPILED.with(|cache| -> MlxResult<Vec<Array>> {
            let mut cache = cache.borrow_mut();
            let at = match cache.iter().position(|(p, _)| *p == params) {
                Some(at) => at,
                None => {
                    if cache.len() == CACHED_CHAINS {
                        drop(cache.remove(0));
                    }
                    let chain = move |args: &[Array]| -> MlxResult<Vec<Array>> {
                        eager(params, &args[0], &args[1])
                            .map(|token| vec![token])
                            .map_err(|e| Exception::custom(e.to_string()))
                    };
                    cache.push((params, Box::new(compile(chain, false))));
                    cache.len() - 1
                }
            };
            (cache[at].1)(&[x.clone(), key.clone()])
        })?;
        Ok(out.remove(0))
    }
}

/// The chain as plain MLX ops (also what the compiled function traces).
fn eager(p: Params, x: &Array, key: &Array) -> Result<Array> {
    let x = x.multiply(Array::from_f32(p.inv_temperature))?;
    let truncate = |mut x: Array| -> Result<Array> {
        if let Some(top_p) = p.top_p {
            x = apply_top_p(&x, top_p)?;
        }
        if let Some(min_p) = p.min_p {
            x = apply_min_p(&x, min_p)?;
        }
        Ok(x)
    };
    match p.top_k {
        // With top-k, the other filters and the draw only ever see the k
        // best tokens, so we gather those first and work on k values: a
        // whole-vocabulary sort for top-p (and V random draws) cost more
        // than everything else in a decode step's sampler on a GPU (an
        // H200 spent 0.76 ms per step on the whole-vocabulary chain at 128k
        // ids; examples/sampler_compile_bench.rs, benchmark/RESULTS.md).
        Some(k) => {
            let candidates =
                ops::argpartition_axis(x.negative()?, k - 1, -1)?.try_index((.., ..k))?;
            let best = x.take_along_axis(&candidates, -1)?;
            let position = random::categorical(&truncate(best)?, -1, None, key)?;
            let token = candidates.take_along_axis(&position.expand_dims(-1)?, -1)?;
            Ok(token.squeeze_axes(&[-1])?.as_dtype(Dtype::Int32)?)
        }
        None => Ok(random::categorical(&truncate(x)?, -1, None, key)?.as_dtype(Dtype::Int32)?),
    }
}

/// Compiled on a GPU, eager on the CPU, unless `MLX_NAPI_COMPILE_SAMPLER`
/// says `1` or `0`.
fn compile_by_default() -> bool {
    static DEFAULT: OnceLock<bool> = OnceLock::new();
    *DEFAULT.get_or_init(
        || match std::env::var("MLX_NAPI_COMPILE_SAMPLER").as_deref() {
            Ok("1") => true,
            Ok("0") => false,
            _ => crate::backend::default_device_is_gpu(),
        },
    )
}
