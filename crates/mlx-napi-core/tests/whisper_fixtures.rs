//! Whisper network and decoding on random-weight fixtures whose reference
//! outputs come from transformers (scripts/fixtures/make_whisper_fixtures.py),
//! plus the MLX-layout and quantized loading paths.

mod common;
mod npy;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::atomic::AtomicBool,
};

use mlx_napi_core::{
    loading::{DtypeChoice, QuantSpec},
    whisper::{
        beam::{beam_search_batch, BeamOptions},
        decode::{decode_batch, host_reads, DecodeOptions},
        mel::{mel_filters, LogMel, CHUNK_SAMPLES},
        model::Whisper,
        tokenizer::SpecialTokens,
        weights::load_checkpoint,
    },
    ErrorCode,
};
use mlx_rs::{ops, Array};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// tiny.en's special ids (the fixtures use its 51864-token vocabulary).
const SPECIAL: SpecialTokens = SpecialTokens {
    eot: 50256,
    sot: 50257,
    sot_prev: 50360,
    transcribe: 50358,
    translate: 50357,
    no_speech: 50361,
    no_timestamps: 50362,
    timestamp_begin: 50363,
};

/// The fixture script's input: `mel[t, m] = 0.8 sin(0.013 t (m + 1) + 0.1 m)`,
/// `[1, 3000, n_mels]`; `phase` shifts it to make other windows.
fn input_mel(n_mels: usize, phase: f64) -> Array {
    let mut data = Vec::with_capacity(3000 * n_mels);
    for t in 0..3000 {
        for m in 0..n_mels {
            let (t, m) = (t as f64, m as f64);
            data.push((0.8 * (0.013 * t * (m + 1.0) + 0.1 * m + phase).sin()) as f32);
        }
    }
    Array::from_slice(&data, &[1, 3000, n_mels as i32])
}

fn load(dir: &Path) -> Whisper {
    let checkpoint = load_checkpoint(dir, DtypeChoice::Float32, None, |_, _| {}).unwrap();
    Whisper::from_weights(checkpoint.config, checkpoint.tree, checkpoint.dtype).unwrap()
}

fn reference(dir: &Path) -> serde_json::Value {
    common::read_json(&dir.join("reference.json"))
}

/// Checks teacher-forced decoder logits against transformers, feeding the
/// reference tokens one at a time (the KV-cache path) and all at once.
fn check_against_transformers(model: &Whisper, dir: &Path, n_mels: usize) {
    let reference = reference(dir);
    let tokens: Vec<i32> = reference["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap() as i32)
        .collect();
    let ids: Vec<i32> = reference["logit_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap() as i32)
        .collect();
    let (_, expected) = npy::read_npy_f32(&dir.join("logits.npy"));

    let features = model.encode(&input_mel(n_mels, 0.0)).unwrap();
    let (_, encoder_expected) = npy::read_npy_f32(&dir.join("encoder_output.npy"));
    let encoder_diff = common::max_abs_diff(&common::to_vec_f32(&features), &encoder_expected);
    println!("{}: encoder max |diff| {encoder_diff}", dir.display());
    // 3e-3: MLX-layout checkpoints compute the encoder's sinusoids in float32,
    // where the Hugging Face file stores them rounded to float16 (4e-6 otherwise).
    assert!(encoder_diff < 3e-3, "encoder max |diff| {encoder_diff}");

    let id_index = Array::from_slice(&ids, &[ids.len() as i32]);
    let compare = |logits: &Array, row: usize, how: &str| {
        let picked = common::to_vec_f32(&logits.take_axis(&id_index, -1).unwrap());
        let want = &expected[row * ids.len()..(row + 1) * ids.len()];
        let diff = common::max_abs_diff(&picked, want);
        assert!(
            diff < 2e-3,
            "{how} position {row}: logits max |diff| {diff}"
        );
        let argmax = common::to_vec_i32(&ops::indexing::argmax_axis(logits, -1, false).unwrap());
        assert_eq!(
            argmax[0] as i64,
            reference["argmax"][row].as_i64().unwrap(),
            "{how} position {row}"
        );
        let lse = common::to_vec_f32(&logits.logsumexp_axis(-1, false).unwrap())[0];
        let want_lse = reference["logsumexp"][row].as_f64().unwrap() as f32;
        assert!(
            (lse - want_lse).abs() < 2e-3,
            "{how} position {row}: logsumexp {lse} vs {want_lse}"
        );
    };

    let mut state = model.start_decoding(&features).unwrap();
    for (row, &token) in tokens.iter().enumerate() {
        let logits = model
            .decode(&Array::from_slice(&[token], &[1, 1]), &mut state)
            .unwrap();
        compare(&logits.reshape(&[1, -1]).unwrap(), row, "one at a time");
    }
    let mut state = model.start_decoding(&features).unwrap();
    let all = model
        .decode(
            &Array::from_slice(&tokens, &[1, tokens.len() as i32]),
            &mut state,
        )
        .unwrap();
    for row in 0..tokens.len() {
        let logits = all
            .take_axis(Array::from_slice(&[row as i32], &[1]), 1)
            .unwrap()
            .reshape(&[1, -1])
            .unwrap();
        compare(&logits, row, "all at once");
    }
}

#[test]
fn random_80_mel_model_matches_transformers() {
    let dir = fixture("whisper-random-80");
    check_against_transformers(&load(&dir), &dir, 80);
}

#[test]
fn random_128_mel_model_matches_transformers() {
    let dir = fixture("whisper-random-128");
    check_against_transformers(&load(&dir), &dir, 128);
}

/// Half-precision checkpoints must compute in their dtype end to end: a
/// float32 constant anywhere (e.g. inside GELU) would silently promote every
/// later layer to float32 and halve GPU throughput.
#[test]
fn half_precision_models_compute_in_their_dtype() {
    let dir = fixture("whisper-random-80");
    let full = load(&dir);
    let reference = full.encode(&input_mel(80, 0.0)).unwrap();
    for choice in [DtypeChoice::Float16, DtypeChoice::Bfloat16] {
        let checkpoint = load_checkpoint(&dir, choice, None, |_, _| {}).unwrap();
        let dtype = checkpoint.dtype;
        let model = Whisper::from_weights(checkpoint.config, checkpoint.tree, dtype).unwrap();
        let features = model.encode(&input_mel(80, 0.0)).unwrap();
        assert_eq!(features.dtype(), dtype, "encoder output");
        let expected = common::to_vec_f32(&reference);
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = common::max_abs_diff(&common::to_vec_f32(&features), &expected);
        assert!(
            diff < 0.05 * scale,
            "{dtype:?}: max diff {diff} (scale {scale})"
        );
        let mut state = model.start_decoding(&features).unwrap();
        let tokens = Array::from_slice(&[SPECIAL.sot as i32, 50358], &[1, 2]);
        let logits = model.decode(&tokens, &mut state).unwrap();
        assert_eq!(logits.dtype(), dtype, "decoder logits");
    }
}

/// Hugging Face tensor names → mlx-whisper's (the inverse of what the loader does).
fn mlx_name(hf: &str) -> Option<String> {
    let name = hf.strip_prefix("model.")?;
    if name == "decoder.embed_positions.weight" {
        return Some("decoder.positional_embedding".into());
    }
    if name == "encoder.embed_positions.weight" {
        return None; // mlx-whisper computes the sinusoids
    }
    let side = name.split('.').next()?;
    let renamed: Vec<&str> = name
        .split('.')
        .map(|part| match part {
            "layers" => "blocks",
            "self_attn" => "attn",
            "encoder_attn" => "cross_attn",
            "self_attn_layer_norm" => "attn_ln",
            "encoder_attn_layer_norm" => "cross_attn_ln",
            "q_proj" => "query",
            "k_proj" => "key",
            "v_proj" => "value",
            "out_proj" => "out",
            "fc1" => "mlp1",
            "fc2" => "mlp2",
            "final_layer_norm" => "mlp_ln",
            "layer_norm" if side == "encoder" => "ln_post",
            "layer_norm" => "ln",
            "embed_tokens" => "token_embedding",
            other => other,
        })
        .collect();
    Some(renamed.join("."))
}

/// Writes `hf_dir`'s checkpoint in mlx-whisper's layout into `out`, quantizing
/// linear and embedding weights with `quantize` when given; as `weights.npz`
/// (float32, deflated) when `npz`, else `weights.safetensors`.
fn write_mlx_checkpoint(hf_dir: &Path, out: &Path, quantize: Option<QuantSpec>, npz: bool) {
    let config = common::read_json(&hf_dir.join("config.json"));
    let c = |k: &str| config[k].clone();
    let mut mlx_config = serde_json::json!({
        "model_type": "whisper",
        "n_mels": c("num_mel_bins"), "n_audio_ctx": c("max_source_positions"),
        "n_audio_state": c("d_model"), "n_audio_head": c("encoder_attention_heads"),
        "n_audio_layer": c("encoder_layers"), "n_vocab": c("vocab_size"),
        "n_text_ctx": c("max_target_positions"), "n_text_state": c("d_model"),
        "n_text_head": c("decoder_attention_heads"), "n_text_layer": c("decoder_layers"),
    });
    if let Some(q) = quantize {
        mlx_config["quantization"] =
            serde_json::json!({"group_size": q.group_size, "bits": q.bits});
    }
    std::fs::write(out.join("config.json"), mlx_config.to_string()).unwrap();
    let tensors = Array::load_safetensors(hf_dir.join("model.safetensors")).unwrap();
    let mut converted: HashMap<String, Array> = HashMap::new();
    for (name, array) in tensors {
        let Some(new_name) = mlx_name(&name) else {
            continue;
        };
        let array = if name.contains(".conv") && name.ends_with(".weight") {
            array.swap_axes(1, 2).unwrap() // [out, in, k] → [out, k, in]
        } else {
            array
        };
        let quantizable = name.ends_with(".weight")
            && array.ndim() == 2
            && !name.contains("embed_positions")
            && !name.contains("layer_norm");
        match quantize {
            Some(q) if quantizable => {
                let (w, scales, biases) = ops::quantize(&array, q.group_size, q.bits).unwrap();
                let stem = new_name.strip_suffix(".weight").unwrap();
                converted.insert(format!("{stem}.weight"), w);
                converted.insert(format!("{stem}.scales"), scales);
                converted.insert(format!("{stem}.biases"), biases);
            }
            _ => {
                converted.insert(new_name, array);
            }
        }
    }
    if !npz {
        Array::save_safetensors(converted, None, out.join("weights.safetensors")).unwrap();
        return;
    }
    let file = std::fs::File::create(out.join("weights.npz")).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, array) in converted {
        zip.start_file(format!("{name}.npy"), options).unwrap();
        let bytes = npy::npy_f32_bytes(array.shape(), &common::to_vec_f32(&array));
        std::io::Write::write_all(&mut zip, &bytes).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn mlx_layout_checkpoint_loads_the_same_network() {
    let hf = fixture("whisper-random-80");
    let dir = tempfile::tempdir().unwrap();
    write_mlx_checkpoint(&hf, dir.path(), None, false);
    // Same reference outputs: only names, conv layout and config keys differ.
    check_against_transformers(&load(dir.path()), &hf, 80);
}

#[test]
fn npz_checkpoint_loads_the_same_network() {
    let hf = fixture("whisper-random-128");
    let dir = tempfile::tempdir().unwrap();
    write_mlx_checkpoint(&hf, dir.path(), None, true);
    assert!(dir.path().join("weights.npz").is_file());
    check_against_transformers(&load(dir.path()), &hf, 128);
    // A damaged archive is a model-format error.
    let bytes = std::fs::read(dir.path().join("weights.npz")).unwrap();
    std::fs::write(dir.path().join("weights.npz"), &bytes[..bytes.len() / 3]).unwrap();
    let err = load_checkpoint(dir.path(), DtypeChoice::Float32, None, |_, _| {})
        .err()
        .unwrap();
    assert_eq!(err.code(), ErrorCode::ModelFormat, "{err}");
}

#[test]
fn corrupt_checkpoints_fail_with_model_codes() {
    let hf = fixture("whisper-random-80");
    let dir = tempfile::tempdir().unwrap();
    for file in ["config.json", "generation_config.json"] {
        std::fs::copy(hf.join(file), dir.path().join(file)).unwrap();
    }
    // Truncated weights.
    let bytes = std::fs::read(hf.join("model.safetensors")).unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let err = load_checkpoint(dir.path(), DtypeChoice::Float32, None, |_, _| {})
        .err()
        .unwrap();
    assert_eq!(err.code(), ErrorCode::ModelFormat, "{err}");
    // A tensor missing from otherwise valid weights.
    let mut tensors = Array::load_safetensors(hf.join("model.safetensors")).unwrap();
    tensors.remove("model.decoder.layers.1.fc2.bias");
    Array::save_safetensors(tensors, None, dir.path().join("model.safetensors")).unwrap();
    let checkpoint = load_checkpoint(dir.path(), DtypeChoice::Float32, None, |_, _| {}).unwrap();
    let err = Whisper::from_weights(checkpoint.config, checkpoint.tree, checkpoint.dtype)
        .err()
        .unwrap();
    assert_eq!(err.code(), ErrorCode::ModelFormat);
    assert!(
        err.to_string().contains("model.decoder.layers.1.fc2.bias"),
        "{err}"
    );
    // No config at all.
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let err = load_checkpoint(dir.path(), DtypeChoice::Float32, None, |_, _| {})
        .err()
        .unwrap();
    assert_eq!(err.code(), ErrorCode::ModelNotFound, "{err}");
}

fn greedy_options(sample_len: usize, temperature: f32) -> DecodeOptions {
    DecodeOptions {
        temperature,
        sample_len,
        timestamps: true,
        suppress_tokens: vec![1, 2, 7, 8, 9, 10, 14, 25, 50357, 50358, 50359, 50360, 50361],
        begin_suppress_tokens: vec![220, SPECIAL.eot],
        max_initial_timestamp: Some(1.0),
        seed: Some(7),
    }
}

#[test]
fn rows_with_their_own_prompts_decode_as_they_would_alone() {
    let model = load(&fixture("whisper-random-80"));
    let key = mlx_rs::random::key(12).unwrap();
    let features = mlx_rs::random::normal::<f32>(&[3, 1500, 8], None, Some(6.0), &key).unwrap();
    // Prompts of different lengths: a long previous-text context, none, a short one.
    let prompts = vec![
        vec![
            SPECIAL.sot_prev,
            400,
            401,
            402,
            403,
            404,
            405,
            406,
            SPECIAL.sot,
        ],
        vec![SPECIAL.sot],
        vec![SPECIAL.sot_prev, 900, 901, SPECIAL.sot],
    ];
    for options in [greedy_options(20, 0.0), greedy_options(20, 0.7)] {
        let together = decode_batch(
            &model,
            &SPECIAL,
            &features,
            prompts.as_slice(),
            &options,
            None,
        )
        .unwrap();
        for (row, joint) in together.iter().enumerate() {
            let one = features
                .take_axis(Array::from_slice(&[row as i32], &[1]), 0)
                .unwrap();
            let alone =
                decode_batch(&model, &SPECIAL, &one, &prompts[row], &options, None).unwrap();
            if options.temperature == 0.0 {
                assert_eq!(joint.tokens, alone[0].tokens, "row {row}");
                assert!(
                    (joint.sum_logprob - alone[0].sum_logprob).abs() < 1e-3,
                    "row {row}: {} vs {}",
                    joint.sum_logprob,
                    alone[0].sum_logprob
                );
            }
            assert!(
                (joint.no_speech_prob - alone[0].no_speech_prob).abs() < 1e-5,
                "row {row}: {} vs {}",
                joint.no_speech_prob,
                alone[0].no_speech_prob
            );
        }
    }
    // Beam search takes per-row prompts too.
    let beam = BeamOptions {
        beam_size: 3,
        patience: 1.0,
    };
    let options = greedy_options(12, 0.0);
    let together = beam_search_batch(
        &model,
        &SPECIAL,
        &features,
        prompts.as_slice(),
        &options,
        beam,
        None,
    )
    .unwrap();
    for (row, joint) in together.iter().enumerate() {
        let one = features
            .take_axis(Array::from_slice(&[row as i32], &[1]), 0)
            .unwrap();
        let alone =
            beam_search_batch(&model, &SPECIAL, &one, &prompts[row], &options, beam, None).unwrap();
        assert_eq!(joint.tokens, alone[0].tokens, "beam row {row}");
    }
    // A prompt count that does not match the rows is refused.
    let err = decode_batch(
        &model,
        &SPECIAL,
        &features,
        &prompts[..2],
        &greedy_options(4, 0.0),
        None,
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}

#[test]
fn batched_decoding_equals_one_window_at_a_time() {
    let model = load(&fixture("whisper-random-80"));
    // The random decoder depends only weakly on its (layer-normed) encoder
    // output, so strong random audio features make the rows differ.
    let key = mlx_rs::random::key(11).unwrap();
    let features = mlx_rs::random::normal::<f32>(&[3, 1500, 8], None, Some(6.0), &key).unwrap();
    let options = greedy_options(24, 0.0);
    let reads_before = host_reads();
    let together =
        decode_batch(&model, &SPECIAL, &features, &[SPECIAL.sot], &options, None).unwrap();
    let steps = together
        .iter()
        .map(|d| d.tokens.len() + usize::from(d.finished))
        .max()
        .unwrap();
    // One read per step for the whole batch, plus one for the scores.
    assert_eq!(host_reads() - reads_before, steps as u64 + 1);
    for (row, joint) in together.iter().enumerate() {
        let one = features
            .take_axis(Array::from_slice(&[row as i32], &[1]), 0)
            .unwrap();
        let alone = decode_batch(&model, &SPECIAL, &one, &[SPECIAL.sot], &options, None).unwrap();
        assert_eq!(joint.tokens, alone[0].tokens, "row {row}");
        assert!(
            (joint.sum_logprob - alone[0].sum_logprob).abs() < 1e-3,
            "row {row}"
        );
        assert!(
            (joint.no_speech_prob - alone[0].no_speech_prob).abs() < 1e-5,
            "row {row}"
        );
        assert!(joint.avg_logprob < 0.0);
    }
    assert_ne!(
        together[0].tokens, together[1].tokens,
        "different windows, different tokens"
    );
}

/// Whatever a (random) model prefers, sampled sequences obey the timestamp rules.
#[test]
fn sampled_sequences_obey_the_timestamp_rules() {
    let model = load(&fixture("whisper-random-80"));
    let mels = ops::concatenate(
        &[
            input_mel(80, 0.0),
            input_mel(80, 0.7),
            input_mel(80, 1.9),
            input_mel(80, 2.5),
        ],
        0,
    )
    .unwrap();
    let features = model.encode(&mels).unwrap();
    let options = greedy_options(40, 1.0);
    let tb = SPECIAL.timestamp_begin;
    let results =
        decode_batch(&model, &SPECIAL, &features, &[SPECIAL.sot], &options, None).unwrap();
    let mut saw_text = false;
    for result in &results {
        let tokens = &result.tokens;
        assert!(!tokens.is_empty());
        assert!(
            (tb..=tb + 50).contains(&tokens[0]),
            "first token {} must be a timestamp ≤ 1 s",
            tokens[0]
        );
        for (i, &t) in tokens.iter().enumerate() {
            assert!(
                !options.suppress_tokens.contains(&t) && t != SPECIAL.no_timestamps,
                "{tokens:?}"
            );
            if i >= 2 && tokens[i - 1] >= tb && tokens[i - 2] >= tb {
                assert!(
                    t < tb,
                    "a closed timestamp pair must be followed by text: {tokens:?}"
                );
            }
            if i >= 2 && tokens[i - 1] >= tb && tokens[i - 2] < tb {
                assert!(
                    t >= tb,
                    "a lone timestamp must be followed by a timestamp: {tokens:?}"
                );
            }
            saw_text |= t < SPECIAL.eot;
        }
        let stamps: Vec<u32> = tokens.iter().copied().filter(|&t| t >= tb).collect();
        assert!(
            stamps.windows(2).all(|w| w[0] <= w[1]),
            "timestamps decrease: {tokens:?}"
        );
    }
    assert!(saw_text);
}

#[test]
fn decoding_checks_abort_and_arguments() {
    let model = load(&fixture("whisper-random-80"));
    let features = model.encode(&input_mel(80, 0.0)).unwrap();
    let abort = AtomicBool::new(true);
    let err = decode_batch(
        &model,
        &SPECIAL,
        &features,
        &[SPECIAL.sot],
        &greedy_options(8, 0.0),
        Some(&abort),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Aborted);
    let err = decode_batch(
        &model,
        &SPECIAL,
        &features,
        &[1, 2, 3],
        &greedy_options(8, 0.0),
        None,
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    let err = decode_batch(
        &model,
        &SPECIAL,
        &features,
        &[SPECIAL.sot],
        &greedy_options(8, -1.0),
        None,
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    let err = model.encode(&input_mel(128, 0.0)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}

#[test]
fn mel_128_front_end_matches_transformers() {
    let dir = fixture("whisper-frontend-128");
    let (shape, filters) = npy::read_npy_f32(&dir.join("mel_filters_128.npy"));
    assert_eq!(shape, vec![128, 201]);
    let diff = common::max_abs_diff(&mel_filters(16_000, 400, 128), &filters);
    assert!(diff < 1e-6, "filter bank max |diff| {diff}");

    let signal: Vec<f32> = (0..32_000)
        .map(|n| {
            let n = n as f64;
            let tau = 2.0 * std::f64::consts::PI;
            (0.3 * (tau * 440.0 * n / 16_000.0).sin()
                + 0.2 * (tau * 1234.5 * n / 16_000.0).sin() * (tau * 3.0 * n / 16_000.0).cos())
                as f32
        })
        .collect();
    let mel = LogMel::new(128)
        .unwrap()
        .compute(&signal, CHUNK_SAMPLES - signal.len())
        .unwrap();
    assert_eq!(mel.shape(), &[3000, 128]);
    let (shape, expected) = npy::read_npy_f32(&dir.join("logmel_128.npy"));
    assert_eq!(shape, vec![400, 128]);
    let ours = common::to_vec_f32(
        &mel.take_axis(ops::arange::<_, i32>(0, 400, None).unwrap(), 0)
            .unwrap(),
    );
    let diff = common::max_abs_diff(&ours, &expected);
    println!("128-bin log-mel max |diff| {diff}");
    assert!(diff < 1e-4, "log-mel max |diff| {diff}");
}

/// tiny.en written in mlx-whisper's layout with 8-bit weights (and tiny.en
/// quantized at load) decodes nearly like the float model.
#[test]
fn quantized_tiny_en_decodes_like_float() {
    let Some(hf) = common::shared("models/whisper-tiny.en/model.safetensors") else {
        return;
    };
    let hf = hf.parent().unwrap().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let spec = QuantSpec {
        group_size: 64,
        bits: 8,
    };
    write_mlx_checkpoint(&hf, dir.path(), Some(spec), false);
    let float = load(&hf);
    let stored = load(dir.path());
    let at_load = {
        let c = load_checkpoint(&hf, DtypeChoice::Float32, Some(spec), |_, _| {}).unwrap();
        Whisper::from_weights(c.config, c.tree, c.dtype).unwrap()
    };
    // Audio features are an input of the decoder: random ones exercise it without
    // the (slow on CPU) encoder.
    let key = mlx_rs::random::key(3).unwrap();
    let features = mlx_rs::random::normal::<f32>(&[1, 1500, 384], None, None, &key).unwrap();
    let prompt = Array::from_slice(&[50257i32, 50363, 843, 523, 616], &[1, 5]);
    let logits = |model: &Whisper| {
        let mut state = model.start_decoding(&features).unwrap();
        common::to_vec_f32(&model.decode(&prompt, &mut state).unwrap())
    };
    let reference = logits(&float);
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (name, model) in [("stored 8-bit", &stored), ("quantized at load", &at_load)] {
        let got = logits(model);
        let diff = common::max_abs_diff(&got, &reference);
        println!("{name}: max |diff| {diff} (logit scale {scale})");
        assert!(diff < 0.05 * scale, "{name}: max |diff| {diff}");
        let argmax = |v: &[f32]| {
            v.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0
        };
        for row in 0..5 {
            let span = row * 51_864..(row + 1) * 51_864;
            assert_eq!(
                argmax(&got[span.clone()]),
                argmax(&reference[span]),
                "{name} position {row}"
            );
        }
    }
}

#[test]
fn beam_search_is_batched_and_reduces_to_greedy() {
    let model = load(&fixture("whisper-random-80"));
    let key = mlx_rs::random::key(5).unwrap();
    let features = mlx_rs::random::normal::<f32>(&[2, 1500, 8], None, Some(6.0), &key).unwrap();
    let options = greedy_options(16, 0.0);
    let prompt = [SPECIAL.sot];
    // Width 1 is greedy search.
    let greedy = decode_batch(&model, &SPECIAL, &features, &prompt, &options, None).unwrap();
    let narrow = BeamOptions {
        beam_size: 1,
        patience: 1.0,
    };
    let one =
        beam_search_batch(&model, &SPECIAL, &features, &prompt, &options, narrow, None).unwrap();
    for (g, b) in greedy.iter().zip(&one) {
        assert_eq!(g.tokens, b.tokens);
        assert!((g.sum_logprob - b.sum_logprob).abs() < 1e-3, "{g:?} {b:?}");
        assert!((g.no_speech_prob - b.no_speech_prob).abs() < 1e-6);
    }
    // Width 4: two windows together = each alone, one host read per step (+1).
    let wide = BeamOptions {
        beam_size: 4,
        patience: 1.0,
    };
    let before = host_reads();
    let together =
        beam_search_batch(&model, &SPECIAL, &features, &prompt, &options, wide, None).unwrap();
    assert!(host_reads() - before <= 16 + 1);
    for (row, joint) in together.iter().enumerate() {
        let one = features
            .take_axis(Array::from_slice(&[row as i32], &[1]), 0)
            .unwrap();
        let alone =
            beam_search_batch(&model, &SPECIAL, &one, &prompt, &options, wide, None).unwrap();
        assert_eq!(joint.tokens, alone[0].tokens, "row {row}");
        assert!((joint.sum_logprob - alone[0].sum_logprob).abs() < 1e-3);
        // The beam keeps the timestamp rules too.
        let tb = SPECIAL.timestamp_begin;
        assert!(
            (tb..=tb + 50).contains(&joint.tokens[0]),
            "{:?}",
            joint.tokens
        );
    }
    let bad = BeamOptions {
        beam_size: 0,
        patience: 1.0,
    };
    let err =
        beam_search_batch(&model, &SPECIAL, &features, &prompt, &options, bad, None).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    let abort = AtomicBool::new(true);
    let err = beam_search_batch(
        &model,
        &SPECIAL,
        &features,
        &prompt,
        &options,
        wide,
        Some(&abort),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Aborted);
}
