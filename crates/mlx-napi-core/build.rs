#[path = "../mlx-sys/rpath.rs"]
mod rpath;

fn main() {
    rpath::emit_mlx_rpath();
}
