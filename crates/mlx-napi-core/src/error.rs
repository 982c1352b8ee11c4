//! One error type for the whole core. Every variant maps to a stable string code
//! that the addon puts on the JS `Error` (`err.code`), so callers can branch on it.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Stable, documented codes surfaced to JavaScript as `err.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// MLX raised an exception (shape mismatch, out of memory, bad dtype...).
    Mlx,
    /// An option or argument is out of range or of the wrong kind.
    InvalidArgument,
    /// A file could not be read.
    Io,
    /// The work was cancelled through an AbortSignal.
    Aborted,
    /// No model at the given path / repo id (or a required file of it is missing).
    ModelNotFound,
    /// A model file exists but is malformed: bad JSON, truncated or corrupt
    /// safetensors, missing or mis-shaped tensors.
    ModelFormat,
    /// The model is well formed but of an architecture or variant we do not run.
    UnsupportedModel,
    /// The tokenizer or chat template failed (load, encode, decode, render).
    Tokenizer,
    /// The model (or session) was disposed before or while the call ran.
    Disposed,
    /// Audio input is empty, corrupt, truncated or not a recognizable container.
    AudioDecode,
    /// Audio input is recognized but uses a codec or layout we cannot decode.
    AudioUnsupported,
    /// The Hugging Face Hub refused access: a gated or private repo (HTTP 401 /
    /// 403) without a token that grants it.
    HubAuth,
    /// The Hub (or its CDN) could not be reached or broke off the transfer.
    Network,
    /// Offline mode (`HF_HUB_OFFLINE=1` / `offline: true`) and the model is not
    /// in the local cache.
    Offline,
    /// A downloaded file does not match the size or hash the Hub announced.
    Integrity,
    /// The disk (or quota) is full while writing to the model cache.
    DiskFull,
    /// An argument or option has the wrong JS type (a `TypeError`).
    InvalidArgType,
    /// The prompt (plus the tokens to generate) does not fit the model's context.
    PromptTooLong,
    /// A `responseFormat` JSON schema that does not compile or cannot be satisfied.
    InvalidSchema,
    /// A `grammar` (Lark or regex) that does not compile or cannot be matched.
    InvalidGrammar,
    /// The backend self-test computed a result outside its tolerance.
    SelfTestFailed,
    /// A bug: the core panicked. The call fails; the model keeps serving.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Mlx => "ERR_MLX",
            ErrorCode::InvalidArgument => "ERR_INVALID_ARG",
            ErrorCode::Io => "ERR_IO",
            ErrorCode::Aborted => "ABORT_ERR",
            ErrorCode::ModelNotFound => "ERR_MODEL_NOT_FOUND",
            ErrorCode::ModelFormat => "ERR_MODEL_FORMAT",
            ErrorCode::UnsupportedModel => "ERR_UNSUPPORTED_MODEL",
            ErrorCode::Tokenizer => "ERR_TOKENIZER",
            ErrorCode::Disposed => "ERR_DISPOSED",
            ErrorCode::AudioDecode => "ERR_AUDIO_DECODE",
            ErrorCode::AudioUnsupported => "ERR_AUDIO_UNSUPPORTED",
            ErrorCode::HubAuth => "ERR_HUB_AUTH",
            ErrorCode::Network => "ERR_NETWORK",
            ErrorCode::Offline => "ERR_OFFLINE",
            ErrorCode::Integrity => "ERR_INTEGRITY",
            ErrorCode::DiskFull => "ERR_DISK_FULL",
            ErrorCode::InvalidArgType => "ERR_INVALID_ARG_TYPE",
            ErrorCode::PromptTooLong => "ERR_PROMPT_TOO_LONG",
            ErrorCode::InvalidSchema => "ERR_INVALID_SCHEMA",
            ErrorCode::InvalidGrammar => "ERR_INVALID_GRAMMAR",
            ErrorCode::SelfTestFailed => "ERR_SELF_TEST_FAILED",
            ErrorCode::Internal => "ERR_INTERNAL",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("MLX error: {0}")]
    Mlx(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the operation was aborted")]
    Aborted,
    #[error("{0}")]
    ModelNotFound(String),
    #[error("{0}")]
    ModelFormat(String),
    #[error("{0}")]
    UnsupportedModel(String),
    #[error("{0}")]
    Tokenizer(String),
    #[error("the model was disposed")]
    Disposed,
    #[error("cannot decode audio: {0}")]
    AudioDecode(String),
    #[error("unsupported audio: {0}")]
    AudioUnsupported(String),
    #[error("{0}")]
    HubAuth(String),
    #[error("{0}")]
    Network(String),
    #[error("{0}")]
    Offline(String),
    #[error("{0}")]
    Integrity(String),
    #[error("{0}")]
    DiskFull(String),
    #[error("{0}")]
    InvalidArgType(String),
    #[error("{0}")]
    PromptTooLong(String),
    /// A `responseFormat` schema that llguidance cannot compile, or that no
    /// output can satisfy.
    #[error("{0}")]
    InvalidSchema(String),
    /// A `grammar` (Lark or regex) that does not compile or cannot be matched.
    #[error("{0}")]
    InvalidGrammar(String),
    #[error("{0}")]
    SelfTestFailed(String),
    #[error("internal error (please report it): {0}")]
    Internal(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Mlx(_) => ErrorCode::Mlx,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::Io { .. } => ErrorCode::Io,
            Error::Aborted => ErrorCode::Aborted,
            Error::ModelNotFound(_) => ErrorCode::ModelNotFound,
            Error::ModelFormat(_) => ErrorCode::ModelFormat,
            Error::UnsupportedModel(_) => ErrorCode::UnsupportedModel,
            Error::Tokenizer(_) => ErrorCode::Tokenizer,
            Error::Disposed => ErrorCode::Disposed,
            Error::AudioDecode(_) => ErrorCode::AudioDecode,
            Error::AudioUnsupported(_) => ErrorCode::AudioUnsupported,
            Error::HubAuth(_) => ErrorCode::HubAuth,
            Error::Network(_) => ErrorCode::Network,
            Error::Offline(_) => ErrorCode::Offline,
            Error::Integrity(_) => ErrorCode::Integrity,
            Error::DiskFull(_) => ErrorCode::DiskFull,
            Error::InvalidArgType(_) => ErrorCode::InvalidArgType,
            Error::PromptTooLong(_) => ErrorCode::PromptTooLong,
            Error::InvalidSchema(_) => ErrorCode::InvalidSchema,
            Error::InvalidGrammar(_) => ErrorCode::InvalidGrammar,
            Error::SelfTestFailed(_) => ErrorCode::SelfTestFailed,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    pub fn format(msg: impl Into<String>) -> Self {
        Error::ModelFormat(msg.into())
    }

    /// A caught panic (`std::panic::catch_unwind`'s payload) as `ERR_INTERNAL`.
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        Error::Internal(why)
    }

    /// Runs `work`, turning a panic into `ERR_INTERNAL`.
    pub fn catch_panic<T>(work: impl FnOnce() -> Result<T>) -> Result<T> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .unwrap_or_else(|p| Err(Error::from_panic(p)))
    }

    /// The same error again (one failure reported to several callers, e.g.
    /// every row of a batch step that failed).
    pub fn duplicate(&self) -> Self {
        match self {
            Error::Mlx(m) => Error::Mlx(m.clone()),
            Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
            Error::Io { context, source } => Error::Io {
                context: context.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::Aborted => Error::Aborted,
            Error::ModelNotFound(m) => Error::ModelNotFound(m.clone()),
            Error::ModelFormat(m) => Error::ModelFormat(m.clone()),
            Error::UnsupportedModel(m) => Error::UnsupportedModel(m.clone()),
            Error::Tokenizer(m) => Error::Tokenizer(m.clone()),
            Error::Disposed => Error::Disposed,
            Error::AudioDecode(m) => Error::AudioDecode(m.clone()),
            Error::AudioUnsupported(m) => Error::AudioUnsupported(m.clone()),
            Error::HubAuth(m) => Error::HubAuth(m.clone()),
            Error::Network(m) => Error::Network(m.clone()),
            Error::Offline(m) => Error::Offline(m.clone()),
            Error::Integrity(m) => Error::Integrity(m.clone()),
            Error::DiskFull(m) => Error::DiskFull(m.clone()),
            Error::InvalidArgType(m) => Error::InvalidArgType(m.clone()),
            Error::PromptTooLong(m) => Error::PromptTooLong(m.clone()),
            Error::InvalidSchema(m) => Error::InvalidSchema(m.clone()),
            Error::InvalidGrammar(m) => Error::InvalidGrammar(m.clone()),
            Error::SelfTestFailed(m) => Error::SelfTestFailed(m.clone()),
            Error::Internal(m) => Error::Internal(m.clone()),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<mlx_rs::error::Exception> for Error {
    fn from(e: mlx_rs::error::Exception) -> Self {
        Error::Mlx(e.what().to_string())
    }
}
