//! Process-wide MLX set-up that every engine entry point runs once.
//!
//! Two things must happen before we touch MLX in earnest:
//! * mlx-rs's error handler must be installed before any raw mlx-c call, or a
//!   failing call would `exit()` the process (mlx-c's default handler does).
//! * MLX's statics must not be destroyed at exit. On CUDA, MLX 0.32.2 keeps its
//!   command encoders in a function-local static whose destructor synchronizes a
//!   CUDA stream after the CUDA runtime has shut down, so every process that used
//!   the GPU aborts on exit ("cudaStreamSynchronize failed: driver shutting down";
//!   fixed upstream after 0.32.2 by leaking the encoders). On every backend,
//!   `process.exit()` while a model thread is working destroyed MLX's allocator
//!   under it (`CommonAllocator::~CommonAllocator` on the main thread, `malloc`
//!   on the model thread: a segfault in about a third of exits mid-generation).
//!   We register an exit handler *after* those statics exist — handlers run in
//!   reverse order — that ends the process with its real exit status before any
//!   of their destructors can run, and register it again after each model's
//!   load and first call ([`guard_exit_again`]).
//!
//! And one thing must happen before MLX compiles its first GPU kernel: its
//! CUDA backend caches the kernels it compiles (NVRTC, tens of seconds on a
//! fresh machine) in `MLX_PTX_CACHE_DIR`, read once at the first compile,
//! by default under the temp dir — gone after a reboot or in a new
//! container. We point it at a per-user cache directory instead
//! ([`kernel_cache_dir`]), unless the variable is already set.

use std::{
    path::{Path, PathBuf},
    sync::{Once, OnceLock},
};

use mlx_rs::{ops, Array};

/// The variable MLX's CUDA backend reads for its kernel cache.
pub const KERNEL_CACHE_VAR: &str = "MLX_PTX_CACHE_DIR";

/// Idempotent; cheap after the first call.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Any mlx-rs operation installs its error handler first.
        let _ = ops::abs(Array::from_f32(0.0));
        // Before any kernel is compiled (the evaluation below may compile one).
        let cache = kernel_cache_dir();
        if crate::backend::cuda_available() {
            if let Some(dir) = cache.filter(|d| is_cold(d)) {
                eprintln!(
                    "mlx-napi: compiling MLX's GPU kernels on first use (the first \
                     generation or transcription takes longer); they are cached in {} \
                     for later runs",
                    dir.display()
                );
            }
            // Create the GPU command encoders now, so the guard below is
            // registered after them and therefore runs before their destructor.
            let _ = ops::add(Array::from_f32(1.0), Array::from_f32(1.0)).and_then(|a| a.eval());
        } else if cfg!(target_os = "linux") {
            cpu_fusion::check();
            let _ = ops::add(Array::from_f32(1.0), Array::from_f32(1.0)).and_then(|a| a.eval());
        }
        // After MLX's allocator, scheduler and (CUDA) encoders exist, so that
        // the guard runs before their destructors.
        exit_guard::install();
    });
}

/// Registers the exit guard once more, so that it also runs before the
/// destructors of MLX statics created since (a kernel cache a model's first
/// forward pass filled, say). Engines call it after a model's load and after
/// its first completed call; bounded, as each registration stays until exit.
pub fn guard_exit_again() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static REGISTERED: AtomicUsize = AtomicUsize::new(0);
    if REGISTERED.fetch_add(1, Ordering::Relaxed) < 64 {
        exit_guard::install();
    }
}

/// Why MLX's CPU kernel fusion was turned off in this process, if it was.
pub fn cpu_fusion_disabled() -> Option<&'static str> {
    cpu_fusion::DISABLED.get().map(String::as_str)
}

/// MLX's CPU backend fuses compiled element-wise chains by generating C++ and
/// building it with the system's `g++` at run time. The preamble it generates
/// comes from the wheel's build machine, and a newer GCC refuses it
/// (GCC ≥ 13: "redeclaration of C++ built-in type '_Float128'", seen on the
/// H200 machine's Ubuntu), which fails every fused op of every model. MLX only
/// falls back to unfused ops when there is no compiler at all, so we try one
/// fused kernel once per process and turn fusion off when it fails: slower,
/// never broken.
mod cpu_fusion {
    use std::sync::OnceLock;

    use mlx_rs::{error::Exception, ops, transforms::compile, Array};

    pub static DISABLED: OnceLock<String> = OnceLock::new();

    pub fn check() {
        let mut fused = compile::compile(
            |x: &Array| -> Result<Array, Exception> { ops::erf(x)?.multiply(x)?.add(x) },
            true,
        );
        let probe = Array::from_slice(&[0.5f32, -1.0, 2.0], &[3]);
        if let Err(e) = fused(&probe).and_then(|y| y.eval().map(|_| y)) {
            compile::disable_compile();
            let first_line = e.what().lines().next().unwrap_or_default().to_owned();
            eprintln!(
                "mlx-napi: MLX's CPU kernel fusion is off (the system C++ compiler \
                 failed on MLX's generated code); models run unfused, somewhat slower. \
                 Cause: {}",
                first_line.chars().take(300).collect::<String>()
            );
            let _ = DISABLED.set(first_line);
        }
        compile::clear_cache();
    }
}

/// Where MLX's CUDA backend caches compiled kernels in this process: an
/// explicit `MLX_PTX_CACHE_DIR`, else a per-user cache directory (see
/// [`default_kernel_cache_dir`]), which is then exported as
/// `MLX_PTX_CACHE_DIR` for MLX. `None` when neither exists (no home
/// directory): MLX then uses its temp-dir default. The Metal and CPU
/// backends keep no kernel cache of their own on disk.
pub fn kernel_cache_dir() -> Option<PathBuf> {
    // mlx-rs's error handler before the raw version call below.
    let _ = ops::abs(Array::from_f32(0.0));
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os(KERNEL_CACHE_VAR).filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir));
        }
        let dir = default_kernel_cache_dir(
            std::env::consts::OS,
            std::env::var_os("XDG_CACHE_HOME").as_deref().map(Path::new),
            std::env::var_os("HOME").as_deref().map(Path::new),
            &crate::backend::raw_mlx_version().unwrap_or_else(|_| "unknown".into()),
        )?;
        // Set once, before MLX reads it (at its first kernel compile).
        std::env::set_var(KERNEL_CACHE_VAR, &dir);
        Some(dir)
    })
    .clone()
}

/// The per-user kernel cache for `os`: `$XDG_CACHE_HOME` (when absolute) or
/// `~/.cache` on Linux, `~/Library/Caches` on macOS, then
/// `mlx-napi/mlx-<version>/kernels` (kernels compiled by one MLX version
/// are not reused by another).
pub fn default_kernel_cache_dir(
    os: &str,
    xdg_cache_home: Option<&Path>,
    home: Option<&Path>,
    mlx_version: &str,
) -> Option<PathBuf> {
    let base = match os {
        "macos" => home?.join("Library/Caches"),
        _ => match xdg_cache_home.filter(|p| p.is_absolute()) {
            Some(xdg) => xdg.to_path_buf(),
            None => home?.join(".cache"),
        },
    };
    Some(
        base.join("mlx-napi")
            .join(format!("mlx-{mlx_version}"))
            .join("kernels"),
    )
}

/// No compiled kernel in `dir` yet (a first run on this machine).
fn is_cold(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none())
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
    /// `on_exit` is glibc's. On macOS (Metal) the same exit-time race is not
    /// handled yet: not built or run here.
    pub fn install() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_cache_follows_each_platforms_cache_convention() {
        let home = Some(Path::new("/home/ada"));
        let v = "0.32.2";
        let dir = |os, xdg: Option<&str>| {
            default_kernel_cache_dir(os, xdg.map(Path::new), home, v)
                .map(|p| p.display().to_string())
        };
        assert_eq!(
            dir("linux", None).as_deref(),
            Some("/home/ada/.cache/mlx-napi/mlx-0.32.2/kernels")
        );
        assert_eq!(
            dir("linux", Some("/var/cache/ada")).as_deref(),
            Some("/var/cache/ada/mlx-napi/mlx-0.32.2/kernels")
        );
        // A relative XDG_CACHE_HOME is invalid per the spec: ignored.
        assert_eq!(
            dir("linux", Some("rel/cache")).as_deref(),
            Some("/home/ada/.cache/mlx-napi/mlx-0.32.2/kernels")
        );
        assert_eq!(
            dir("macos", Some("/ignored")).as_deref(),
            Some("/home/ada/Library/Caches/mlx-napi/mlx-0.32.2/kernels")
        );
        assert_eq!(default_kernel_cache_dir("linux", None, None, v), None);
        assert_eq!(
            default_kernel_cache_dir("linux", Some(Path::new("/x")), None, v),
            Some(PathBuf::from("/x/mlx-napi/mlx-0.32.2/kernels"))
        );
    }
}
