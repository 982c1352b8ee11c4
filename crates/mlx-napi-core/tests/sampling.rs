mod common;

use common::{to_vec_f32, to_vec_i32};
use mlx_napi_core::sampling::{AllowedTokens, Sampler, SamplerConfig};
use mlx_rs::Array;

/// Logits `[1, V]` from log-probabilities of the given distribution.
fn logits_of(probs: &[f32]) -> Array {
    let logs: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
    Array::from_slice(&logs, &[1, probs.len() as i32])
}

fn draw_counts(config: SamplerConfig, logits: &Array, draws: usize) -> Vec<usize> {
    let vocab = logits.dim(-1) as usize;
    let mut sampler = Sampler::new(config, vocab, 1, &[]).unwrap();
    let mut counts = vec![0; vocab];
    for _ in 0..draws {
        let t = to_vec_i32(&sampler.sample(logits).unwrap())[0];
        counts[t as usize] += 1;
    }
    counts
}

fn cfg(temperature: f32, seed: u64) -> SamplerConfig {
    SamplerConfig {
        temperature,
        seed: Some(seed),
        ..SamplerConfig::default()
    }
}

#[test]
fn temperature_zero_is_argmax_per_row() {
    let logits = Array::from_slice(&[0.1f32, 3.0, -1.0, 2.0, 5.0, 7.0, 0.0, 1.0], &[2, 4]);
    let mut sampler = Sampler::new(SamplerConfig::default(), 4, 2, &[]).unwrap();
    assert_eq!(to_vec_i32(&sampler.sample(&logits).unwrap()), vec![1, 1]);
}

#[test]
fn seeds_reproduce_and_differ() {
    let logits = logits_of(&[0.1; 10]);
    let run = |seed| {
        let mut s = Sampler::new(cfg(1.0, seed), 10, 1, &[]).unwrap();
        (0..40)
            .map(|_| to_vec_i32(&s.sample(&logits).unwrap())[0])
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn sampling_follows_the_distribution() {
    let counts = draw_counts(cfg(1.0, 1), &logits_of(&[0.7, 0.2, 0.1]), 600);
    assert!((counts[0] as f32 / 600.0 - 0.7).abs() < 0.08, "{counts:?}");
    assert!((counts[2] as f32 / 600.0 - 0.1).abs() < 0.06, "{counts:?}");
}

#[test]
fn top_p_never_leaves_the_nucleus() {
    // Nucleus for p = 0.6: {0 (0.4), 1 (0.25)} — the token crossing p is kept.
    let probs = [0.4, 0.25, 0.15, 0.1, 0.06, 0.04];
    let config = SamplerConfig {
        top_p: Some(0.6),
        ..cfg(1.0, 3)
    };
    let counts = draw_counts(config, &logits_of(&probs), 400);
    assert_eq!(counts[2..].iter().sum::<usize>(), 0, "{counts:?}");
    assert!(counts[0] > 0 && counts[1] > 0, "{counts:?}");
}

#[test]
fn top_k_keeps_k_tokens() {
    let config = SamplerConfig {
        top_k: Some(2),
        ..cfg(2.0, 4)
    };
    let counts = draw_counts(config, &logits_of(&[0.1, 0.3, 0.05, 0.5, 0.05]), 300);
    assert_eq!(counts[0] + counts[2] + counts[4], 0, "{counts:?}");
    assert!(counts[1] > 0 && counts[3] > 0);
}

#[test]
fn top_k_then_top_p_samples_the_nucleus_of_the_k_best() {
    // Top-3 = {0, 1, 2} renormalised to 0.5, 0.3125, 0.1875; its p = 0.6
    // nucleus is {0, 1}. Rows also come out in the right vocabulary slots.
    let probs = [0.04, 0.4, 0.06, 0.25, 0.1, 0.15];
    let config = SamplerConfig {
        top_k: Some(3),
        top_p: Some(0.6),
        ..cfg(1.0, 6)
    };
    let counts = draw_counts(config, &logits_of(&probs), 400);
    assert_eq!(
        counts[0] + counts[2] + counts[4] + counts[5],
        0,
        "{counts:?}"
    );
    assert!(counts[1] > counts[3] && counts[3] > 0, "{counts:?}");
}

#[test]
fn top_k_batched_rows_pick_their_own_tokens() {
    let rows = [[0.7f32, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]];
    let logs: Vec<f32> = rows.iter().flatten().map(|p| p.ln()).collect();
    let logits = Array::from_slice(&logs, &[2, 4]);
    let config = SamplerConfig {
        top_k: Some(1),
        ..cfg(1.0, 7)
    };
    let mut sampler = Sampler::new(config, 4, 2, &[]).unwrap();
    for _ in 0..20 {
        assert_eq!(to_vec_i32(&sampler.sample(&logits).unwrap()), vec![0, 3]);
    }
}

#[test]
fn min_p_threshold_is_respected() {
    // min_p 0.3 of top 0.5 = 0.15: tokens at 0.1 are dropped, 0.2 kept.
    let config = SamplerConfig {
        min_p: Some(0.3),
        ..cfg(1.0, 5)
    };
    let counts = draw_counts(config, &logits_of(&[0.5, 0.2, 0.1, 0.1, 0.1]), 400);
    assert_eq!(counts[2] + counts[3] + counts[4], 0, "{counts:?}");
    assert!(counts[1] > 0);
}

#[test]
fn penalties_change_exactly_the_penalized_ids() {
    let vocab = 8;
    let raw = [2.0f32, -1.0, 0.5, 3.0, -2.0, 1.0, 0.0, 4.0];
    let logits = Array::from_slice(&raw, &[1, vocab]);
    let config = SamplerConfig {
        repetition_penalty: Some(2.0),
        repetition_context_size: 3,
        logit_bias: vec![(6, 1.5)],
        ..SamplerConfig::default()
    };
    // Context [5, 1, 3, 3]: the window (size 3) holds 1, 3, 3.
    let sampler = Sampler::new(config, vocab as usize, 1, &[&[5, 1, 3, 3]]).unwrap();
    let after = to_vec_f32(&sampler.process(&logits).unwrap());
    let mut expected = raw.to_vec();
    expected[1] = -2.0; // negative: multiplied
    expected[3] = 1.5; // positive: divided (once, despite appearing twice)
    expected[6] = 1.5; // bias
    assert_eq!(after, expected);

    // Presence/frequency: counts of generated tokens, kept on device.
    let config = SamplerConfig {
        presence_penalty: 0.5,
        frequency_penalty: 0.25,
        ..SamplerConfig::default()
    };
    let mut sampler = Sampler::new(config, vocab as usize, 1, &[]).unwrap();
    sampler.observe(&Array::from_slice(&[7i32], &[1])).unwrap();
    sampler.observe(&Array::from_slice(&[7i32], &[1])).unwrap();
    sampler.observe(&Array::from_slice(&[2i32], &[1])).unwrap();
    let after = to_vec_f32(&sampler.process(&logits).unwrap());
    let mut expected = raw.to_vec();
    expected[7] -= 0.5 + 2.0 * 0.25;
    expected[2] -= 0.5 + 0.25;
    assert_eq!(after, expected);
    // Greedy sampling now avoids the penalized former argmax (7 → 3).
    assert_eq!(to_vec_i32(&sampler.sample(&logits).unwrap()), vec![3]);
}

#[test]
fn repetition_window_slides_with_generated_tokens() {
    let vocab = 6;
    let logits = Array::from_slice(&[1f32; 6], &[1, vocab]);
    let config = SamplerConfig {
        repetition_penalty: Some(2.0),
        repetition_context_size: 2,
        ..SamplerConfig::default()
    };
    let mut sampler = Sampler::new(config, vocab as usize, 1, &[&[0]]).unwrap();
    sampler.observe(&Array::from_slice(&[1i32], &[1])).unwrap();
    sampler.observe(&Array::from_slice(&[2i32], &[1])).unwrap();
    // Window of 2 now holds 1, 2 (0 slid out).
    assert_eq!(
        to_vec_f32(&sampler.process(&logits).unwrap()),
        vec![1.0, 0.5, 0.5, 1.0, 1.0, 1.0]
    );
}

#[test]
fn batched_rows_are_independent() {
    let logits = Array::from_slice(&[10f32, 0.0, 0.0, 0.0, 0.0, 10.0], &[2, 3]);
    let mut sampler = Sampler::new(cfg(0.5, 9), 3, 2, &[]).unwrap();
    for _ in 0..5 {
        assert_eq!(to_vec_i32(&sampler.sample(&logits).unwrap()), vec![0, 2]);
    }
}

#[test]
fn invalid_options_are_rejected() {
    let bad = [
        SamplerConfig {
            temperature: -0.1,
            ..Default::default()
        },
        SamplerConfig {
            temperature: f32::NAN,
            ..Default::default()
        },
        SamplerConfig {
            top_k: Some(0),
            ..Default::default()
        },
        SamplerConfig {
            top_p: Some(0.0),
            ..Default::default()
        },
        SamplerConfig {
            top_p: Some(1.5),
            ..Default::default()
        },
        SamplerConfig {
            min_p: Some(-0.5),
            ..Default::default()
        },
        SamplerConfig {
            repetition_penalty: Some(0.0),
            ..Default::default()
        },
        SamplerConfig {
            logit_bias: vec![(99, 1.0)],
            ..Default::default()
        },
    ];
    for config in bad {
        let err = Sampler::new(config.clone(), 10, 1, &[]).err().unwrap();
        assert_eq!(err.code().as_str(), "ERR_INVALID_ARG", "{config:?}");
    }
    let mut s = Sampler::new(SamplerConfig::default(), 10, 1, &[]).unwrap();
    assert_eq!(
        s.sample(&Array::from_slice(&[0f32; 5], &[1, 5]))
            .unwrap_err()
            .code()
            .as_str(),
        "ERR_INVALID_ARG"
    );
}

#[test]
fn a_constraint_mask_is_never_crossed() {
    // The mask allows only the two least likely tokens: every mode (greedy,
    // temperature, top-k, top-p, min-p, penalties) must draw among them, and
    // log-probabilities are those of the masked distribution.
    let probs = [0.5, 0.3, 0.1, 0.06, 0.04];
    // Bits 3 and 4 of one word.
    let mask = AllowedTokens::from_bits(&[0b11000], 5).unwrap();
    let configs = [
        cfg(0.0, 1),
        cfg(1.5, 2),
        SamplerConfig {
            top_k: Some(2),
            ..cfg(1.0, 3)
        },
        SamplerConfig {
            top_p: Some(0.5),
            ..cfg(1.0, 4)
        },
        SamplerConfig {
            min_p: Some(0.9),
            ..cfg(1.0, 5)
        },
        SamplerConfig {
            repetition_penalty: Some(1.5),
            presence_penalty: 1.0,
            ..cfg(1.0, 6)
        },
    ];
    for config in configs {
        let shown = format!("{config:?}");
        let mut sampler = Sampler::new(config, 5, 1, &[]).unwrap();
        let mut seen = [0usize; 5];
        for _ in 0..100 {
            let (t, packed) = sampler
                .sample_masked(&logits_of(&probs), Some(&mask), Some(0))
                .unwrap();
            let t = to_vec_i32(&t)[0] as usize;
            seen[t] += 1;
            let lp = to_vec_f32(&packed.unwrap())[1];
            assert!(lp.is_finite() && lp <= 0.0, "{shown}: logprob {lp}");
        }
        assert_eq!(seen[..3].iter().sum::<usize>(), 0, "{shown}: {seen:?}");
    }
}

#[test]
fn the_compiled_draw_draws_what_the_eager_one_does() {
    // Same seed, same logits: the compiled chain (draw.rs) must pick exactly
    // the eager chain's tokens, for every filter combination, batched, and
    // for each batch shape it meets (a new shape traces again).
    let vocab = 512;
    let logits_for = |rows: i32, seed: u64| {
        mlx_rs::random::normal::<f32>(
            &[rows, vocab],
            None,
            None,
            &mlx_rs::random::key(seed).unwrap(),
        )
        .unwrap()
        .multiply(Array::from_f32(3.0))
        .unwrap()
    };
    let filters = [
        (None, None, None),
        (Some(40), None, None),
        (None, Some(0.9), None),
        (None, None, Some(0.05)),
        (Some(40), Some(0.9), Some(0.05)),
    ];
    for (top_k, top_p, min_p) in filters {
        for rows in [1, 3] {
            let config = SamplerConfig {
                top_k,
                top_p,
                min_p,
                repetition_penalty: Some(1.1),
                ..cfg(0.8, 11)
            };
            let run = |compiled: bool| {
                let mut sampler = Sampler::new(config.clone(), vocab as usize, rows as usize, &[])
                    .unwrap()
                    .with_compiled_draw(compiled);
                assert_eq!(sampler.draw_is_compiled(), compiled);
                (0..12)
                    .flat_map(|step| to_vec_i32(&sampler.sample(&logits_for(rows, step)).unwrap()))
                    .collect::<Vec<_>>()
            };
            let eager = run(false);
            assert_eq!(
                run(true),
                eager,
                "top_k {top_k:?} top_p {top_p:?} min_p {min_p:?} rows {rows}"
            );
            // Not a constant: the draws vary.
            assert!(eager.iter().any(|&t| t != eager[0]));
        }
    }
    // Greedy has no chain to compile.
    let greedy = Sampler::new(cfg(0.0, 1), vocab as usize, 1, &[])
        .unwrap()
        .with_compiled_draw(true);
    assert!(!greedy.draw_is_compiled());
}
