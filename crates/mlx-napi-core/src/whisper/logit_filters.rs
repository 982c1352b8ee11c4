//! Whisper's logit filters as batched tensor ops on the device.
//!
//! openai-whisper's `SuppressBlank`, `SuppressTokens` and `ApplyTimestampRules`
//! loop over the batch on the host; here every rule is a boolean mask over
//! `[B, V]` built from per-row state that stays on the device
//! ([`TimestampState`]), so a decoding step needs no host data besides the step
//! number (the same for all rows, since a batch shares one prompt length).
//!
//! Rules, in openai-whisper's order:
//! 1. suppress the configured token ids (always) and, at the first sampled
//!    step, the blank token(s) and end-of-text;
//! 2. `<|notimestamps|>` is never sampled in timestamp mode;
//! 3. timestamps come in pairs: after a pair, text (or end) must follow; after a
//!    lone timestamp, another timestamp or end-of-text must follow;
//! 4. timestamps never decrease, and a segment has a nonzero length;
//! 5. the first sampled token is a timestamp no later than `max_initial_timestamp`;
//! 6. when the total probability of the timestamps beats every single text
//!    token, a timestamp is sampled.

use mlx_rs::{
    nn::log_softmax,
    ops::{self, indexing::TryIndexOp},
    Array, Dtype,
};

use crate::Result;

/// Token ids the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleTokens {
    pub eot: u32,
    pub no_timestamps: u32,
    /// First timestamp token (`<|0.00|>`); every id from here on is a timestamp.
    pub timestamp_begin: u32,
}

/// How the filters are configured for one decode (fixed for all its steps).
#[derive(Debug, Clone, PartialEq)]
pub struct FilterOptions {
    pub vocab_size: usize,
    pub tokens: RuleTokens,
    /// Ids never sampled (e.g. the model's `suppress_tokens`).
    pub suppress: Vec<u32>,
    /// Ids suppressed at the first sampled step (the blank `" "` and end-of-text).
    pub suppress_at_begin: Vec<u32>,
    /// Apply the timestamp rules (2–6).
    pub timestamps: bool,
    /// Latest allowed first timestamp, as an index (1.0 s → 50); `None` = no limit.
    pub max_initial_timestamp_index: Option<u32>,
}

/// The filters' constants, built once per decode.
pub struct LogitFilters {
    options: FilterOptions,
    /// `[1, V]` int32 token ids.
    ids: Array,
    /// `[1, V]` bool: suppressed at every step.
    always: Option<Array>,
    /// `[1, V]` bool: additionally suppressed at the first step.
    at_begin: Array,
}

fn id_mask(ids: &[u32], vocab: usize) -> Option<Array> {
    let mut mask = vec![false; vocab];
    let mut any = false;
    for &id in ids {
        if let Some(slot) = mask.get_mut(id as usize) {
            *slot = true;
            any = true;
        }
    }
    any.then(|| Array::from_slice(&mask, &[1, vocab as i32]))
}

impl LogitFilters {
    pub fn new(options: FilterOptions) -> Result<Self> {
        let vocab = options.vocab_size;
        let ids = ops::arange::<_, i32>(0, vocab as i32, None)?.reshape(&[1, vocab as i32])?;
        let always = {
            let mut suppressed = options.suppress.clone();
            if options.timestamps {
                suppressed.push(options.tokens.no_timestamps);
            }
            id_mask(&suppressed, vocab)
        };
        // First step: the blank/EOT suppression, and in timestamp mode only early
        // timestamps may start the text.
        let mut at_begin = id_mask(&options.suppress_at_begin, vocab)
            .unwrap_or_else(|| Array::from_slice(&vec![false; vocab], &[1, vocab as i32]));
        if options.timestamps {
            let tb = options.tokens.timestamp_begin as i32;
            at_begin = at_begin.logical_or(ids.lt(Array::from_int(tb))?)?;
            if let Some(max_index) = options.max_initial_timestamp_index {
                let last_allowed = tb + max_index as i32;
                at_begin = at_begin.logical_or(ids.gt(Array::from_int(last_allowed))?)?;
            }
        }
        Ok(LogitFilters {
            options,
            ids,
            always,
            at_begin,
        })
    }

    pub fn options(&self) -> &FilterOptions {
        &self.options
    }

    /// Filtered float32 logits `[B, V]` for sampled step `step` (0 = the first
    /// token after the prompt). Suppressed entries are −∞.
    pub fn apply(&self, logits: &Array, state: &TimestampState, step: usize) -> Result<Array> {
        let logits = logits.as_dtype(Dtype::Float32)?;
        let neg_inf = Array::from_f32(f32::NEG_INFINITY);
        let mut mask: Option<Array> = self.always.clone();
        let mut add = |m: Array| -> Result<()> {
            mask = Some(match mask.take() {
                Some(old) => old.logical_or(&m)?,
                None => m,
            });
            Ok(())
        };
        if step == 0 {
            add(self.at_begin.clone())?;
        }
        if self.options.timestamps && step > 0 {
            let t = self.options.tokens;
            let is_ts = self.ids.ge(Array::from_int(t.timestamp_begin as i32))?;
            let is_text = self.ids.lt(Array::from_int(t.eot as i32))?;
            let last = state.last_is_timestamp.reshape(&[-1, 1])?;
            let penult = state.penultimate_is_timestamp.reshape(&[-1, 1])?;
            let lone = last.logical_and(penult.logical_not()?)?;
            // Rule 3: a closed pair → no timestamp next; a lone one → no text next.
            add(last.logical_and(&penult)?.logical_and(&is_ts)?)?;
            add(lone.logical_and(&is_text)?)?;
            // Rule 4: no timestamp before the last one (before last + 1 unless it
            // would close a pair, so a segment cannot have zero length).
            let bound = state.last_timestamp.reshape(&[-1, 1])?.add(ops::select(
                &lone,
                Array::from_int(0),
                Array::from_int(1),
            )?)?;
            add(is_ts.logical_and(self.ids.lt(&bound)?)?)?;
        }
        let logits = match mask {
            Some(mask) => ops::select(&mask, &neg_inf, &logits)?,
            None => logits,
        };
        if !self.options.timestamps {
            return Ok(logits);
        }
        // Rule 6, on the distribution left after the masks above.
        let tb = self.options.tokens.timestamp_begin as i32;
        let logprobs = log_softmax(&logits, -1)?;
        let timestamp_mass = logprobs.try_index((.., tb..))?.logsumexp_axis(-1, true)?;
        let best_text = logprobs.try_index((.., ..tb))?.max_axis(-1, true)?;
        let force_timestamp = timestamp_mass
            .gt(&best_text)?
            .logical_and(self.ids.lt(Array::from_int(tb))?)?;
        Ok(ops::select(&force_timestamp, &neg_inf, &logits)?)
    }
}

/// Per-row facts about the sampled tokens that the timestamp rules need,
/// kept on the device and updated from the sampled ids.
pub struct TimestampState {
    timestamp_begin: i32,
    /// `[B]` bool: the last sampled token is a timestamp.
    last_is_timestamp: Array,
    /// `[B]` bool: the one before it is a timestamp, or there is none.
    penultimate_is_timestamp: Array,
    /// `[B]` int32: the last sampled timestamp id (`timestamp_begin − 1` if none).
    last_timestamp: Array,
    sampled: usize,
}

impl TimestampState {
    pub fn new(batch: usize, timestamp_begin: u32) -> Result<Self> {
        let b = batch as i32;
        let tb = timestamp_begin as i32;
        Ok(TimestampState {
            timestamp_begin: tb,
            last_is_timestamp: ops::zeros_dtype(&[b], Dtype::Bool)?,
            penultimate_is_timestamp: ops::ones_dtype(&[b], Dtype::Bool)?,
            last_timestamp: ops::full::<i32>(&[b], Array::from_int(tb - 1))?,
            sampled: 0,
        })
    }

    /// Records the tokens `[B]` sampled at this step.
    pub fn update(&mut self, tokens: &Array) -> Result<()> {
        let tokens = tokens.as_dtype(Dtype::Int32)?;
        let is_ts = tokens.ge(Array::from_int(self.timestamp_begin))?;
        // "No penultimate token" counts as a timestamp (openai-whisper's rule).
        self.penultimate_is_timestamp = if self.sampled == 0 {
            ops::ones_dtype(is_ts.shape(), Dtype::Bool)?
        } else {
            self.last_is_timestamp.clone()
        };
        self.last_timestamp = ops::select(&is_ts, &tokens, &self.last_timestamp)?;
        self.last_is_timestamp = is_ts;
        self.sampled += 1;
        Ok(())
    }

    /// Row `i` takes over row `sources[i]`'s history (beam search).
    pub fn reorder(&mut self, sources: &Array) -> Result<()> {
        self.last_is_timestamp = self.last_is_timestamp.take_axis(sources, 0)?;
        self.penultimate_is_timestamp = self.penultimate_is_timestamp.take_axis(sources, 0)?;
        self.last_timestamp = self.last_timestamp.take_axis(sources, 0)?;
        Ok(())
    }

    /// Tokens recorded so far per row.
    pub fn sampled(&self) -> usize {
        self.sampled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A toy vocabulary: 0..8 text, 8 = EOT, 9 = notimestamps, 10.. timestamps.
    const EOT: u32 = 8;
    const NO_TS: u32 = 9;
    const TB: u32 = 10;
    const VOCAB: usize = 20;

    fn filters(max_initial: Option<u32>) -> LogitFilters {
        LogitFilters::new(FilterOptions {
            vocab_size: VOCAB,
            tokens: RuleTokens {
                eot: EOT,
                no_timestamps: NO_TS,
                timestamp_begin: TB,
            },
            suppress: vec![3],
            suppress_at_begin: vec![1, EOT],
            timestamps: true,
            max_initial_timestamp_index: max_initial,
        })
        .unwrap()
    }

    /// Which ids are still allowed for one row with `history` sampled tokens.
    fn allowed(f: &LogitFilters, history: &[u32], logits: &[f32]) -> Vec<u32> {
        let mut state = TimestampState::new(1, TB).unwrap();
        for &t in history {
            state.update(&Array::from_slice(&[t as i32], &[1])).unwrap();
        }
        let logits = Array::from_slice(logits, &[1, VOCAB as i32]);
        let out = f.apply(&logits, &state, history.len()).unwrap();
        out.eval().unwrap();
        out.as_slice::<f32>()
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, _)| i as u32)
            .collect()
    }

    fn flat() -> Vec<f32> {
        vec![0.0; VOCAB]
    }

    #[test]
    fn first_step_allows_only_early_timestamps() {
        let f = filters(Some(3));
        assert_eq!(allowed(&f, &[], &flat()), vec![10, 11, 12, 13]);
    }

    #[test]
    fn timestamps_pair_then_text() {
        let f = filters(None);
        // After <|0|> <|2|> (a closed pair): text or EOT, never a timestamp.
        let mut logits = flat();
        logits[..8].fill(5.0); // text likely, so rule 6 does not force a timestamp
        let a = allowed(&f, &[10, 2, 12, 12], &logits);
        assert_eq!(a, vec![0, 1, 2, 4, 5, 6, 7, EOT]);
    }

    #[test]
    fn lone_timestamp_needs_a_timestamp_or_end() {
        let f = filters(None);
        // <|0|> text <|2|>: another timestamp ≥ <|2|> (closing the pair) or EOT.
        let mut logits = flat();
        logits[EOT as usize] = 5.0; // EOT likelier than all timestamps together
        let a = allowed(&f, &[10, 2, 12], &logits);
        assert_eq!(a, vec![EOT, 12, 13, 14, 15, 16, 17, 18, 19]);
    }

    #[test]
    fn timestamps_never_decrease_and_segments_are_not_empty() {
        let f = filters(None);
        let mut logits = flat();
        logits[10..].fill(5.0);
        // After <|3|> text: a later timestamp must be strictly after <|3|>.
        let a = allowed(&f, &[13, 2], &logits);
        assert!(a.iter().filter(|&&t| t >= TB).all(|&t| t >= 14), "{a:?}");
        assert!(a.contains(&14));
    }

    #[test]
    fn strong_timestamp_mass_forces_a_timestamp() {
        let f = filters(None);
        // Each timestamp is less likely than text token 0, but together they win.
        let mut logits = flat();
        logits[0] = 2.0;
        logits[10..].fill(0.5);
        let a = allowed(&f, &[10, 2], &logits);
        assert!(a.iter().all(|&t| t >= EOT), "{a:?}");
        // Without the mass of many timestamps, text stays allowed.
        logits[10..].fill(-10.0);
        let a = allowed(&f, &[10, 2], &logits);
        assert!(a.contains(&0), "{a:?}");
    }

    #[test]
    fn suppressed_ids_and_notimestamps_never_appear() {
        let f = filters(None);
        let a = allowed(&f, &[10, 2], &flat());
        assert!(!a.contains(&3) && !a.contains(&NO_TS), "{a:?}");
    }

    #[test]
    fn batch_rows_follow_their_own_history() {
        let f = filters(None);
        let mut state = TimestampState::new(2, TB).unwrap();
        // Row 0: <|0|> "2" <|2|> (lone) ; row 1: <|0|> "2" "4".
        for step in [[10, 10], [2, 2], [12, 4]] {
            state.update(&Array::from_slice(&step, &[2])).unwrap();
        }
        let mut data = [0.0f32; 2 * VOCAB];
        for row in data.chunks_mut(VOCAB) {
            row[..8].fill(5.0);
        }
        let logits = Array::from_slice(&data, &[2, VOCAB as i32]);
        let out = f.apply(&logits, &state, 3).unwrap();
        out.eval().unwrap();
        let v = out.as_slice::<f32>();
        assert!(
            v[0].is_infinite() && v[VOCAB].is_finite(),
            "text: row 0 banned, row 1 allowed"
        );
    }
}
