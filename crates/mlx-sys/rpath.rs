// Shared by the build scripts of crates that link a final artifact (the addon's
// cdylib, the core's test binaries): bake the MLX runtime directories that
// crates/mlx-sys found into the RUNPATH, so no LD_LIBRARY_PATH is needed, while
// one set at run time (e.g. to a CUDA libmlx.so) still takes precedence.
#[allow(dead_code)] // each build script uses one of the two
pub fn emit_mlx_rpath() {
    emit_rpath(&[]);
}

/// The addon's RUNPATH: first `<addon dir>/mlx/lib` (`$ORIGIN` / `@loader_path`),
/// where a platform package (npm/*) carries its MLX runtime, then the build-time
/// directories. `npm run package` cuts the build-time entries from the packaged
/// copy (scripts/package/elf.js on Linux, install_name_tool on macOS); in a
/// checkout there is no `mlx/lib` beside the addon, so the build-time entry wins.
#[allow(dead_code)] // each build script uses one of the two
pub fn emit_package_rpath() {
    let apple = std::env::var("CARGO_CFG_TARGET_VENDOR").as_deref() == Ok("apple");
    emit_rpath(&[if apple {
        "@loader_path/mlx/lib"
    } else {
        "$ORIGIN/mlx/lib"
    }]);
}

fn emit_rpath(first: &[&str]) {
    let Some(paths) = std::env::var_os("DEP_MLX_RPATH") else {
        return;
    };
    let apple = std::env::var("CARGO_CFG_TARGET_VENDOR").as_deref() == Ok("apple");
    if !apple {
        println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags");
    }
    for dir in first {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    for dir in std::env::split_paths(&paths) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
}
