//! Process-wide MLX set-up that every engine entry point runs once.
//!
//! Two things must happen before we touch MLX in earnest:
//! * mlx-rs's error handler must be installed before any raw mlx-c call, or a
//!   failing call would `exit()` the process (mlx-c's default handler does).
//! * On CUDA, MLX 0.32.2 keeps its command encoders in a function-local static
//!   whose destructor synchronizes a CUDA stream. That destructor runs after the
//!   CUDA runtime has shut down, so every process that used the GPU aborts on exit
//!   ("cudaStreamSynchronize failed: driver shutting down"; fixed upstream after
//!   0.32.2 by leaking the encoders). We register an exit handler *after* those
//!   encoders exist — handlers run in reverse order — that ends the process with
//!   its real exit status before the faulty destructor can run.

use std::sync::Once;

use mlx_rs::{ops, Array};

/// Idempotent; cheap after the first call.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Any mlx-rs operation installs its error handler first.
        let _ = ops::abs(Array::from_f32(0.0));
        if cuda_available() {
            // Create the GPU command encoders now, so the guard below is
            // registered after them and therefore runs before their destructor.
            let _ = ops::add(Array::from_f32(1.0), Array::from_f32(1.0)).and_then(|a| a.eval());
            exit_guard::install();
        }
    });
}

fn cuda_available() -> bool {
    let mut available = false;
    // SAFETY: plain out-parameter call; the error handler is installed above.
    let status = unsafe { mlx_sys::mlx_cuda_is_available(&mut available) };
    status == 0 && available
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod exit_guard {
    use std::os::raw::{c_int, c_void};

    extern "C" {
        // glibc: like atexit, but the handler receives the exit status.
        fn on_exit(function: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
        fn fflush(stream: *mut c_void) -> c_int;
        fn _exit(status: c_int) -> !;
    }

    extern "C" fn finish(status: c_int, _arg: *mut c_void) {
        // SAFETY: flushing every C stdio stream and leaving; nothing after this
        // handler is needed by the process (see the module docs).
        unsafe {
            fflush(std::ptr::null_mut());
            _exit(status)
        }
    }

    pub fn install() {
        // SAFETY: registers a handler with a static lifetime.
        unsafe { on_exit(finish, std::ptr::null_mut()) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod exit_guard {
    /// MLX's CUDA backend only exists on Linux with glibc.
    pub fn install() {}
}
