//! NumPy `.npz` checkpoints (a zip of `.npy` files), as older mlx-community
//! exports (`weights.npz`) ship them.
//!
//! Each member is parsed and checked (magic, header, dtype, C order, data
//! length) before it becomes an MLX array; anything off is `ERR_MODEL_FORMAT`
//! naming the file and member.

use std::{collections::HashMap, io::Read, path::Path};

use mlx_rs::{Array, Dtype};

use crate::{Error, Result};

/// Largest `.npy` member we read (the largest Whisper layer is far below).
const MAX_MEMBER_BYTES: u64 = 8 << 30;

/// Loads every array of the `.npz` file at `path`, keyed by member name
/// without the `.npy` suffix.
pub fn load_npz(path: &Path) -> Result<HashMap<String, Array>> {
    let bad = |what: String| Error::format(format!("{}: {what}", path.display()));
    let file = super::files::open_regular(path)?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
        .len();
    // Deflate expands at most ~1032:1; a member claiming more is forged. Each
    // member is read up to its declared size only, so memory stays bounded.
    let max_member = file_len.saturating_mul(1032).min(MAX_MEMBER_BYTES);
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| bad(format!("not a valid .npz archive: {e}")))?;
    let mut arrays = HashMap::with_capacity(archive.len());
    for index in 0..archive.len() {
        let mut member = archive
            .by_index(index)
            .map_err(|e| bad(format!("member {index}: {e}")))?;
        if member.is_dir() {
            continue;
        }
        let name = member
            .name()
            .map_err(|e| bad(format!("member {index}: {e}")))?
            .to_string();
        let key = name
            .strip_suffix(".npy")
            .ok_or_else(|| bad(format!("member {name:?} is not an .npy array")))?
            .to_string();
        let declared = member.size();
        if declared > max_member {
            return Err(bad(format!(
                "{name}: declared size {declared} bytes is impossible for a {file_len}-byte archive"
            )));
        }
        let mut bytes = Vec::with_capacity(declared.min(file_len) as usize);
        (&mut member)
            .take(declared + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("{name}: {e}")))?;
        if bytes.len() as u64 != declared {
            return Err(bad(format!(
                "{name}: {} bytes of data, the archive declares {declared}",
                bytes.len()
            )));
        }
        let array = parse_npy(&bytes).map_err(|why| bad(format!("{name}: {why}")))?;
        arrays.insert(key, array);
    }
    Ok(arrays)
}

/// One `.npy` file (format versions 1–3, little-endian, C order) → array.
pub fn parse_npy(bytes: &[u8]) -> std::result::Result<Array, String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not an .npy array (bad magic)".into());
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let data_start = header_start + header_len;
    let header = bytes
        .get(header_start..data_start)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-UTF-8 header")?;
    let field = |key: &str| -> std::result::Result<&str, String> {
        let at = header
            .find(&format!("'{key}':"))
            .ok_or(format!("header lacks '{key}'"))?;
        Ok(header[at + key.len() + 3..].trim_start())
    };
    let descr = field("descr")?;
    let descr = descr
        .get(1..)
        .and_then(|d| d.split('\'').next())
        .ok_or("bad 'descr'")?;
    let (dtype, size) = match descr {
        "<f2" => (Dtype::Float16, 2),
        "<f4" => (Dtype::Float32, 4),
        "<u4" => (Dtype::Uint32, 4),
        "<i4" => (Dtype::Int32, 4),
        "<i8" => (Dtype::Int64, 8),
        "<u8" => (Dtype::Uint64, 8),
        "|u1" | "<u1" => (Dtype::Uint8, 1),
        "|i1" | "<i1" => (Dtype::Int8, 1),
        "|b1" => (Dtype::Bool, 1),
        other => return Err(format!("unsupported dtype {other:?}")),
    };
    if !field("fortran_order")?.starts_with("False") {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let shape_text = field("shape")?;
    let shape_text = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("bad 'shape'")?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|d| {
            d.parse::<i32>()
                .ok()
                .filter(|&d| d >= 0)
                .ok_or_else(|| format!("bad dimension {d:?}"))
        })
        .collect::<std::result::Result<Vec<i32>, String>>()?;
    let data = &bytes[data_start.min(bytes.len())..];
    let expected = shape
        .iter()
        .try_fold(size, |n: usize, &d| n.checked_mul(d as usize))
        .filter(|&n| n == data.len());
    if expected.is_none() {
        return Err(format!(
            "{} data bytes for shape {shape:?} {descr}",
            data.len(),
        ));
    }
    // SAFETY: `data` holds exactly `count` little-endian elements of `dtype`
    // (checked above); MLX copies the buffer.
    Ok(unsafe { Array::from_raw_data(data.as_ptr().cast(), &shape, dtype) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        npy_ordered(descr, "False", shape, data)
    }

    fn npy_ordered(descr: &str, fortran: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn parses_float_and_int_arrays() {
        let data: Vec<u8> = [1.5f32, -2.0, 3.25, 0.0, 8.0, 9.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse_npy(&npy("<f4", "(2, 3)", &data)).unwrap();
        assert_eq!(a.shape(), &[2, 3]);
        assert_eq!(a.as_slice::<f32>(), &[1.5, -2.0, 3.25, 0.0, 8.0, 9.0]);
        let data: Vec<u8> = [7u32, 9].iter().flat_map(|v| v.to_le_bytes()).collect();
        let b = parse_npy(&npy("<u4", "(2,)", &data)).unwrap();
        assert_eq!(b.as_slice::<u32>(), &[7, 9]);
        let scalar = parse_npy(&npy("<f4", "()", &4.0f32.to_le_bytes())).unwrap();
        assert_eq!(scalar.shape(), &[] as &[i32]);
    }

    #[test]
    fn rejects_bad_arrays() {
        assert!(parse_npy(b"garbage").is_err());
        assert!(parse_npy(&npy("<f4", "(2, 3)", &[0; 8]))
            .unwrap_err()
            .contains("data bytes"));
        assert!(parse_npy(&npy(">f4", "(1,)", &[0; 4]))
            .unwrap_err()
            .contains("dtype"));
        let fortran = npy_ordered("<f4", "True", "(1,)", &[0; 4]);
        assert!(parse_npy(&fortran).unwrap_err().contains("Fortran"));
    }
}
