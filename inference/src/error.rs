//! Error types shared by the models and features. None of them ever carries message text:
//! only counts, indices, limits and structural names (tensor names, file names).

use crate::blob::BlobError;
use crate::config::ConfigError;
use crate::gguf::GgufError;
use crate::tokenize::TokenizeError;

/// A model or tokenizer could not be loaded from its bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The weights container is invalid.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The weights container lacks a file.
    #[error("weights: missing file {0}")]
    MissingFile(String),
    /// The GGUF file is invalid or lacks something.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The safetensors file is invalid.
    #[error("safetensors: {0}")]
    Safetensors(String),
    /// A tensor is missing.
    #[error("missing tensor {0}")]
    MissingTensor(String),
    /// A tensor has an unsupported dtype.
    #[error("tensor {0}: unsupported dtype")]
    Dtype(String),
    /// A tensor's shape is not what the configuration says.
    #[error("tensor {name}: shape {got:?}, expected {expected:?}")]
    Shape {
        /// Tensor name.
        name: String,
        /// Shape found.
        got: Vec<usize>,
        /// Shape the configuration implies.
        expected: Vec<usize>,
    },
    /// The configuration is inconsistent (e.g. hidden size not divisible by heads).
    #[error("model config: {0}")]
    Config(&'static str),
    /// The file names an architecture or chat template this code does not implement.
    #[error(transparent)]
    Unsupported(ConfigError),
    /// A weight matrix's data is malformed (length, partial block, non-finite scale).
    #[error("tensor {name}: {error}")]
    Quant {
        /// Tensor name.
        name: String,
        /// What is wrong with it.
        error: crate::qmat::QError,
    },
    /// The tokenizer could not be built.
    #[error(transparent)]
    Tokenizer(#[from] TokenizeError),
}

impl From<ConfigError> for LoadError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Gguf(e) => Self::Gguf(e),
            ConfigError::Invalid(why) => Self::Config(why),
            e @ ConfigError::Unsupported { .. } => Self::Unsupported(e),
        }
    }
}

/// A feature request was refused or failed. Indices refer to the request's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    /// The thread has no messages, so there is no last message to reply to. (The thread's other
    /// bounds are the protocol's, checked before a feature runs.)
    #[error("empty thread")]
    EmptyThread,
    /// The prompt would be longer than the model input allows.
    #[error("prompt has {tokens} tokens, at most {max} allowed")]
    PromptTooLong {
        /// Tokens the prompt needs.
        tokens: usize,
        /// Limit.
        max: usize,
    },
    /// A parameter is out of range (`k`, `n`, …).
    #[error("parameter {name} = {value} out of range {min}..={max}")]
    BadParameter {
        /// Parameter name.
        name: &'static str,
        /// Value given.
        value: usize,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
    /// Tokenization failed (the text is not reported).
    #[error(transparent)]
    Tokenizer(#[from] TokenizeError),
    /// The backend could not return a tensor's values.
    #[error("backend read failed")]
    Backend,
}
