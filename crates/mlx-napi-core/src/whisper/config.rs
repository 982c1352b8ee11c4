//! Whisper hyper-parameters from either checkpoint layout.
//!
//! * Hugging Face `WhisperForConditionalGeneration`: `config.json` with `d_model`,
//!   `encoder_layers`, `num_mel_bins`, ... (plus `generation_config.json`, whose
//!   `suppress_tokens` / `begin_suppress_tokens` take precedence).
//! * MLX community (mlx-whisper): `config.json` with openai-whisper's
//!   `ModelDimensions` names (`n_mels`, `n_audio_layer`, ...) and an optional
//!   `quantization` block.

use std::path::Path;

use serde_json::Value;

use crate::{
    loading::{config::ids_from_value, read_json, read_json_opt},
    whisper::mel::N_FRAMES,
    Error, Result,
};

/// Which naming scheme the checkpoint's tensors and config use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointLayout {
    HuggingFace,
    Mlx,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WhisperConfig {
    pub n_mels: usize,
    /// Encoder positions (1500 = 3000 mel frames after the stride-2 conv).
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_audio_ffn: usize,
    pub n_vocab: usize,
    /// Decoder positions (448).
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
    pub n_text_ffn: usize,
    /// The checkpoint's list of never-sampled ids, when it has one.
    pub suppress_tokens: Option<Vec<u32>>,
    /// Ids suppressed at the first sampled step, when the checkpoint says.
    pub begin_suppress_tokens: Option<Vec<u32>>,
    /// `(decoder layer, head)` cross-attention heads that track word timing
    /// (`alignment_heads` of `generation_config.json`, or the tensor of that
    /// name in MLX checkpoints); `None` = not given (word timestamps then use
    /// every head of the second half of the decoder layers).
    pub alignment_heads: Option<Vec<(usize, usize)>>,
    pub layout: CheckpointLayout,
}

impl WhisperConfig {
    /// Reads `config.json` (and `generation_config.json` if present) from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let config: Value = read_json(dir, "config.json")?;
        let generation: Option<Value> = read_json_opt(dir, "generation_config.json")?;
        Self::from_json(&config, generation.as_ref()).map_err(|e| match e {
            Error::ModelFormat(m) => Error::format(format!("{}/config.json: {m}", dir.display())),
            other => other,
        })
    }

    pub fn from_json(config: &Value, generation: Option<&Value>) -> Result<Self> {
        if let Some(kind) = config.get("model_type").and_then(Value::as_str) {
            if kind != "whisper" {
                return Err(Error::UnsupportedModel(format!(
                    "model_type {kind:?} is not a Whisper model"
                )));
            }
        }
        let dim = |names: &[&str]| -> Result<usize> {
            for name in names {
                if let Some(v) = config.get(*name) {
                    return v
                        .as_u64()
                        .filter(|&v| v > 0)
                        .map(|v| v as usize)
                        .ok_or_else(|| {
                            Error::format(format!("`{name}` must be a positive integer"))
                        });
                }
            }
            Err(Error::format(format!("missing `{}`", names[0])))
        };
        let mut parsed = if config.get("d_model").is_some() {
            let d_model = dim(&["d_model"])?;
            WhisperConfig {
                n_mels: dim(&["num_mel_bins"])?,
                n_audio_ctx: dim(&["max_source_positions"])?,
                n_audio_state: d_model,
                n_audio_head: dim(&["encoder_attention_heads"])?,
                n_audio_layer: dim(&["encoder_layers"])?,
                n_audio_ffn: dim(&["encoder_ffn_dim"])?,
                n_vocab: dim(&["vocab_size"])?,
                n_text_ctx: dim(&["max_target_positions"])?,
                n_text_state: d_model,
                n_text_head: dim(&["decoder_attention_heads"])?,
                n_text_layer: dim(&["decoder_layers"])?,
                n_text_ffn: dim(&["decoder_ffn_dim"])?,
                suppress_tokens: None,
                begin_suppress_tokens: None,
                alignment_heads: None,
                layout: CheckpointLayout::HuggingFace,
            }
        } else if config.get("n_audio_state").is_some() {
            let n_audio_state = dim(&["n_audio_state"])?;
            let n_text_state = dim(&["n_text_state"])?;
            WhisperConfig {
                n_mels: dim(&["n_mels"])?,
                n_audio_ctx: dim(&["n_audio_ctx"])?,
                n_audio_state,
                n_audio_head: dim(&["n_audio_head"])?,
                n_audio_layer: dim(&["n_audio_layer"])?,
                // openai-whisper's MLP is always 4× wide.
                n_audio_ffn: n_audio_state.saturating_mul(4),
                n_vocab: dim(&["n_vocab"])?,
                n_text_ctx: dim(&["n_text_ctx"])?,
                n_text_state,
                n_text_head: dim(&["n_text_head"])?,
                n_text_layer: dim(&["n_text_layer"])?,
                n_text_ffn: n_text_state.saturating_mul(4),
                suppress_tokens: None,
                begin_suppress_tokens: None,
                alignment_heads: None,
                layout: CheckpointLayout::Mlx,
            }
        } else {
            return Err(Error::format(
                "not a Whisper config: neither `d_model` (Hugging Face) nor `n_audio_state` (MLX)",
            ));
        };
        if let Some(activation) = config.get("activation_function").and_then(Value::as_str) {
            if activation != "gelu" {
                return Err(Error::UnsupportedModel(format!(
                    "activation_function {activation:?} (only \"gelu\")"
                )));
            }
        }
        if config.get("scale_embedding").and_then(Value::as_bool) == Some(true) {
            return Err(Error::UnsupportedModel("scale_embedding = true".into()));
        }
        // generation_config.json holds the maintained copy of these lists.
        let list = |key: &str| -> Option<Vec<u32>> {
            [generation, Some(config)]
                .into_iter()
                .flatten()
                .find_map(|v| v.get(key).filter(|v| v.is_array()))
                .map(|v| ids_from_value(Some(v)))
        };
        parsed.suppress_tokens = list("suppress_tokens");
        parsed.begin_suppress_tokens = list("begin_suppress_tokens");
        parsed.alignment_heads = [generation, Some(config)]
            .into_iter()
            .flatten()
            .find_map(|v| v.get("alignment_heads").filter(|v| v.is_array()))
            .map(super::alignment::heads_from_json)
            .transpose()?;
        parsed.validate()?;
        Ok(parsed)
    }

    fn validate(&self) -> Result<()> {
        // Upper bounds far above any Whisper, checked before anything is sized
        // from them (a forged `vocab_size: 1e12` asked for 24 TB and aborted
        // the process).
        let bounds = [
            ("mel bins", self.n_mels, 1 << 10),
            ("encoder width", self.n_audio_state, 1 << 14),
            ("encoder heads", self.n_audio_head, 1 << 10),
            ("encoder layers", self.n_audio_layer, 1 << 8),
            ("encoder MLP width", self.n_audio_ffn, 1 << 16),
            ("vocabulary", self.n_vocab, 1 << 20),
            ("decoder positions", self.n_text_ctx, 1 << 14),
            ("decoder width", self.n_text_state, 1 << 14),
            ("decoder heads", self.n_text_head, 1 << 10),
            ("decoder layers", self.n_text_layer, 1 << 8),
            ("decoder MLP width", self.n_text_ffn, 1 << 16),
        ];
        for (what, value, max) in bounds {
            if value > max {
                return Err(Error::format(format!(
                    "config.json: {what} {value} is out of range (at most {max})"
                )));
            }
        }
        if !self.n_audio_state.is_multiple_of(self.n_audio_head) {
            return Err(Error::format(format!(
                "encoder width {} is not divisible by its {} heads",
                self.n_audio_state, self.n_audio_head
            )));
        }
        if !self.n_text_state.is_multiple_of(self.n_text_head) {
            return Err(Error::format(format!(
                "decoder width {} is not divisible by its {} heads",
                self.n_text_state, self.n_text_head
            )));
        }
        if let Some(heads) = &self.alignment_heads {
            super::alignment::check_heads(heads, self.n_text_layer, self.n_text_head)?;
        }
        if self.n_audio_ctx * 2 != N_FRAMES {
            return Err(Error::UnsupportedModel(format!(
                "{} encoder positions: only 30 s windows (1500 positions) are supported",
                self.n_audio_ctx
            )));
        }
        if self.n_vocab < 51_864 {
            return Err(Error::UnsupportedModel(format!(
                "vocabulary of {} tokens is smaller than any Whisper tokenizer (51864)",
                self.n_vocab
            )));
        }
        Ok(())
    }

    /// openai-whisper's rule: multilingual checkpoints have 51865+ tokens.
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51_865
    }

    /// Language tokens in the vocabulary (99, or 100 from large-v3 on; 0 for `.en`).
    pub fn num_languages(&self) -> usize {
        if self.is_multilingual() {
            self.n_vocab - 51_765 - 1
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ErrorCode;

    fn mlx_dims() -> Value {
        json!({"n_mels": 128, "n_audio_ctx": 1500, "n_audio_state": 1280, "n_audio_head": 20,
               "n_audio_layer": 32, "n_vocab": 51866, "n_text_ctx": 448, "n_text_state": 1280,
               "n_text_head": 20, "n_text_layer": 4})
    }

    #[test]
    fn parses_mlx_layout() {
        let c = WhisperConfig::from_json(&mlx_dims(), None).unwrap();
        assert_eq!(c.layout, CheckpointLayout::Mlx);
        assert_eq!((c.n_mels, c.n_text_layer, c.n_audio_ffn), (128, 4, 5120));
        assert!(c.is_multilingual());
        assert_eq!(c.num_languages(), 100);
        assert_eq!(c.suppress_tokens, None);
    }

    #[test]
    fn generation_config_lists_win() {
        let config = json!({"model_type": "whisper", "d_model": 384, "encoder_layers": 4,
            "decoder_layers": 4, "encoder_attention_heads": 6, "decoder_attention_heads": 6,
            "encoder_ffn_dim": 1536, "decoder_ffn_dim": 1536, "num_mel_bins": 80,
            "vocab_size": 51864, "max_source_positions": 1500, "max_target_positions": 448,
            "suppress_tokens": [1, 2], "begin_suppress_tokens": [220]});
        let generation = json!({"suppress_tokens": [7], "begin_suppress_tokens": [220, 50256]});
        let c = WhisperConfig::from_json(&config, Some(&generation)).unwrap();
        assert_eq!(c.layout, CheckpointLayout::HuggingFace);
        assert_eq!(c.suppress_tokens, Some(vec![7]));
        assert_eq!(c.begin_suppress_tokens, Some(vec![220, 50256]));
        assert!(!c.is_multilingual());
        let c = WhisperConfig::from_json(&config, None).unwrap();
        assert_eq!(c.suppress_tokens, Some(vec![1, 2]));
    }

    #[test]
    fn rejects_bad_configs() {
        let mut bad = mlx_dims();
        bad["n_audio_head"] = json!(7);
        assert_eq!(
            WhisperConfig::from_json(&bad, None).unwrap_err().code(),
            ErrorCode::ModelFormat
        );
        let mut bad = mlx_dims();
        bad["n_text_layer"] = json!("four");
        assert_eq!(
            WhisperConfig::from_json(&bad, None).unwrap_err().code(),
            ErrorCode::ModelFormat
        );
        let llama = json!({"model_type": "llama", "d_model": 8});
        assert_eq!(
            WhisperConfig::from_json(&llama, None).unwrap_err().code(),
            ErrorCode::UnsupportedModel
        );
        assert_eq!(
            WhisperConfig::from_json(&json!({}), None)
                .unwrap_err()
                .code(),
            ErrorCode::ModelFormat
        );
    }
}
