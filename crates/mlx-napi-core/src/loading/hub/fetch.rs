//! One file from the Hub into `blobs/<etag>`: appended to `<etag>.incomplete`
//! (so an interrupted download, by us or by `huggingface_hub`, resumes from its
//! length with a `Range` request), checked against the announced size and ETag
//! hash, then renamed into place.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Write},
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{
    cache::{write_error, RepoCache},
    http::{Client, FileMeta},
};
use crate::{Error, Result};

/// Consecutive failed attempts (without a byte of progress) before giving up.
const MAX_ATTEMPTS: u32 = 4;
const BUFFER: usize = 256 * 1024;

pub struct Target<'a> {
    pub repo_id: &'a str,
    pub commit: &'a str,
    pub file: &'a str,
    pub meta: &'a FileMeta,
}

/// Downloads `target` into its blob unless the blob is there. `on_bytes` gets
/// the file's bytes on disk so far (including a resumed prefix).
pub fn fetch_blob(
    client: &Client,
    cache: &RepoCache,
    target: &Target,
    abort: Option<&AtomicBool>,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<()> {
    let blob = cache.blob_path(&target.meta.etag);
    if blob.is_file() {
        on_bytes(target.meta.size);
        return Ok(());
    }
    let part = cache.incomplete_path(&target.meta.etag);
    if let Some(dir) = part.parent() {
        std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
    }
    let mut failures = 0;
    loop {
        check_abort(abort)?;
        match transfer(client, target, &part, abort, on_bytes) {
            Ok(()) => break,
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Retry { error, progressed }) => {
                failures = if progressed { 1 } else { failures + 1 };
                if failures >= MAX_ATTEMPTS {
                    return Err(error);
                }
                sleep(Duration::from_millis(500 << failures.min(4)), abort)?;
            }
        }
    }
    verify(&part, target)?;
    std::fs::rename(&part, &blob).map_err(|e| write_error(&blob, e))
}

enum Attempt {
    /// A network failure; the partial file keeps what arrived.
    Retry {
        error: Error,
        progressed: bool,
    },
    Fatal(Error),
}

fn transfer(
    client: &Client,
    target: &Target,
    part: &Path,
    abort: Option<&AtomicBool>,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<(), Attempt> {
    let size = target.meta.size;
    let mut start = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if start > size {
        start = 0;
    }
    if start == size && size > 0 {
        on_bytes(size);
        return Ok(());
    }
    let download = client
        .open(target.repo_id, target.commit, target.file, start)
        .map_err(|e| match e {
            Error::Network(_) => Attempt::Retry {
                error: e,
                progressed: false,
            },
            other => Attempt::Fatal(other),
        })?;
    if !download.ranged {
        start = 0;
    }
    let mut out = OpenOptions::new()
        .create(true)
        .write(true)
        .append(start > 0)
        .truncate(start == 0)
        .open(part)
        .map_err(|e| Attempt::Fatal(write_error(part, e)))?;
    on_bytes(start);
    let mut done = start;
    let mut reader = download.body.into_reader();
    let mut buffer = vec![0u8; BUFFER];
    loop {
        if abort.is_some_and(|a| a.load(Ordering::SeqCst)) {
            return Err(Attempt::Fatal(Error::Aborted));
        }
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Attempt::Retry {
                    error: Error::Network(format!(
                        "download of {} broke off after {done} of {size} bytes: {e}",
                        target.file
                    )),
                    progressed: done > start,
                })
            }
        };
        if done + n as u64 > size {
            return Err(Attempt::Fatal(mismatch(part, target, "is longer than")));
        }
        out.write_all(&buffer[..n])
            .map_err(|e| Attempt::Fatal(write_error(part, e)))?;
        done += n as u64;
        on_bytes(done);
    }
    out.flush()
        .and_then(|_| out.sync_all())
        .map_err(|e| Attempt::Fatal(write_error(part, e)))?;
    if done < size {
        return Err(Attempt::Retry {
            error: Error::Network(format!(
                "download of {} ended after {done} of {size} bytes",
                target.file
            )),
            progressed: done > start,
        });
    }
    Ok(())
}

/// Size, then the hash the ETag names: sha256 (64 hex digits, LFS files) or
/// git's blob sha1 (40). Other ETags (some mirrors) are checked by size only.
fn verify(part: &Path, target: &Target) -> Result<()> {
    let len = std::fs::metadata(part)
        .map_err(|e| Error::io(format!("reading {}", part.display()), e))?
        .len();
    if len != target.meta.size {
        return Err(mismatch(part, target, "does not have the size of"));
    }
    let etag = target.meta.etag.to_ascii_lowercase();
    let is_hex = etag.bytes().all(|b| b.is_ascii_hexdigit());
    let actual = match etag.len() {
        64 if is_hex => hash_file::<Sha256>(part, None)?,
        40 if is_hex => hash_file::<Sha1>(part, Some(format!("blob {len}\0")))?,
        _ => return Ok(()),
    };
    if actual != etag {
        return Err(mismatch(part, target, "does not hash to the ETag of"));
    }
    Ok(())
}

/// Removes the partial file (it cannot be resumed) and names the problem.
fn mismatch(part: &Path, target: &Target, how: &str) -> Error {
    let _ = std::fs::remove_file(part);
    Error::Integrity(format!(
        "downloaded {} of {:?} {how} the Hub's file ({} bytes, ETag {}); the partial file \
         was removed, try again",
        target.file, target.repo_id, target.meta.size, target.meta.etag
    ))
}

fn hash_file<D: Digest>(path: &Path, prefix: Option<String>) -> Result<String> {
    let io = |e| Error::io(format!("reading {}", path.display()), e);
    let mut file = File::open(path).map_err(io)?;
    let mut digest = D::new();
    if let Some(prefix) = prefix {
        digest.update(prefix.as_bytes());
    }
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io)?;
        if n == 0 {
            break;
        }
        digest.update(&buffer[..n]);
    }
    Ok(digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn check_abort(abort: Option<&AtomicBool>) -> Result<()> {
    match abort {
        Some(a) if a.load(Ordering::SeqCst) => Err(Error::Aborted),
        _ => Ok(()),
    }
}

/// Sleeps, waking early (with an error) when aborted.
fn sleep(total: Duration, abort: Option<&AtomicBool>) -> Result<()> {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < total {
        check_abort(abort)?;
        std::thread::sleep(step);
        slept += step;
    }
    check_abort(abort)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_sha1_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        std::fs::write(&path, b"hello\n").unwrap();
        let sha = hash_file::<Sha1>(&path, Some("blob 6\0".into())).unwrap();
        assert_eq!(sha, "ce013625030ba8dba906f756967f9e9ca394464a");
    }

    #[test]
    fn size_and_hash_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let part = tmp.path().join("x.incomplete");
        std::fs::write(&part, b"hello\n").unwrap();
        let meta = |etag: &str, size| FileMeta {
            etag: etag.into(),
            size,
        };
        let check = |m: &FileMeta| {
            std::fs::write(&part, b"hello\n").unwrap();
            verify(
                &part,
                &Target {
                    repo_id: "o/n",
                    commit: "c",
                    file: "f",
                    meta: m,
                },
            )
        };
        assert!(check(&meta("ce013625030ba8dba906f756967f9e9ca394464a", 6)).is_ok());
        let sha256 = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        assert!(check(&meta(sha256, 6)).is_ok());
        assert!(check(&meta("opaque-etag", 6)).is_ok());
        let wrong = check(&meta(&"0".repeat(64), 6)).unwrap_err();
        assert_eq!(wrong.code(), crate::ErrorCode::Integrity);
        assert!(!part.exists(), "a corrupt partial file is removed");
        let short = check(&meta("opaque", 7)).unwrap_err();
        assert_eq!(short.code(), crate::ErrorCode::Integrity);
    }
}
