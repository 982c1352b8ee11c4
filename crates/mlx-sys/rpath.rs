// Shared by the build scripts of crates that link a final artifact (the addon's
// cdylib, the core's test binaries): bake the MLX runtime directories that
// crates/mlx-sys found into the RUNPATH, so no LD_LIBRARY_PATH is needed, while
// one set at run time (e.g. to a CUDA libmlx.so) still takes precedence.
pub fn emit_mlx_rpath() {
    let Some(paths) = std::env::var_os("DEP_MLX_RPATH") else {
        return;
    };
    let apple = std::env::var("CARGO_CFG_TARGET_VENDOR").as_deref() == Ok("apple");
    if !apple {
        println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags");
    }
    for dir in std::env::split_paths(&paths) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
}
