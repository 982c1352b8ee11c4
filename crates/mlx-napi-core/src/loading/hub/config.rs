//! Where the Hub is and how to reach it: explicit options first, then the
//! environment variables `huggingface_hub` reads, so both share one cache.

use std::path::PathBuf;

/// Hub settings a caller may pass; anything left `None` comes from the environment.
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// Branch, tag or commit (default `main`, or the `@rev` of `owner/name@rev`).
    pub revision: Option<String>,
    /// Hub base URL (default `HF_ENDPOINT`, else `https://huggingface.co`).
    pub endpoint: Option<String>,
    /// Access token (default `HF_TOKEN`, else the token file `huggingface-cli login` wrote).
    pub token: Option<String>,
    /// Cache root holding `models--owner--name` folders (default `HF_HUB_CACHE`,
    /// else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    pub cache_dir: Option<PathBuf>,
    /// Cache only, never the network (default `HF_HUB_OFFLINE`).
    pub offline: Option<bool>,
}

/// [`HubOptions`] with every default filled in.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub endpoint: String,
    pub token: Option<String>,
    pub cache_dir: PathBuf,
    pub offline: bool,
}

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

impl HubConfig {
    pub fn resolve(options: &HubOptions) -> Self {
        let endpoint = options
            .endpoint
            .clone()
            .or_else(|| env("HF_ENDPOINT"))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
            .trim_end_matches('/')
            .to_string();
        let token = options
            .token
            .clone()
            .or_else(|| env("HF_TOKEN"))
            .or_else(|| env("HUGGING_FACE_HUB_TOKEN"))
            .or_else(token_file)
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().to_string());
        let cache_dir = options.cache_dir.clone().unwrap_or_else(cache_root);
        let offline = options
            .offline
            .unwrap_or_else(|| env("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v)));
        HubConfig {
            endpoint,
            token,
            cache_dir,
            offline,
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `huggingface_hub`'s reading of boolean variables.
fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
fn hf_home() -> PathBuf {
    if let Some(home) = env("HF_HOME") {
        return PathBuf::from(home);
    }
    if let Some(xdg) = env("XDG_CACHE_HOME") {
        return PathBuf::from(xdg).join("huggingface");
    }
    let home = env("HOME")
        .or_else(|| env("USERPROFILE"))
        .unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".cache").join("huggingface")
}

/// The hub cache root, as `huggingface_hub` computes it.
pub fn cache_root() -> PathBuf {
    env("HF_HUB_CACHE")
        .or_else(|| env("HUGGINGFACE_HUB_CACHE"))
        .map(PathBuf::from)
        .unwrap_or_else(|| hf_home().join("hub"))
}

fn token_file() -> Option<String> {
    let path = env("HF_TOKEN_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| hf_home().join("token"));
    // A token is tens of bytes; the cap keeps a mistaken path harmless.
    crate::loading::files::read_text_capped(&path, 64 * 1024).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_options_win_and_endpoint_is_trimmed() {
        let config = HubConfig::resolve(&HubOptions {
            endpoint: Some("http://127.0.0.1:9/".into()),
            token: Some(" t ".into()),
            cache_dir: Some("/tmp/x".into()),
            offline: Some(true),
            revision: None,
        });
        assert_eq!(config.endpoint, "http://127.0.0.1:9");
        assert_eq!(config.token.as_deref(), Some("t"));
        assert_eq!(config.cache_dir, PathBuf::from("/tmp/x"));
        assert!(config.offline);
    }

    #[test]
    fn booleans_read_like_huggingface_hub() {
        for v in ["1", "on", "YES", "true"] {
            assert!(truthy(v), "{v}");
        }
        for v in ["0", "off", "", "no"] {
            assert!(!truthy(v), "{v}");
        }
    }
}
