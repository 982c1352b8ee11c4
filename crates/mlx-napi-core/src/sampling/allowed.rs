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
//! an MLX array made on the host each step lands in managed memory the GPU
//! read a step before, and the host's write faults those pages back.
//! [`MaskWords`] can skip MLX for the words: each constrained sequence
//! writes them into its own pinned, device-mapped host words (`cuda_host.rs`)
//! and the kernel reads them in place. That path is opt-in
//! (`MLX_NAPI_MASK_KERNEL=mapped`) until a GPU run has checked and measured
//! it (`benchmark/gpu/gen.sh mask-kernel`). Elsewhere (Metal, CPU) the words
//! are an MLX array and the expansion runs as MLX ops.
//!
//! `MLX_NAPI_MASK_KERNEL`: unset or `1`, the kernel on uploaded words;
//! `mapped`, the kernel on mapped words; `0`, the MLX ops.

use std::{
    cell::RefCell,
    sync::{Arc, Mutex, OnceLock},
};

use mlx_rs::{ops, Array, Dtype};

use crate::{
    cuda_host::MappedWords,
    cuda_kernel::{self, CudaKernel, Launch, Template},
    Error, Result,
};

const BODY: &str = include_str!("allowed.cu");
/// Threads per block of the kernel.
const BLOCK: i32 = 256;
/// Vocabulary sizes whose expansion tables a thread keeps.
const CACHED_VOCABS: usize = 4;

/// The ids allowed at one step, as bit words the device can read.
pub struct AllowedTokens {
    words: Words,
    vocab: i32,
}

enum Words {
    /// uint32 `[ceil(V / 32)]` in MLX memory.
    Array(Array),
    /// Pinned host words the kernel reads in place. `address` is int64
    /// `[2]`: their device address and count, made once per buffer (so it
    /// stays where the GPU put it). While this value lives, `host` has a
    /// second owner and [`MaskWords::fill`] does not write it.
    Mapped {
        address: Array,
        host: Arc<MappedWords>,
    },
}

impl AllowedTokens {
    /// `words`: bit `id % 32` of word `id / 32` set for each allowed id of a
    /// `vocab`-id vocabulary (bits past the vocabulary are ignored). Uploads
    /// the words as an MLX array; a constrained sequence uses
    /// [`MaskWords::fill`] instead.
    pub fn from_bits(words: &[u32], vocab: usize) -> Result<Self> {
        check_words(words, vocab)?;
        Ok(Self {
            words: Words::Array(Array::from_slice(words, &[words.len() as i32])),
            vocab: vocab as i32,
        })
    }

    /// Whether the kernel will read these words in place (pinned host
    /// memory) rather than from an MLX array.
    pub fn is_mapped(&self) -> bool {
        matches!(self.words, Words::Mapped { .. })
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
        let uploaded;
        let words = match &self.words {
            Words::Array(words) => words,
            Words::Mapped { host, .. } => {
                let host = host.as_slice();
                uploaded = Array::from_slice(host, &[host.len() as i32]);
                &uploaded
            }
        };
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
            cache[at].1.expand(words)
        })
    }

    /// [`Self::apply`] as one CUDA kernel.
    pub fn apply_kernel(&self, logits: &Array) -> Result<Array> {
        // The kernel, its name and header, and what it takes as `words`.
        let (kernel, name, header, words) = match &self.words {
            Words::Array(words) => (&KERNEL, "allowed_tokens", "", words),
            Words::Mapped { address, .. } => (
                &MAPPED_KERNEL,
                "allowed_tokens_mapped",
                "#define WORDS_MAPPED 1\n",
                address,
            ),
        };
        kernel.with(|kernel| {
            let mut kernel = kernel.borrow_mut();
            if kernel.is_none() {
                *kernel = Some(CudaKernel::new(
                    name,
                    &["logits", "words"],
                    &["out"],
                    BODY,
                    header,
                    true,
                )?);
            }
            let kernel = kernel.as_ref().expect("just built");
            let threads = (self.vocab + BLOCK - 1) / BLOCK * BLOCK;
            // SAFETY: thread `id` < V reads `logits[id]` (row-contiguous
            // `[1, V]`, checked above) and word `id / 32` of the
            // `ceil(V / 32)` words (`check_words`; mapped words: the buffer
            // `words[0]` addresses holds that many, `MaskWords::fill`), and
            // writes `out[id]` once.
            let mut out = unsafe {
                kernel.apply(
                    &[logits, words],
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

fn check_words(words: &[u32], vocab: usize) -> Result<()> {
    if words.len() != vocab.div_ceil(32) || vocab == 0 || vocab > i32::MAX as usize {
        return Err(Error::Internal(format!(
            "{} mask words for a vocabulary of {vocab}",
            words.len()
        )));
    }
    Ok(())
}

/// Where one constrained sequence writes each step's allowed set.
///
/// With mapped words ([`mapped_words`]) that is a buffer of pinned,
/// device-mapped host words the kernel reads in place, taken from a
/// process-wide pool on first use and given back on drop. Buffers are never
/// freed: one whose owner went away may still be read by a kernel queued
/// before (an aborted step; its result is discarded, but a freed page would
/// be a device fault). Elsewhere each step's words are uploaded
/// ([`AllowedTokens::from_bits`]).
pub struct MaskWords {
    vocab: usize,
    slot: Option<Slot>,
}

/// A mapped buffer and the device array that addresses it.
struct Slot {
    host: Arc<MappedWords>,
    /// int64 `[2]`: `host`'s device address and word count.
    address: Array,
}

/// Buffers of dropped [`MaskWords`], for the next sequence.
static POOL: Mutex<Vec<Slot>> = Mutex::new(Vec::new());

impl MaskWords {
    pub fn new(vocab: usize) -> Self {
        Self { vocab, slot: None }
    }

    /// `words` (as for [`AllowedTokens::from_bits`]) as this step's mask.
    ///
    /// The mapped buffer is written in place, so call this only once every
    /// array made from the previous mask has been evaluated: a kernel reads
    /// the words when it runs, not when it is queued. A constraint's next
    /// mask needs the token sampled with the last one, so decoding holds to
    /// this by construction. While the previous [`AllowedTokens`] is still
    /// alive the words are uploaded instead.
    pub fn fill(&mut self, words: &[u32]) -> Result<AllowedTokens> {
        check_words(words, self.vocab)?;
        if self.slot.is_none() && mapped_enabled() {
            self.slot = take_slot(words.len());
        }
        let Some(slot) = self.slot.as_mut() else {
            return AllowedTokens::from_bits(words, self.vocab);
        };
        let Some(host) = Arc::get_mut(&mut slot.host) else {
            return AllowedTokens::from_bits(words, self.vocab);
        };
        host.write(words);
        Ok(AllowedTokens {
            words: Words::Mapped {
                address: slot.address.clone(),
                host: Arc::clone(&slot.host),
            },
            vocab: self.vocab as i32,
        })
    }
}

impl Drop for MaskWords {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            POOL.lock().unwrap_or_else(|p| p.into_inner()).push(slot);
        }
    }
}

/// A free pooled buffer of `words` words, or a new one; `None` when the
/// driver cannot make one (then every step uploads).
fn take_slot(words: usize) -> Option<Slot> {
    {
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = pool
            .iter()
            .position(|s| s.host.len() == words && Arc::strong_count(&s.host) == 1)
        {
            return Some(pool.swap_remove(i));
        }
    }
    let host = MappedWords::new(words).ok()?;
    // 16 bytes: MLX serves 8-byte arrays from a shared pool of managed pages
    // that host-made scalars write into; this one gets a buffer of its own.
    let address = Array::from_slice(&[host.device_address() as i64, words as i64], &[2]);
    Some(Slot {
        host: Arc::new(host),
        address,
    })
}

/// Whether [`AllowedTokens::apply`] runs the CUDA kernel: on the CUDA
/// backend unless `MLX_NAPI_MASK_KERNEL=0`.
pub fn kernel_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| cuda_kernel::enabled("MLX_NAPI_MASK_KERNEL"))
}

/// Whether [`MaskWords`] writes pinned host words: with the kernel, when
/// `MLX_NAPI_MASK_KERNEL=mapped` and the CUDA driver makes them (`Err`: why
/// not).
pub fn mapped_words() -> std::result::Result<(), String> {
    static MAPPED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    MAPPED
        .get_or_init(|| {
            if !kernel_enabled() {
                return Err("the allowed-token kernel does not run here".into());
            }
            if std::env::var("MLX_NAPI_MASK_KERNEL").as_deref() != Ok("mapped") {
                return Err("opt-in: MLX_NAPI_MASK_KERNEL=mapped".into());
            }
            MappedWords::new(1).map(drop)
        })
        .clone()
}

fn mapped_enabled() -> bool {
    mapped_words().is_ok()
}

thread_local! {
    /// The kernels (compiled once per dtype and vocabulary by MLX, which
    /// caches modules by source and template arguments): on words in an MLX
    /// array, and on mapped words.
    static KERNEL: RefCell<Option<CudaKernel>> = const { RefCell::new(None) };
    static MAPPED_KERNEL: RefCell<Option<CudaKernel>> = const { RefCell::new(None) };
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
    use super::{kernel_enabled, mapped_words, take_slot, AllowedTokens, MaskWords, Slot};
    use crate::cuda_host::MappedWords;
    use mlx_rs::{ops::indexing::IndexOp, Array, Dtype};
    use std::sync::Arc;

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
        let uploaded = AllowedTokens::from_bits(&words, allowed.len()).unwrap();
        let mut mask_words = MaskWords::new(allowed.len());
        let mapped = mask_words.fill(&words).unwrap();
        assert_eq!(mapped.is_mapped(), mapped_words().is_ok());
        // A row of a wider batch (an offset, row-contiguous view), in each dtype.
        let wide = mlx_rs::random::normal::<f32>(&[3, vocab], None, None, None).unwrap();
        for tokens in [&uploaded, &mapped] {
            for dtype in [Dtype::Float32, Dtype::Float16, Dtype::Bfloat16] {
                let row = wide.as_dtype(dtype).unwrap().index((1..2, ..));
                let want = row
                    .as_dtype(Dtype::Float32)
                    .unwrap()
                    .add(uploaded.additive().unwrap())
                    .unwrap();
                let got = tokens.apply_kernel(&row).unwrap();
                assert_eq!(got.dtype(), Dtype::Float32);
                assert_eq!(got.as_slice::<f32>(), want.as_slice::<f32>(), "{dtype:?}");
            }
        }
    }

    /// Each fill is that step's set, whether written in place or (while the
    /// last mask is still held) uploaded; a held mask keeps its own words.
    #[test]
    fn mask_words_hold_each_steps_set() {
        let (allowed, words) = example();
        let vocab = allowed.len();
        let others: Vec<u32> = words.iter().map(|w| !w).collect();
        let additive = |t: &AllowedTokens| t.additive().unwrap().as_slice::<f32>().to_vec();
        let want = |w: &[u32]| additive(&AllowedTokens::from_bits(w, vocab).unwrap());
        let mut mask_words = MaskWords::new(vocab);
        let first = mask_words.fill(&words).unwrap();
        assert_eq!(additive(&first), want(&words));
        let held = mask_words.fill(&others).unwrap();
        assert!(!held.is_mapped(), "the first mask still holds the buffer");
        assert_eq!(additive(&held), want(&others));
        assert_eq!(additive(&first), want(&words));
        drop((first, held));
        let again = mask_words.fill(&others).unwrap();
        assert_eq!(again.is_mapped(), mapped_words().is_ok());
        assert_eq!(additive(&again), want(&others));
        assert!(mask_words.fill(&words[..2]).is_err());
    }

    /// The in-place path's bookkeeping, on plain host memory where there is
    /// no driver: each fill writes the buffer, a held mask is never
    /// overwritten (the next fill uploads), and a dropped sequence's buffer
    /// goes to the next one only once no mask holds it.
    #[test]
    fn mapped_words_are_written_in_place_leased_and_pooled() {
        let (_, words) = example();
        let n = words.len() + 1000; // a count no other test's buffer has
        let vocab_n = n * 32;
        let words_n = |w: &[u32]| -> Vec<u32> {
            let mut all = w.to_vec();
            all.resize(n, 0xA5A5_5A5A);
            all
        };
        let (first_words, other_words) = (
            words_n(&words),
            words_n(&words.iter().map(|w| !w).collect::<Vec<_>>()),
        );
        let additive = |t: &AllowedTokens| t.additive().unwrap().as_slice::<f32>().to_vec();
        let want = |w: &[u32]| additive(&AllowedTokens::from_bits(w, vocab_n).unwrap());
        let slot = || Slot {
            host: Arc::new(MappedWords::host_only(n)),
            address: Array::from_slice(&[0i64, n as i64], &[2]),
        };
        let mut mask_words = MaskWords {
            vocab: vocab_n,
            slot: Some(slot()),
        };
        let first = mask_words.fill(&first_words).unwrap();
        assert!(first.is_mapped());
        assert_eq!(additive(&first), want(&first_words));
        let held = mask_words.fill(&other_words).unwrap();
        assert!(!held.is_mapped(), "a held mask's words are not overwritten");
        assert_eq!(additive(&held), want(&other_words));
        assert_eq!(additive(&first), want(&first_words));
        drop((first, held));
        let again = mask_words.fill(&other_words).unwrap();
        assert!(again.is_mapped());
        assert_eq!(additive(&again), want(&other_words));
        let buffer = Arc::clone(&mask_words.slot.as_ref().unwrap().host);
        drop(mask_words);
        // Pooled, but `again` (and `buffer`) still hold it: not handed out.
        let other = take_slot(n);
        assert!(other
            .as_ref()
            .is_none_or(|s| !Arc::ptr_eq(&s.host, &buffer)));
        drop((again, buffer));
        let reused = take_slot(n).expect("the pooled buffer, now free");
        assert_eq!(reused.host.as_slice(), other_words.as_slice());
    }
}
