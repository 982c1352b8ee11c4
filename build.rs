#[path = "crates/mlx-sys/rpath.rs"]
mod rpath;

fn main() {
    napi_build::setup();
    rpath::emit_package_rpath();
}
