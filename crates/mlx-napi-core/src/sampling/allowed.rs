//! The allowed-token set of a constrained step, applied on the device.
//!
//! The host (llguidance, `llm/constraint.rs`) decides which ids may come
//! next as a bit set: `ceil(V / 32)` words, bit `id % 32` of word `id / 32`.
//! Only those words travel to the device; there the logits of the ids whose
//! bit is clear become −∞, so no processor, filter or draw can pick them.
//!
//! On the CUDA backend that is one kernel of ours (`allowed.cu`: read the
//! bit, write the float32 logit or −∞) instead of the seven kernels of the
//! expansion below (gather, divide, remainder, compare, select, cast, add):
//! on the 0.5B shape, where a step is bound by the host's launches, it took
//! constrained decoding from 6.9 to 6.1 % slower than free decoding
//! (benchmark/RESULTS.md, 2026-12-04). Most of what remains is the upload:
//! MLX puts host-made arrays in managed memory and recycles the buffer the
//! GPU read a step before, so the host's write faults its pages back.
//! Elsewhere (Metal, CPU) the expansion runs as MLX ops.
//! `MLX_NAPI_MASK_KERNEL=0` turns the kernel off (benchmarks compare the two).

use std::{cell::RefCell, sync::OnceLock};

use mlx_rs::{ops, Array, Dtype};

use crate::{
    cuda_kernel::{self, CudaKernel, Launch, Template},
    Error, Result,
};

const BODY: &str = include_str!("allowed.cu");
/// Threads per block of the kernel.
const BLOCK: i32 = 256;
/// Vocabulary sizes whose expansion tables a thread keeps.
const CACHED_VOCABS: usize = 4;

/// The ids allowed at one step, as bit words on the device.
pub struct AllowedTokens {
    /// uint32 `[ceil(V / 32)]`.
    words: Array,
    vocab: i32,
}

impl AllowedTokens {
    /// `words`: bit `id % 32` of word `id / 32` set for each allowed id of a
    /// `vocab`-id vocabulary (bits past the vocabulary are ignored).
    pub fn from_bits(words: &[u32], vocab: usize) -> Result<Self> {
        if words.len() != vocab.div_ceil(32) || vocab == 0 || vocab > i32::MAX as usize {
            return Err(Error::Internal(format!(
                "{} mask words for a vocabulary of {vocab}",
                words.len()
            )));
        }
        Ok(Self {
            words: Array::from_slice(words, &[words.len() as i32]),
            vocab: vocab as i32,
        })
    }

    /// `logits` `[1, V]` (any float dtype) → float32 `[1, V]`: each allowed
    /// id's logit, −∞ for the others (lazy).
    pub fn apply(&self, logits: &Array) -> Result<Array> {
        if logits.shape() != [1, self.vocab] {
            return Err(Error::Internal(format!(
                "an allowed-token mask of {} ids applied to logits {:?}",
                self.vocab,
                logits.shape()
            )));
        }
        if kernel_enabled()
            && matches!(
                logits.dtype(),
                Dtype::Float16 | Dtype::Bfloat16 | Dtype::Float32
            )
        {
            self.apply_kernel(logits)
        } else {
            Ok(logits.as_dtype(Dtype::Float32)?.add(self.additive()?)?)
        }
    }

    /// The additive float32 `[1, V]` mask (0 allowed, −∞ not) as MLX ops;
    /// public so tests can hold the kernel to it.
    pub fn additive(&self) -> Result<Array> {
        EXPANDERS.with(|cache| {
            let mut cache = cache.borrow_mut();
            let at = match cache.iter().position(|(v, _)| *v == self.vocab) {
                Some(i) => i,
                None => {
                    if cache.len() == CACHED_VOCABS {
                        cache.remove(0);
                    }
                    cache.push((self.vocab, Expander::new(self.vocab)));
                    cache.len() - 1
                }
            };
            cache[at].1.expand(&self.words)
        })
    }

    /// [`Self::apply`] as one CUDA kernel.
    pub fn apply_kernel(&self, logits: &Array) -> Result<Array> {
        KERNEL.with(|kernel| {
            let mut kernel = kernel.borrow_mut();
            if kernel.is_none() {
                *kernel = Some(CudaKernel::new(
                    "allowed_tokens",
                    &["logits", "words"],
                    &["out"],
                    BODY,
                    "",
                    true,
                )?);
            }
            let kernel = kernel.as_ref().expect("just built");
            let threads = (self.vocab + BLOCK - 1) / BLOCK * BLOCK;
            // SAFETY: thread `id` < V reads `logits[id]` (row-contiguous
            // `[1, V]`, checked above) and word `id / 32` of the
            // `ceil(V / 32)` words (`from_bits`), and writes `out[id]` once.
            let mut out = unsafe {
                kernel.apply(
                    &[logits, &self.words],
                    &[(&[1, self.vocab], Dtype::Float32)],
                    &Launch {
                        grid: (threads, 1, 1),
                        block: (BLOCK, 1, 1),
                    },
                    &[
                        Template::Dtype("T", logits.dtype()),
                        Template::Int("V", self.vocab),
                    ],
                )
            }?;
            out.pop()
                .ok_or_else(|| Error::Mlx("the allowed-token kernel gave no output".into()))
        })
    }
}

/// Whether [`AllowedTokens::apply`] runs the CUDA kernel: on the CUDA
/// backend unless `MLX_NAPI_MASK_KERNEL=0`.
pub fn kernel_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| cuda_kernel::enabled("MLX_NAPI_MASK_KERNEL"))
}

thread_local! {
    /// The kernel (compiled once per dtype and vocabulary by MLX, which
    /// caches modules by source and template arguments).
    static KERNEL: RefCell<Option<CudaKernel>> = const { RefCell::new(None) };
    /// Expansion tables per vocabulary size, oldest first.
    static EXPANDERS: RefCell<Vec<(i32, Expander)>> = const { RefCell::new(Vec::new()) };
}

/// The bit expansion as MLX ops. Integer ops only (MLX's C API has bit
/// shifts, mlx-rs 0.33 does not wrap them): bit `i` of a word is
/// `(word / 2^i) mod 2`.
struct Expander {
    /// `[V]` int32: the word holding each id's bit (`id / 32`).
    word_of: Array,
    /// `[V]` uint32: `2^(id % 32)`.
    place: Array,
}

impl Expander {
    fn new(vocab: i32) -> Self {
        let word_of: Vec<i32> = (0..vocab).map(|id| id / 32).collect();
        let place: Vec<u32> = (0..vocab as u32).map(|id| 1 << (id % 32)).collect();
        Self {
            word_of: Array::from_slice(&word_of, &[vocab]),
            place: Array::from_slice(&place, &[vocab]),
        }
    }

    /// `words` → float32 `[1, V]`: 0 where the id's bit is set, −∞ elsewhere.
    fn expand(&self, words: &Array) -> Result<Array> {
        let bits = words.take_axis(&self.word_of, 0)?;
        let set = ops::remainder(
            ops::floor_divide(&bits, &self.place)?,
            Array::from_slice(&[2u32], &[1]),
        )?
        .gt(Array::from_slice(&[0u32], &[1]))?;
        let mask = ops::select(
            &set,
            Array::from_f32(0.0),
            Array::from_f32(f32::NEG_INFINITY),
        )?;
        Ok(mask.reshape(&[1, -1])?)
    }
}

#[cfg(test)]
mod tests {
    use super::{kernel_enabled, AllowedTokens};
    use mlx_rs::{ops::indexing::IndexOp, Array, Dtype};

    /// 70 ids: two whole words and 6 bits of a third; a pseudo-random set
    /// with both ends and every bit position of a word represented, and a
    /// bit past the vocabulary (ignored).
    fn example() -> (Vec<bool>, Vec<u32>) {
        let allowed: Vec<bool> = (0..70)
            .map(|id| (id * 7 + id / 5) % 3 == 0 || id == 69)
            .collect();
        let mut words = vec![0u32; 3];
        for (id, &ok) in allowed.iter().enumerate() {
            if ok {
                words[id / 32] |= 1 << (id % 32);
            }
        }
        words[2] |= 1 << 31;
        assert!(allowed.iter().any(|&a| !a) && allowed.iter().filter(|&&a| a).count() > 10);
        (allowed, words)
    }

    #[test]
    fn the_device_mask_has_exactly_the_set_bits() {
        let (allowed, words) = example();
        let vocab = allowed.len();
        let tokens = AllowedTokens::from_bits(&words, vocab).unwrap();
        let mask = tokens.additive().unwrap();
        assert_eq!(mask.shape(), &[1, vocab as i32]);
        let got: Vec<f32> = mask.as_slice::<f32>().to_vec();
        let logits: Vec<f32> = (0..vocab).map(|i| i as f32 * 0.25 - 3.0).collect();
        let applied = tokens
            .apply(&Array::from_slice(&logits, &[1, vocab as i32]))
            .unwrap();
        let applied: Vec<f32> = applied.as_slice::<f32>().to_vec();
        for (id, &ok) in allowed.iter().enumerate() {
            let want = if ok { 0.0 } else { f32::NEG_INFINITY };
            assert_eq!(got[id], want, "id {id}");
            let want = if ok { logits[id] } else { f32::NEG_INFINITY };
            assert_eq!(applied[id], want, "id {id}");
        }
        assert!(AllowedTokens::from_bits(&words[..2], vocab).is_err());
        assert!(tokens
            .apply(&Array::from_slice(&logits[..64], &[1, 64]))
            .is_err());
    }

    #[test]
    fn the_cuda_kernel_masks_what_the_ops_mask() {
        if !kernel_enabled() {
            eprintln!("skipped: the allowed-token kernel runs on the CUDA backend only");
            return;
        }
        let (allowed, words) = example();
        let vocab = allowed.len() as i32;
        let tokens = AllowedTokens::from_bits(&words, allowed.len()).unwrap();
        // A row of a wider batch (an offset, row-contiguous view), in each dtype.
        let wide = mlx_rs::random::normal::<f32>(&[3, vocab], None, None, None).unwrap();
        for dtype in [Dtype::Float32, Dtype::Float16, Dtype::Bfloat16] {
            let row = wide.as_dtype(dtype).unwrap().index((1..2, ..));
            let want = row
                .as_dtype(Dtype::Float32)
                .unwrap()
                .add(tokens.additive().unwrap())
                .unwrap();
            let got = tokens.apply_kernel(&row).unwrap();
            assert_eq!(got.dtype(), Dtype::Float32);
            assert_eq!(got.as_slice::<f32>(), want.as_slice::<f32>(), "{dtype:?}");
        }
    }
}
