//! Every file the core reads goes through here: only regular files are opened
//! (a FIFO would block forever, `/dev/zero` would never end), and a file read
//! into memory has a size cap checked before and enforced during the read.

use std::{
    fs::{File, OpenOptions},
    io::Read,
    path::Path,
};

use crate::{Error, Result};

/// Cap for JSON configs (`config.json`, `generation_config.json`,
/// `tokenizer_config.json`, shard indexes): real ones are a few KiB to a few MiB.
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;
/// Cap for `tokenizer.json` (the largest public ones are ~30 MB).
pub const MAX_TOKENIZER_BYTES: u64 = 512 << 20;
/// Cap for a chat template file.
pub const MAX_TEMPLATE_BYTES: u64 = 4 << 20;

/// Opens `path` for reading if it is a regular file (symlinks followed).
/// FIFOs, sockets and devices are refused with `ERR_IO` without blocking:
/// the file is opened non-blocking and checked on the open descriptor.
pub fn open_regular(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: opening a FIFO with no writer returns at once. It has no
        // effect on regular files.
        #[cfg(target_os = "linux")]
        const O_NONBLOCK: i32 = 0o4000;
        #[cfg(not(target_os = "linux"))]
        const O_NONBLOCK: i32 = 0x0004;
        options.custom_flags(O_NONBLOCK);
    }
    let file = options
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(not_regular(path));
    }
    Ok(file)
}

fn not_regular(path: &Path) -> Error {
    Error::io(
        format!("{} is not a regular file", path.display()),
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "FIFOs, sockets and devices are not read",
        ),
    )
}

/// Reads all of the regular file `path`, refusing files over `cap` bytes
/// (`ERR_IO`). The cap is enforced while reading too, so a file that grows
/// cannot exceed it.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
        .len();
    let too_big = || {
        Error::io(
            format!("reading {}", path.display()),
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("file is larger than the {cap}-byte limit for this kind of file"),
            ),
        )
    };
    if len > cap {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if bytes.len() as u64 > cap {
        return Err(too_big());
    }
    Ok(bytes)
}

/// [`read_capped`] as UTF-8 text; invalid UTF-8 is `ERR_MODEL_FORMAT`.
pub fn read_text_capped(path: &Path, cap: u64) -> Result<String> {
    String::from_utf8(read_capped(path, cap)?)
        .map_err(|_| Error::format(format!("{}: not valid UTF-8", path.display())))
}
