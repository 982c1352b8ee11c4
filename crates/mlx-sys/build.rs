//! Builds mlx-c 0.7.0 against a prebuilt MLX 0.32.2 and links it.
//!
//! * mlx-c sources: the published `mlx-sys 0.7.0` crate package, which cargo
//!   downloads into its registry cache (`MLX_C_SRC` overrides).
//! * MLX: the C++ library from the PyPI wheels of MLX 0.32.2, fetched once with
//!   `pip download` into `<workspace>/.mlx/0.32.2/<variant>` (`MLX_DIR` overrides).
//! * Bindings: committed in `src/bindings.rs` (see `regen-bindings.sh`), so no
//!   libclang is needed.
//!
//! Dependents that link a final artifact read `DEP_MLX_RPATH` (see `rpath.rs`).

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

const MLX_VERSION: &str = "0.32.2";
const MLX_C_CRATE: &str = "mlx-sys-0.7.0";

fn main() {
    for var in ["MLX_DIR", "MLX_VARIANT", "MLX_C_SRC", "MLX_RUNTIME_HOME"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=native/mlx_c_compat.h");

    let runtime = Runtime::locate();
    let mlx_c = mlx_c_sources();
    compile_mlx_c(&mlx_c, &runtime.link_dir.join("../include"));

    println!(
        "cargo:rustc-link-search=native={}",
        runtime.link_dir.display()
    );
    println!("cargo:rustc-link-lib=dylib=mlx");
    let rpath = env::join_paths(&runtime.rpath).expect("runtime paths contain ':'");
    println!("cargo::metadata=rpath={}", rpath.to_string_lossy());
    println!("cargo::metadata=version={MLX_VERSION}");
    println!("cargo::metadata=variant={}", runtime.variant);
    println!(
        "cargo::metadata=include={}",
        runtime.link_dir.join("../include").display()
    );
}

fn fail(msg: &str) -> ! {
    // A panic would bury the message under a backtrace hint; this is shown as is.
    eprintln!("\nmlx-sys: {msg}\n");
    std::process::exit(1);
}

struct Runtime {
    variant: String,
    /// Directory holding the `libmlx` we link against (and its `../include`).
    link_dir: PathBuf,
    /// Library directories in loader search order, baked into dependents' RUNPATH.
    rpath: Vec<PathBuf>,
}

impl Runtime {
    fn locate() -> Runtime {
        let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap();
        let variant = env::var("MLX_VARIANT")
            .unwrap_or_else(|_| if target_os == "macos" { "metal" } else { "cpu" }.to_string());
        if let Some(dir) = env::var_os("MLX_DIR") {
            let dir = PathBuf::from(dir);
            check_runtime(&dir, &target_os);
            return Runtime {
                variant,
                link_dir: dir.join("lib"),
                rpath: vec![dir.join("lib")],
            };
        }
        let home = env::var_os("MLX_RUNTIME_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join(".mlx").join(MLX_VERSION));
        let wheel = |variant: &str| {
            let dir = home.join(variant);
            fetch_wheel(variant, &dir);
            check_runtime(&dir.join("mlx"), &target_os);
            dir.join("mlx").join("lib")
        };
        match (target_os.as_str(), variant.as_str()) {
            ("macos", "metal") => {
                let lib = wheel("metal");
                Runtime {
                    variant,
                    link_dir: lib.clone(),
                    rpath: vec![lib],
                }
            }
            ("linux", "cpu") => {
                let lib = wheel("cpu");
                Runtime {
                    variant,
                    link_dir: lib.clone(),
                    rpath: vec![lib],
                }
            }
            // The CUDA libmlx.so needs the NVIDIA libraries to link an executable, so
            // we link against the CPU build (same headers, same soname) and put the
            // CUDA build first in the search path: it wins at load time.
            ("linux", "cuda13") => {
                let cpu = wheel("cpu");
                let cuda = wheel("cuda13");
                Runtime {
                    variant,
                    link_dir: cpu.clone(),
                    rpath: vec![cuda, cpu],
                }
            }
            (os, v) => fail(&format!(
                "MLX_VARIANT={v} is not available on {os}. Use 'cpu' or 'cuda13' on Linux, \
                 'metal' on macOS, or point MLX_DIR at an MLX {MLX_VERSION} install \
                 (a directory with include/ and lib/)."
            )),
        }
    }
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    manifest
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or(manifest)
}

fn check_runtime(dir: &Path, target_os: &str) {
    let lib = if target_os == "macos" {
        "libmlx.dylib"
    } else {
        "libmlx.so"
    };
    if !dir.join("lib").join(lib).is_file() {
        fail(&format!(
            "{} has no lib/{lib}: not an MLX install",
            dir.display()
        ));
    }
    let header = dir.join("include/mlx/version.h");
    let text = fs::read_to_string(&header).unwrap_or_else(|_| {
        fail(&format!(
            "{} is missing: not an MLX install",
            header.display()
        ))
    });
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("#define {name} ")))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let found = format!(
        "{}.{}.{}",
        field("MLX_VERSION_MAJOR"),
        field("MLX_VERSION_MINOR"),
        field("MLX_VERSION_PATCH")
    );
    if found != MLX_VERSION {
        fail(&format!(
            "{} holds MLX {found}, but mlx-c 0.7.0 (mlx-rs 0.33.0) needs exactly MLX {MLX_VERSION}: \
             its headers differ. Remove that directory or set MLX_DIR to an MLX {MLX_VERSION} install.",
            dir.display()
        ));
    }
}

/// Downloads and unpacks the PyPI wheel carrying MLX's C++ library, once.
fn fetch_wheel(variant: &str, dir: &Path) {
    let done = dir.join(".complete");
    if done.is_file() {
        return;
    }
    let package = match variant {
        "cpu" => "mlx-cpu",
        "cuda13" => "mlx-cuda-13",
        // On macOS the `mlx` wheel holds only the Python bindings; libmlx.dylib and
        // mlx.metallib come in its dependency `mlx-metal`.
        "metal" => "mlx-metal",
        _ => unreachable!(),
    };
    let python = env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let download = dir.with_extension("download");
    let _ = fs::remove_dir_all(&download);
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(&download).unwrap();
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
        ])
        .arg(&download)
        .arg(format!("{package}=={MLX_VERSION}"))
        .status();
    match status {
        Err(e) => fail(&format!(
            "cannot run '{python} -m pip' ({e}). Install Python 3 with pip, set PYTHON to one, \
             or set MLX_DIR to an existing MLX {MLX_VERSION} install."
        )),
        Ok(s) if !s.success() => fail(&format!(
            "'pip download {package}=={MLX_VERSION}' failed (see pip's message above). Check the \
             network access to PyPI, or set MLX_DIR to an existing MLX {MLX_VERSION} install."
        )),
        Ok(_) => {}
    }
    let wheel = fs::read_dir(&download)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .unwrap_or_else(|| fail(&format!("pip downloaded no wheel for {package}")));
    let status = Command::new(&python)
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(dir)
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot unpack {}: {e}", wheel.display())));
    if !status.success() {
        fail(&format!("cannot unpack {}", wheel.display()));
    }
    // zipfile drops the executable bit; the dynamic loader does not care, but be tidy.
    let _ = fs::remove_dir_all(&download);
    fs::write(done, format!("{package}=={MLX_VERSION}\n")).unwrap();
}

/// Finds the mlx-c sources inside the published mlx-sys crate, asking cargo to
/// download that crate when its registry cache does not have it yet.
fn mlx_c_sources() -> PathBuf {
    if let Some(dir) = env::var_os("MLX_C_SRC") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = find_in_registry() {
        return dir;
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("fetch-mlx-c");
    fs::create_dir_all(out.join("src")).unwrap();
    fs::write(
        out.join("Cargo.toml"),
        "[package]\nname = \"fetch-mlx-c\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         [dependencies]\nmlx-sys = \"=0.7.0\"\n[workspace]\n",
    )
    .unwrap();
    fs::write(out.join("src/lib.rs"), "").unwrap();
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["fetch", "--manifest-path"])
        .arg(out.join("Cargo.toml"))
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        fail(
            "'cargo fetch' of the mlx-sys 0.7.0 crate (which carries the mlx-c sources) failed. \
              Check access to crates.io, or set MLX_C_SRC to an mlx-c 0.7.0 source tree.",
        );
    }
    find_in_registry().unwrap_or_else(|| {
        fail(
            "cargo fetched mlx-sys 0.7.0 but its sources are not under $CARGO_HOME/registry/src; \
              set MLX_C_SRC to an mlx-c 0.7.0 source tree",
        )
    })
}

fn find_in_registry() -> Option<PathBuf> {
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let registries = fs::read_dir(cargo_home.join("registry/src")).ok()?;
    registries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(MLX_C_CRATE).join("src/mlx-c"))
        .find(|p| p.join("mlx/c/ops.cpp").is_file())
}

fn compile_mlx_c(mlx_c: &Path, mlx_include: &Path) {
    let sources: Vec<PathBuf> = fs::read_dir(mlx_c.join("mlx/c"))
        .unwrap_or_else(|e| fail(&format!("{}: {e}", mlx_c.display())))
        .filter_map(|e| e.ok().map(|e| e.path()))
        // object.cpp is commented out of mlx-c's own CMakeLists.
        .filter(|p| p.extension().is_some_and(|e| e == "cpp") && !p.ends_with("object.cpp"))
        .collect();
    let compat = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("native");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++20")
        .include(mlx_c)
        .include(mlx_include)
        .flag(format!(
            "-include{}",
            compat.join("mlx_c_compat.h").display()
        ))
        .warnings(false)
        .files(&sources);
    // half.h only defines the half scalar types on ARM; elsewhere mlx-rs still needs
    // the float16/bfloat16 accessors, which we back with MLX's own half types.
    if env::var("CARGO_CFG_TARGET_ARCH").unwrap() != "aarch64" {
        build.define("MLX_C_COMPAT_HALF", None);
    }
    build.compile("mlxc");
}
