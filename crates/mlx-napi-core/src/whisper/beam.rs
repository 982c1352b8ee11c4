//! Beam search over a batch of windows (openai-whisper's `BeamSearchDecoder`).
//!
//! Each window keeps `beam_size` live hypotheses as rows of one decoder batch
//! (`B × beam_size` rows). Per step the device applies the logit filters,
//! adds each row's running log-probability and picks, per window, the `2 ×
//! beam_size` best (row, token) continuations with a partition — the host
//! reads only those (one read per step), keeps the best `beam_size` that do not
//! end, sets aside the ones that do, and tells the device which rows continue
//! from which (KV caches and timestamp state are reordered by index).
//! A window is done once `round(beam_size × patience)` hypotheses have ended;
//! the result is the best by mean log-probability (openai's default ranking).

use std::sync::atomic::{AtomicBool, Ordering};

use mlx_rs::{
    nn::log_softmax,
    ops::{self, indexing::TryIndexOp},
    Array, Dtype,
};

use super::{
    decode::{
        build_filters, check_request, prefill, to_host, DecodeOptions, DecodedWindow, Prefill,
        Prompts,
    },
    logit_filters::TimestampState,
    model::Whisper,
    tokenizer::SpecialTokens,
};
use crate::{Error, Result};

/// Beam width and how many ended hypotheses to collect before stopping
/// (`round(beam_size × patience)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeamOptions {
    pub beam_size: usize,
    pub patience: f32,
}

#[derive(Debug, Clone)]
struct Hypothesis {
    tokens: Vec<u32>,
    logprob: f32,
    /// Ended with end-of-text (which `tokens` leaves out).
    ended: bool,
}

impl Hypothesis {
    /// openai-whisper's ranking without a length penalty: mean log-probability.
    fn score(&self) -> f32 {
        self.logprob / self.tokens.len().max(1) as f32
    }
}

/// Beam-searches every row of `audio_features` `[B, n_audio_ctx, d]` after
/// its prompt; `options.temperature` is ignored (beam search is deterministic).
pub fn beam_search_batch<'p>(
    model: &Whisper,
    special: &SpecialTokens,
    audio_features: &Array,
    prompts: impl Into<Prompts<'p>>,
    options: &DecodeOptions,
    beam: BeamOptions,
    abort: Option<&AtomicBool>,
) -> Result<Vec<DecodedWindow>> {
    let k = beam.beam_size;
    if !(1..=32).contains(&k) {
        return Err(Error::invalid(format!(
            "beamSize must be in 1..=32, got {k}"
        )));
    }
    if !(beam.patience.is_finite() && beam.patience > 0.0) {
        return Err(Error::invalid(format!(
            "patience must be > 0, got {}",
            beam.patience
        )));
    }
    let max_ended = ((k as f32 * beam.patience).round() as usize).max(1);
    let prompts: Prompts = prompts.into();
    let max_steps = check_request(model, prompts.longest(), options)?;
    let windows = audio_features.dim(0) as usize;
    let rows = windows * k;
    let vocab = model.config().n_vocab;
    let filters = build_filters(vocab, special, options)?;

    // Every window's features repeated for its beams: rows w·k .. w·k + k − 1.
    let repeat: Vec<i32> = (0..rows).map(|r| (r / k) as i32).collect();
    let features = audio_features.take_axis(Array::from_slice(&repeat, &[rows as i32]), 0)?;
    let Prefill {
        mut state,
        mut logits,
        no_speech_prob,
    } = match prompts {
        Prompts::Shared(_) => prefill(model, special, &features, prompts)?,
        Prompts::PerRow(_) => {
            let sources: Vec<usize> = (0..rows).map(|r| r / k).collect();
            let per_beam = prompts.expand(&sources);
            prefill(model, special, &features, Prompts::PerRow(&per_beam))?
        }
    };
    let mut timestamps = TimestampState::new(rows, special.timestamp_begin)?;

    let mut live: Vec<Vec<Hypothesis>> = vec![
        vec![
            Hypothesis {
                tokens: Vec::new(),
                logprob: 0.0,
                ended: false
            };
            k
        ];
        windows
    ];
    let mut ended: Vec<Vec<Hypothesis>> = vec![Vec::new(); windows];
    let mut done = vec![false; windows];
    let candidates = (2 * k).min(k * vocab);
    for step in 0..max_steps {
        if abort.is_some_and(|a| a.load(Ordering::Relaxed)) {
            return Err(Error::Aborted);
        }
        // Running log-probabilities; at the first step all beams are the same
        // hypothesis, so only the first of each window may be extended.
        let running: Vec<f32> = live
            .iter()
            .flat_map(|beams| {
                beams.iter().enumerate().map(move |(i, h)| {
                    if step == 0 && i > 0 {
                        f32::NEG_INFINITY
                    } else {
                        h.logprob
                    }
                })
            })
            .collect();
        let filtered = filters.apply(&logits, &timestamps, step)?;
        let scores = log_softmax(&filtered, -1)?
            .add(Array::from_slice(&running, &[rows as i32, 1]))?
            .reshape(&[windows as i32, (k * vocab) as i32])?;
        let best = ops::argpartition_axis(scores.negative()?, candidates as i32 - 1, -1)?
            .try_index((.., ..candidates as i32))?;
        let best_scores = scores.take_along_axis(&best, -1)?;
        // One read: candidate indices (exact in float32 below 2^24) and scores.
        let both = ops::concatenate(&[best.as_dtype(Dtype::Float32)?, best_scores], -1)?;
        let host = to_host::<f32>(&both)?;

        let mut sources = Vec::with_capacity(rows);
        let mut next_tokens = Vec::with_capacity(rows);
        for w in 0..windows {
            let base = w * k;
            if done[w] {
                sources.extend((base..base + k).map(|r| r as i32));
                next_tokens.extend(std::iter::repeat_n(special.eot as i32, k));
                continue;
            }
            let row = &host[w * 2 * candidates..(w + 1) * 2 * candidates];
            let mut picks: Vec<(usize, f32)> = (0..candidates)
                .map(|i| (row[i] as usize, row[candidates + i]))
                .filter(|(_, score)| score.is_finite())
                .collect();
            picks.sort_by(|a, b| b.1.total_cmp(&a.1));
            let mut next: Vec<(usize, Hypothesis)> = Vec::with_capacity(k);
            for (index, logprob) in picks {
                let (source, token) = (index / vocab, (index % vocab) as u32);
                let parent = &live[w][source];
                if token == special.eot {
                    if ended[w].len() < max_ended {
                        let tokens = parent.tokens.clone();
                        ended[w].push(Hypothesis {
                            tokens,
                            logprob,
                            ended: true,
                        });
                    }
                } else {
                    let mut tokens = parent.tokens.clone();
                    tokens.push(token);
                    next.push((
                        source,
                        Hypothesis {
                            tokens,
                            logprob,
                            ended: false,
                        },
                    ));
                    if next.len() == k {
                        break;
                    }
                }
            }
            if ended[w].len() >= max_ended || next.is_empty() {
                done[w] = true;
                sources.extend((base..base + k).map(|r| r as i32));
                next_tokens.extend(std::iter::repeat_n(special.eot as i32, k));
                continue;
            }
            // Too few continuations (heavily filtered step): pad with dead copies.
            while next.len() < k {
                let (source, first) = next[0].clone();
                next.push((
                    source,
                    Hypothesis {
                        logprob: f32::NEG_INFINITY,
                        ..first
                    },
                ));
            }
            for (source, hypothesis) in &next {
                sources.push((base + source) as i32);
                next_tokens.push(*hypothesis.tokens.last().expect("just pushed") as i32);
            }
            live[w] = next.into_iter().map(|(_, h)| h).collect();
        }
        if done.iter().all(|&d| d) || step + 1 == max_steps {
            break;
        }
        let sources = Array::from_slice(&sources, &[rows as i32]);
        state.reorder(&sources)?;
        timestamps.reorder(&sources)?;
        let tokens = Array::from_slice(&next_tokens, &[rows as i32]);
        timestamps.update(&tokens)?;
        logits = model
            .decode(&tokens.reshape(&[rows as i32, 1])?, &mut state)?
            .try_index((.., -1, ..))?;
    }

    let no_speech = to_host::<f32>(&no_speech_prob)?;
    Ok((0..windows)
        .map(|w| {
            let mut pool = std::mem::take(&mut ended[w]);
            // Fewer ended than beams: the best live ones compete too (openai).
            if pool.len() < k {
                let mut rest: Vec<Hypothesis> = live[w]
                    .iter()
                    .filter(|h| h.logprob.is_finite())
                    .cloned()
                    .collect();
                rest.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));
                pool.extend(rest.into_iter().take(k - pool.len()));
            }
            let best = pool
                .into_iter()
                .max_by(|a, b| a.score().total_cmp(&b.score()))
                .unwrap_or(Hypothesis {
                    tokens: Vec::new(),
                    logprob: 0.0,
                    ended: false,
                });
            DecodedWindow {
                avg_logprob: best.logprob / (best.tokens.len() + 1) as f32,
                sum_logprob: best.logprob,
                no_speech_prob: no_speech[w * k],
                temperature: 0.0,
                finished: best.ended,
                tokens: best.tokens,
            }
        })
        .collect())
}
