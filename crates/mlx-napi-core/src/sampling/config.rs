//! Sampling options and their validation.

use crate::{Error, Result};

/// What the sampler does at each step. `Default` is greedy decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// Softmax temperature; 0 = argmax.
    pub temperature: f32,
    /// Keep only the k most likely tokens (k ≥ 1).
    pub top_k: Option<u32>,
    /// Keep the smallest set of tokens whose probability reaches p, in (0, 1].
    pub top_p: Option<f32>,
    /// Drop tokens less likely than `min_p` × the top probability, in [0, 1].
    pub min_p: Option<f32>,
    /// Penalty > 0 applied to the logits of the last `repetition_context_size`
    /// tokens (divide positive logits, multiply negative ones); 1 = off.
    pub repetition_penalty: Option<f32>,
    pub repetition_context_size: usize,
    /// Subtracted once from the logit of every token generated so far.
    pub presence_penalty: f32,
    /// Subtracted from a token's logit for each time it was generated.
    pub frequency_penalty: f32,
    /// Added to the given token ids' logits.
    pub logit_bias: Vec<(u32, f32)>,
    /// Seed of the PRNG; `None` = from the clock.
    pub seed: Option<u64>,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            min_p: None,
            repetition_penalty: None,
            repetition_context_size: 20,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: Vec::new(),
            seed: None,
        }
    }
}

impl SamplerConfig {
    /// Rejects out-of-range options with `ERR_INVALID_ARG`.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        let finite = |name: &str, v: f32| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(Error::invalid(format!(
                    "{name} must be a finite number, got {v}"
                )))
            }
        };
        finite("temperature", self.temperature)?;
        if self.temperature < 0.0 {
            return Err(Error::invalid(format!(
                "temperature must be ≥ 0, got {}",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(Error::invalid("topK must be ≥ 1"));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::invalid(format!("topP must be in (0, 1], got {p}")));
            }
        }
        if let Some(p) = self.min_p {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid(format!("minP must be in [0, 1], got {p}")));
            }
        }
        if let Some(p) = self.repetition_penalty {
            if !(p.is_finite() && p > 0.0) {
                return Err(Error::invalid(format!(
                    "repetitionPenalty must be > 0, got {p}"
                )));
            }
            if self.repetition_context_size == 0 {
                return Err(Error::invalid("repetitionContextSize must be ≥ 1"));
            }
        }
        finite("presencePenalty", self.presence_penalty)?;
        finite("frequencyPenalty", self.frequency_penalty)?;
        for &(id, bias) in &self.logit_bias {
            if id as usize >= vocab_size {
                return Err(Error::invalid(format!(
                    "logitBias token id {id} is outside the vocabulary ({vocab_size})"
                )));
            }
            if bias.is_nan() {
                return Err(Error::invalid(format!("logitBias for token {id} is NaN")));
            }
        }
        Ok(())
    }
}
