//! MLX's CPU backend builds fused kernels with the system `g++` at run time; a
//! compiler that refuses MLX's generated code (a newer GCC than the wheel was
//! made with) must turn fusion off, not break every model (runtime.rs).
//!
//! One test per process: the compiler on PATH and MLX's kernel cache (under
//! TMPDIR) must be set before MLX is first used.

use std::{fs, os::unix::fs::PermissionsExt};

use mlx_napi_core::{nn::fused, runtime};
use mlx_rs::{ops, Array};

#[test]
fn a_compiler_that_fails_turns_cpu_fusion_off_and_models_still_run() {
    let root = std::env::temp_dir().join(format!("mlx-napi-cpu-fusion-{}", std::process::id()));
    let bin = root.join("bin");
    fs::create_dir_all(&bin).unwrap();
    // Answers version probes like a compiler, fails every build like GCC 14 on
    // MLX 0.32.2's preamble.
    let fake = "#!/bin/sh\ncase \"$1\" in --version|-v|-dumpversion) echo 'g++ (fake) 14.2.0'; exit 0;; esac\n\
                echo \"error: redeclaration of C++ built-in type '_Float128'\" >&2\nexit 1\n";
    for name in ["g++", "c++", "clang++"] {
        let path = bin.join(name);
        fs::write(&path, fake).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let tmp = root.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // SAFETY: set before any other thread of this test process exists (one test).
    unsafe {
        std::env::set_var("PATH", path);
        std::env::set_var("TMPDIR", &tmp); // a kernel cache with nothing built yet
    }

    runtime::init();
    let info = mlx_napi_core::backend::backend_info().unwrap();
    if info.device != "cpu" {
        eprintln!(
            "skipping: the default device is {} (the check is for MLX's CPU backend)",
            info.device
        );
        return;
    }
    let why = runtime::cpu_fusion_disabled().expect("fusion stays on although the compiler fails");
    assert!(why.contains("Compile") || why.contains("compile"), "{why}");

    // The fused activations now run unfused and give the same values.
    let x = Array::from_slice(&[-2.0f32, -0.5, 0.0, 0.75, 3.0], &[5]);
    let y = fused::gelu(&x).unwrap();
    let expected = x
        .multiply(
            ops::erf(x.divide(Array::from_f32(std::f32::consts::SQRT_2)).unwrap())
                .unwrap()
                .add(Array::from_f32(1.0))
                .unwrap(),
        )
        .unwrap()
        .divide(Array::from_f32(2.0))
        .unwrap();
    let (got, want) = (
        y.as_slice::<f32>().to_vec(),
        expected.as_slice::<f32>().to_vec(),
    );
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
    }
    let _ = fs::remove_dir_all(&root);
}
