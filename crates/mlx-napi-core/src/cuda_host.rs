//! Host memory the GPU reads in place: pinned, device-mapped pages from the
//! CUDA driver (`libcuda.so.1`, loaded at run time).
//!
//! Why: MLX's CUDA allocator puts every array in managed memory and hands a
//! host-made array the buffer the GPU read a step before, so a per-step host
//! write faults the pages back to the host and the next kernel's read faults
//! them over again (an allowed-token mask's upload measured 56–391 µs per
//! step that way, against 44–88 µs for the same step on resident words). A
//! pinned page never moves: the host writes it in place and a kernel reads it
//! over the bus.
//!
//! libmlx links the CUDA runtime statically, so its symbols are out of reach;
//! the driver library it loads is not. Nothing here runs unless a caller asks
//! on the CUDA backend, and every failure (no driver, no device, an old
//! driver) is a `String` the caller turns into its fallback.

use std::{ffi::c_void, sync::OnceLock};

use libloading::Library;

/// `CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP`: pinned for every
/// context, mapped into the device's address space.
const PORTABLE_DEVICEMAP: u32 = 0x01 | 0x02;

type CuResult = i32;
type CuContext = *mut c_void;

/// The driver entry points we use (CUDA driver API, stable since CUDA 4).
struct Driver {
    mem_host_alloc: unsafe extern "C" fn(*mut *mut c_void, usize, u32) -> CuResult,
    mem_host_get_device_pointer: unsafe extern "C" fn(*mut u64, *mut c_void, u32) -> CuResult,
    ctx_get_current: unsafe extern "C" fn(*mut CuContext) -> CuResult,
    ctx_push_current: unsafe extern "C" fn(CuContext) -> CuResult,
    ctx_pop_current: unsafe extern "C" fn(*mut CuContext) -> CuResult,
    device_get: unsafe extern "C" fn(*mut i32, i32) -> CuResult,
    primary_ctx_retain: unsafe extern "C" fn(*mut CuContext, i32) -> CuResult,
    init: unsafe extern "C" fn(u32) -> CuResult,
    /// Kept loaded for the process: the function pointers above point into it.
    _library: Library,
}

impl Driver {
    fn load() -> Result<Self, String> {
        // SAFETY: loading the system's CUDA driver runs its initialisers,
        // which is what libmlx does on the CUDA backend anyway.
        let library = unsafe { Library::new("libcuda.so.1") }
            .map_err(|e| format!("the CUDA driver (libcuda.so.1) could not be loaded: {e}"))?;
        /// One symbol as a plain function pointer (copied out of the
        /// `Symbol`, valid while `_library` lives).
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the declared signature is the driver API's for this
                // versioned name.
                *unsafe { library.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| format!("the CUDA driver has no {}: {e}", $name))?
            };
        }
        Ok(Self {
            mem_host_alloc: sym!("cuMemHostAlloc"),
            mem_host_get_device_pointer: sym!("cuMemHostGetDevicePointer_v2"),
            ctx_get_current: sym!("cuCtxGetCurrent"),
            ctx_push_current: sym!("cuCtxPushCurrent_v2"),
            ctx_pop_current: sym!("cuCtxPopCurrent_v2"),
            device_get: sym!("cuDeviceGet"),
            primary_ctx_retain: sym!("cuDevicePrimaryCtxRetain"),
            init: sym!("cuInit"),
            _library: library,
        })
    }
}

fn driver() -> Result<&'static Driver, String> {
    static DRIVER: OnceLock<Result<Driver, String>> = OnceLock::new();
    DRIVER
        .get_or_init(Driver::load)
        .as_ref()
        .map_err(Clone::clone)
}

fn check(result: CuResult, what: &str) -> Result<(), String> {
    if result == 0 {
        Ok(())
    } else {
        Err(format!("{what} failed (CUresult {result})"))
    }
}

/// `words` u32 of pinned host memory, mapped for the device. Never freed: a
/// kernel queued before its owner went away may still read it, so owners
/// keep them in a pool instead (`sampling::allowed`).
pub(crate) struct MappedWords {
    host: *mut u32,
    words: usize,
    /// The same memory's address on the device.
    device: u64,
}

// SAFETY: plain memory with no thread affinity (allocated PORTABLE); the
// owner's `&mut` access rules apply as for a `Box<[u32]>`.
unsafe impl Send for MappedWords {}
unsafe impl Sync for MappedWords {}

impl MappedWords {
    /// Allocates `words` zeroed words on device 0's primary context (MLX's
    /// device), or on the context current on this thread.
    pub fn new(words: usize) -> Result<Self, String> {
        let driver = driver()?;
        let bytes = words.max(1) * std::mem::size_of::<u32>();
        let mut host: *mut c_void = std::ptr::null_mut();
        let mut device = 0u64;
        // SAFETY: driver API calls with live out-pointers; a context pushed
        // here is popped before returning.
        unsafe {
            check((driver.init)(0), "cuInit")?;
            let mut current: CuContext = std::ptr::null_mut();
            check((driver.ctx_get_current)(&mut current), "cuCtxGetCurrent")?;
            let pushed = if current.is_null() {
                let mut ordinal = 0;
                check((driver.device_get)(&mut ordinal, 0), "cuDeviceGet")?;
                let mut primary: CuContext = std::ptr::null_mut();
                check(
                    (driver.primary_ctx_retain)(&mut primary, ordinal),
                    "cuDevicePrimaryCtxRetain",
                )?;
                check((driver.ctx_push_current)(primary), "cuCtxPushCurrent")?;
                true
            } else {
                false
            };
            let made = check(
                (driver.mem_host_alloc)(&mut host, bytes, PORTABLE_DEVICEMAP),
                "cuMemHostAlloc",
            )
            .and_then(|()| {
                check(
                    (driver.mem_host_get_device_pointer)(&mut device, host, 0),
                    "cuMemHostGetDevicePointer",
                )
            });
            if pushed {
                let mut popped: CuContext = std::ptr::null_mut();
                (driver.ctx_pop_current)(&mut popped);
            }
            made?;
            std::ptr::write_bytes(host.cast::<u8>(), 0, bytes);
        }
        Ok(Self {
            host: host.cast(),
            words,
            device,
        })
    }

    /// Plain host memory in the same shape (device address 0), for testing
    /// the owners' bookkeeping where there is no driver.
    #[cfg(test)]
    pub fn host_only(words: usize) -> Self {
        let memory = vec![0u32; words].leak();
        Self {
            host: memory.as_mut_ptr(),
            words,
            device: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.words
    }

    /// The device address of word 0.
    pub fn device_address(&self) -> u64 {
        self.device
    }

    /// Writes `values` from word 0 and zeroes the rest, then fences so the
    /// stores are visible to a kernel launched after this returns. The
    /// caller makes sure no queued kernel still reads these words.
    pub fn write(&mut self, values: &[u32]) {
        assert!(
            values.len() <= self.words,
            "more words than the buffer holds"
        );
        // SAFETY: `host` holds `words` u32 for the process's lifetime, and
        // `&mut self` is the only host access.
        unsafe {
            std::ptr::copy_nonoverlapping(values.as_ptr(), self.host, values.len());
            std::ptr::write_bytes(self.host.add(values.len()), 0, self.words - values.len());
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }

    /// The words as the host last wrote them.
    pub fn as_slice(&self) -> &[u32] {
        // SAFETY: as in `write`; no host write can overlap a `&self` borrow.
        unsafe { std::slice::from_raw_parts(self.host, self.words) }
    }
}

#[cfg(test)]
mod tests {
    use super::MappedWords;

    #[test]
    fn without_a_cuda_driver_allocation_is_a_clear_error() {
        match MappedWords::new(8) {
            Ok(mut words) => {
                // A machine with the driver (and a device): the memory works.
                words.write(&[1, 2, 3]);
                assert_eq!(words.as_slice(), &[1, 2, 3, 0, 0, 0, 0, 0]);
                assert_ne!(words.device_address(), 0);
            }
            Err(e) => assert!(e.contains("CUDA driver") || e.contains("failed"), "{e}"),
        }
    }
}
