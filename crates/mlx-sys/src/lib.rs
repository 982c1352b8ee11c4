//! Raw bindings to mlx-c 0.7.0, built against a prebuilt MLX 0.32.2.
//!
//! A drop-in replacement for the crates.io `mlx-sys 0.7.0` (wired in through
//! `[patch.crates-io]`): same items, so mlx-rs compiles unchanged, but it builds on
//! Linux (CPU and CUDA) as well as macOS. See `build.rs` for how the native parts
//! are found.
#![allow(non_upper_case_globals)]
#![allow(non_camel_case_types)]
#![allow(non_snake_case)]
#![allow(clippy::all)]

include!("bindings.rs");

/// IEEE half, as raw bits. mlx-rs reads `.0`, matching what bindgen emits for
/// `__fp16` on ARM.
#[repr(transparent)]
#[derive(Debug, Default, Copy, Clone, PartialEq, Eq, Hash)]
pub struct float16_t(pub u16);

/// bfloat16, as raw bits (bindgen maps `__bf16` to `u16`).
pub type bfloat16_t = u16;

/// mlx-rs seeds its default random state from macOS's `mach_approximate_time`.
/// Other targets lack it; a monotonic nanosecond clock serves the same purpose.
#[cfg(not(target_vendor = "apple"))]
#[no_mangle]
pub extern "C" fn mach_approximate_time() -> u64 {
    use std::time::{Instant, SystemTime, UNIX_EPOCH};
    static START: std::sync::OnceLock<(Instant, u64)> = std::sync::OnceLock::new();
    let (start, epoch_ns) = START.get_or_init(|| {
        let ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        (Instant::now(), ns)
    });
    epoch_ns.wrapping_add(start.elapsed().as_nanos() as u64)
}
