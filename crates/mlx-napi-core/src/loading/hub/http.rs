//! The three Hub routes we use, over `ureq` (blocking, rustls):
//!
//! * `GET  /api/models/{repo}/revision/{rev}`  → commit sha + file list
//! * `HEAD /{repo}/resolve/{commit}/{file}`     → ETag (X-Linked-Etag for LFS),
//!   size (X-Linked-Size / Content-Length), X-Repo-Commit; redirects not followed
//! * `GET  /{repo}/resolve/{commit}/{file}` with `Range: bytes=N-` → the bytes
//!   (redirects to the CDN followed; the token is not sent to other hosts)
//!
//! HTTP failures become coded errors the way `huggingface_hub` reads them: the
//! `X-Error-Code` header first (RepoNotFound, RevisionNotFound, EntryNotFound,
//! GatedRepo), then the status.

use std::time::Duration;

use ureq::{
    config::RedirectAuthHeaders,
    http::{HeaderMap, Response},
    Agent, Body,
};

use crate::{Error, Result};

pub struct Client {
    /// Follows redirects (file bytes, possibly on a CDN).
    agent: Agent,
    /// Follows none (metadata: the LFS headers are on the redirect itself).
    no_redirect: Agent,
    endpoint: String,
    token: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct RepoInfo {
    pub sha: String,
    #[serde(default)]
    pub siblings: Vec<Sibling>,
}

#[derive(Debug, serde::Deserialize)]
pub struct Sibling {
    pub rfilename: String,
}

#[derive(Debug, Clone)]
pub struct FileMeta {
    /// Quotes and `W/` removed; a sha256 for LFS files, a git blob sha1 otherwise.
    pub etag: String,
    pub size: u64,
}

/// An open download: its body, and whether the server honoured the range.
pub struct Download {
    pub body: Body,
    pub ranged: bool,
}

impl Client {
    pub fn new(endpoint: &str, token: Option<String>) -> Self {
        let agent = |redirects: u32| {
            Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(redirects)
                .max_redirects_will_error(false)
                .redirect_auth_headers(RedirectAuthHeaders::SameHost)
                .timeout_connect(Some(Duration::from_secs(15)))
                .timeout_recv_response(Some(Duration::from_secs(60)))
                // A stalled transfer fails (and is resumed) instead of hanging.
                .timeout_per_read(Some(Duration::from_secs(60)))
                .user_agent(concat!("mlx-napi/", env!("CARGO_PKG_VERSION")))
                .build()
                .new_agent()
        };
        Client {
            agent: agent(10),
            no_redirect: agent(0),
            endpoint: endpoint.to_string(),
            token,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn auth(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    pub fn repo_info(&self, repo_id: &str, revision: &str) -> Result<RepoInfo> {
        let url = format!(
            "{}/api/models/{repo_id}/revision/{}",
            self.endpoint,
            encode(revision)
        );
        let what = format!("model {repo_id:?} (revision {revision})");
        let mut req = self.agent.get(&url);
        if let Some(auth) = self.auth() {
            req = req.header("Authorization", auth);
        }
        let mut response = req.call().map_err(|e| transport_error(&url, e))?;
        self.check(&response, &what)?;
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| transport_error(&url, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Network(format!("{url}: unexpected answer from the Hub: {e}")))
    }

    pub fn file_meta(&self, repo_id: &str, commit: &str, file: &str) -> Result<FileMeta> {
        let mut url = self.resolve_url(repo_id, commit, file);
        let what = format!("{file} of {repo_id:?} (commit {commit})");
        // Relative redirects (a renamed repo) are followed; absolute ones (the
        // CDN) are not: the hub puts the LFS ETag and size on the redirect.
        for _ in 0..5 {
            let mut req = self
                .no_redirect
                .head(&url)
                .header("Accept-Encoding", "identity");
            if let Some(auth) = self.auth() {
                req = req.header("Authorization", auth);
            }
            let response = req.call().map_err(|e| transport_error(&url, e))?;
            self.check(&response, &what)?;
            let headers = response.headers();
            let status = response.status().as_u16();
            if (300..400).contains(&status) {
                if let Some(location) = header(headers, "location").filter(|l| l.starts_with('/')) {
                    if header(headers, "x-linked-etag").is_none() {
                        url = format!("{}{location}", origin(&self.endpoint));
                        continue;
                    }
                }
            }
            let etag = header(headers, "x-linked-etag")
                .or_else(|| header(headers, "etag"))
                .map(normalize_etag)
                .filter(|e| !e.is_empty())
                .ok_or_else(|| Error::Network(format!("{url}: the Hub sent no ETag")))?;
            let size = header(headers, "x-linked-size")
                .or_else(|| header(headers, "content-length"))
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| Error::Network(format!("{url}: the Hub sent no file size")))?;
            return Ok(FileMeta { etag, size });
        }
        Err(Error::Network(format!("{url}: too many redirects")))
    }

    /// Opens `file` from byte `start` on.
    pub fn open(&self, repo_id: &str, commit: &str, file: &str, start: u64) -> Result<Download> {
        let url = self.resolve_url(repo_id, commit, file);
        let what = format!("{file} of {repo_id:?} (commit {commit})");
        let mut req = self.agent.get(&url).header("Accept-Encoding", "identity");
        if start > 0 {
            req = req.header("Range", format!("bytes={start}-"));
        }
        if let Some(auth) = self.auth() {
            req = req.header("Authorization", auth);
        }
        let response = req.call().map_err(|e| transport_error(&url, e))?;
        let status = response.status().as_u16();
        if status == 416 && start > 0 {
            // The partial file does not fit this file: start over.
            return self.open(repo_id, commit, file, 0);
        }
        self.check(&response, &what)?;
        Ok(Download {
            ranged: status == 206,
            body: response.into_body(),
        })
    }

    fn resolve_url(&self, repo_id: &str, commit: &str, file: &str) -> String {
        let file: Vec<String> = file.split('/').map(encode).collect();
        format!(
            "{}/{repo_id}/resolve/{}/{}",
            self.endpoint,
            encode(commit),
            file.join("/")
        )
    }

    fn check(&self, response: &Response<Body>, what: &str) -> Result<()> {
        let status = response.status().as_u16();
        if status < 400 {
            return Ok(());
        }
        Err(status_error(
            status,
            response.headers(),
            what,
            &self.endpoint,
            self.token.is_some(),
        ))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn normalize_etag(raw: &str) -> String {
    raw.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

/// `scheme://host[:port]` of an endpoint (which may carry a path prefix).
fn origin(endpoint: &str) -> &str {
    let after_scheme = endpoint.find("://").map(|i| i + 3).unwrap_or(0);
    match endpoint[after_scheme..].find('/') {
        Some(i) => &endpoint[..after_scheme + i],
        None => endpoint,
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (so a
/// revision such as `refs/pr/1` is one path segment, as the Hub expects).
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn status_error(
    status: u16,
    headers: &HeaderMap,
    what: &str,
    endpoint: &str,
    has_token: bool,
) -> Error {
    let hint = if has_token {
        "check that your token (HF_TOKEN) grants access to it"
    } else {
        "if it is private or gated, set HF_TOKEN to a token that grants access"
    };
    let server = header(headers, "x-error-message")
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    match header(headers, "x-error-code") {
        Some("GatedRepo") => {
            return Error::HubAuth(format!(
                "{what} is gated on {endpoint}: accept its conditions on the model page; \
                 {hint}{server}"
            ))
        }
        Some("RepoNotFound") => {
            return Error::ModelNotFound(format!(
                "{what} was not found on {endpoint}; {hint}{server}"
            ))
        }
        Some("RevisionNotFound") => {
            return Error::ModelNotFound(format!("{what}: no such revision on {endpoint}{server}"))
        }
        Some("EntryNotFound") => {
            return Error::ModelNotFound(format!("{what}: no such file on {endpoint}{server}"))
        }
        _ => {}
    }
    match status {
        401 | 403 => Error::HubAuth(format!(
            "{what}: access denied by {endpoint} (HTTP {status}); {hint}{server}"
        )),
        404 => Error::ModelNotFound(format!(
            "{what} was not found on {endpoint} (HTTP 404){server}"
        )),
        _ => Error::Network(format!("{what}: {endpoint} answered HTTP {status}{server}")),
    }
}

pub fn transport_error(url: &str, e: ureq::Error) -> Error {
    Error::Network(format!("cannot reach {url}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::http::HeaderValue;

    #[test]
    fn encodes_revisions_and_origins() {
        assert_eq!(encode("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode("v1.0_a-b~"), "v1.0_a-b~");
        assert_eq!(
            origin("http://127.0.0.1:8080/prefix"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(origin("https://huggingface.co"), "https://huggingface.co");
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
    }

    #[test]
    fn statuses_map_to_codes() {
        use crate::ErrorCode::*;
        let none = HeaderMap::new();
        let code = |s, h: &HeaderMap| status_error(s, h, "m", "e", false).code();
        assert_eq!(code(404, &none), ModelNotFound);
        assert_eq!(code(401, &none), HubAuth);
        assert_eq!(code(403, &none), HubAuth);
        assert_eq!(code(500, &none), Network);
        let mut gated = HeaderMap::new();
        gated.insert("x-error-code", HeaderValue::from_static("GatedRepo"));
        assert_eq!(code(401, &gated), HubAuth);
        let mut missing = HeaderMap::new();
        missing.insert("x-error-code", HeaderValue::from_static("RepoNotFound"));
        assert_eq!(code(401, &missing), ModelNotFound);
    }
}
