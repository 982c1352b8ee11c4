//! One repo's folder in the Hugging Face cache, in the layout Python's
//! `huggingface_hub` writes, so that both read each other's downloads:
//!
//! ```text
//! <cache>/models--owner--name/
//!   blobs/<etag>               file contents, named by ETag (sha256 for LFS files)
//!   blobs/<etag>.incomplete    a download in progress (resumed from its length)
//!   snapshots/<commit>/<file>  relative symlink to ../../blobs/<etag>
//!   refs/<revision>            the commit a branch or tag pointed to when last fetched
//! ```

use std::path::{Path, PathBuf};

/// A ref file holds one commit hash (a cap, as for every file read).
pub(crate) const REF_BYTES: u64 = 4096;

use crate::{Error, Result};

pub struct RepoCache {
    dir: PathBuf,
}

impl RepoCache {
    pub fn new(cache_root: &Path, repo_id: &str) -> Self {
        RepoCache {
            dir: cache_root.join(folder_name(repo_id)),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The commit `revision` names locally: what `refs/<revision>` holds, or
    /// the revision itself when it is a commit with a snapshot folder.
    pub fn commit_for(&self, revision: &str) -> Option<String> {
        if let Ok(commit) = crate::loading::files::read_text_capped(
            &self.dir.join("refs").join(revision),
            REF_BYTES,
        ) {
            let commit = commit.trim().to_string();
            if !commit.is_empty() {
                return Some(commit);
            }
        }
        (is_commit(revision) && self.snapshot_dir(revision).is_dir()).then(|| revision.into())
    }

    /// Records that `revision` pointed at `commit` (nothing for a commit itself).
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        if revision == commit {
            return Ok(());
        }
        let path = self.dir.join("refs").join(revision);
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent).map_err(|e| write_error(parent, e))?;
        let tmp = path.with_extension("tmp-mlx-napi");
        std::fs::write(&tmp, commit).map_err(|e| write_error(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| write_error(&path, e))
    }

    pub fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    pub fn blob_path(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(etag)
    }

    pub fn incomplete_path(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{etag}.incomplete"))
    }

    /// Whether `snapshots/<commit>/<file>` exists (and its blob, if a link).
    pub fn has_file(&self, commit: &str, file: &str) -> bool {
        self.snapshot_dir(commit).join(file).is_file()
    }

    /// Points `snapshots/<commit>/<file>` at the blob `etag`.
    pub fn link(&self, commit: &str, file: &str, etag: &str) -> Result<()> {
        let pointer = self.snapshot_dir(commit).join(file);
        let parent = pointer.parent().unwrap_or(&self.dir).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| write_error(&parent, e))?;
        // Relative, like huggingface_hub: the cache stays valid when moved.
        let depth = file.matches('/').count() + 2;
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        target.push(etag);
        let _ = std::fs::remove_file(&pointer);
        #[cfg(unix)]
        let linked = std::os::unix::fs::symlink(&target, &pointer);
        // Windows needs a privilege for symlinks; huggingface_hub then copies too.
        #[cfg(not(unix))]
        let linked = std::fs::copy(self.blob_path(etag), &pointer).map(|_| ());
        linked.map_err(|e| write_error(&pointer, e))
    }
}

/// `owner/name` → `models--owner--name`.
pub fn folder_name(repo_id: &str) -> String {
    format!("models--{}", repo_id.replace('/', "--"))
}

/// `models--owner--name` → `owner/name`.
pub fn repo_id_of(folder: &str) -> Option<String> {
    let rest = folder.strip_prefix("models--")?;
    let (owner, name) = rest.split_once("--")?;
    Some(format!("{owner}/{name}"))
}

pub fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A write error: a full disk or quota gets its own code.
pub fn write_error(path: &Path, e: std::io::Error) -> Error {
    use std::io::ErrorKind;
    if matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded) {
        return Error::DiskFull(format!(
            "no space left writing {}: free some space or point HF_HUB_CACHE elsewhere",
            path.display()
        ));
    }
    Error::io(format!("writing {}", path.display()), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(folder_name("a-b/c.d"), "models--a-b--c.d");
        assert_eq!(repo_id_of("models--a-b--c.d").as_deref(), Some("a-b/c.d"));
        assert_eq!(repo_id_of("datasets--a--b"), None);
    }

    #[test]
    fn refs_links_and_commits() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = RepoCache::new(tmp.path(), "o/n");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        assert!(is_commit(commit) && !is_commit("main"));
        assert_eq!(repo.commit_for("main"), None);
        std::fs::create_dir_all(repo.blob_path("e").parent().unwrap()).unwrap();
        std::fs::write(repo.blob_path("e"), b"{}").unwrap();
        repo.link(commit, "config.json", "e").unwrap();
        repo.write_ref("main", commit).unwrap();
        assert_eq!(repo.commit_for("main").as_deref(), Some(commit));
        assert_eq!(repo.commit_for(commit).as_deref(), Some(commit));
        assert!(repo.has_file(commit, "config.json"));
        let read = std::fs::read(repo.snapshot_dir(commit).join("config.json")).unwrap();
        assert_eq!(read, b"{}");
    }

    #[test]
    fn full_disk_has_its_own_error() {
        let e = write_error(
            Path::new("/x"),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        assert_eq!(e.code(), crate::ErrorCode::DiskFull);
    }
}
