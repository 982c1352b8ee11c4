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
    /// Audio input is empty, corrupt, truncated or not a recognizable container.
    AudioDecode,
    /// Audio input is recognized but uses a codec or layout we cannot decode.
    AudioUnsupported,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Mlx => "ERR_MLX",
            ErrorCode::InvalidArgument => "ERR_INVALID_ARG",
            ErrorCode::Io => "ERR_IO",
            ErrorCode::Aborted => "ABORT_ERR",
            ErrorCode::AudioDecode => "ERR_AUDIO_DECODE",
            ErrorCode::AudioUnsupported => "ERR_AUDIO_UNSUPPORTED",
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
    #[error("cannot decode audio: {0}")]
    AudioDecode(String),
    #[error("unsupported audio: {0}")]
    AudioUnsupported(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Mlx(_) => ErrorCode::Mlx,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::Io { .. } => ErrorCode::Io,
            Error::Aborted => ErrorCode::Aborted,
            Error::AudioDecode(_) => ErrorCode::AudioDecode,
            Error::AudioUnsupported(_) => ErrorCode::AudioUnsupported,
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}

impl From<mlx_rs::error::Exception> for Error {
    fn from(e: mlx_rs::error::Exception) -> Self {
        Error::Mlx(e.what().to_string())
    }
}
