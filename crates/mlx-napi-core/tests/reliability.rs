//! Regression tests of issue #10 (no input may crash, hang or exhaust the
//! host), at the core level: bounded and regular-only file reads, config
//! bounds checked before allocating, panicking audio headers, PCM range,
//! the self-test's tolerance and the prompt-length rule.

mod common;

use std::{io::Write, os::unix::fs::symlink, path::Path, process::Command, time::Instant};

use mlx_napi_core::{
    audio::{self, AudioInput},
    backend,
    llm::{GenerateOptions, Llm, LoadOptions, Prompt},
    loading::{self, files},
    whisper::config::WhisperConfig,
    ErrorCode,
};
use mlx_rs::Dtype;

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

fn wav_header(rate: u32, data: &[u8]) -> Vec<u8> {
    let mut out = b"RIFF".to_vec();
    out.extend((36 + data.len() as u32).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend(16u32.to_le_bytes());
    out.extend(1u16.to_le_bytes()); // PCM
    out.extend(1u16.to_le_bytes()); // mono
    out.extend(rate.to_le_bytes());
    out.extend((rate * 2).to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(16u16.to_le_bytes());
    out.extend(b"data");
    out.extend((data.len() as u32).to_le_bytes());
    out.extend(data);
    out
}

#[test]
fn config_linked_to_dev_zero_is_refused_without_reading() {
    let dir = tempfile::tempdir().unwrap();
    symlink("/dev/zero", dir.path().join("config.json")).unwrap();
    let err = loading::read_json::<serde_json::Value>(dir.path(), "config.json").unwrap_err();
    assert_eq!(err.code(), ErrorCode::Io, "{err}");
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn fifo_model_file_and_audio_path_do_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("config.json");
    mkfifo(&fifo);
    let start = Instant::now();
    let err = loading::read_json::<serde_json::Value>(dir.path(), "config.json").unwrap_err();
    assert_eq!(err.code(), ErrorCode::Io);
    let err = audio::decode_file(&fifo).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Io);
    let err = loading::safetensors::read_header(&fifo).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Io);
    // Not a timing assertion on speed: a blocked open would never return.
    assert!(start.elapsed().as_secs() < 60);
}

#[test]
fn oversized_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(files::MAX_CONFIG_BYTES + 1).unwrap(); // sparse
    let err = loading::read_json::<serde_json::Value>(dir.path(), "config.json").unwrap_err();
    assert_eq!(err.code(), ErrorCode::Io);
    assert!(err.to_string().contains("limit"), "{err}");
    let small = dir.path().join("small.txt");
    std::fs::File::create(&small)
        .unwrap()
        .write_all(b"0123456789")
        .unwrap();
    assert_eq!(files::read_capped(&small, 10).unwrap().len(), 10);
    assert_eq!(
        files::read_capped(&small, 9).unwrap_err().code(),
        ErrorCode::Io
    );
}

#[test]
fn whisper_config_sizes_are_bounded_before_allocating() {
    let base = serde_json::json!({
        "model_type": "whisper", "d_model": 384, "num_mel_bins": 80,
        "max_source_positions": 1500, "encoder_attention_heads": 6, "encoder_layers": 4,
        "encoder_ffn_dim": 1536, "vocab_size": 51864, "max_target_positions": 448,
        "decoder_attention_heads": 6, "decoder_layers": 4, "decoder_ffn_dim": 1536,
    });
    WhisperConfig::from_json(&base, None).unwrap();
    for (key, value) in [
        ("vocab_size", serde_json::json!(1_000_000_000_000u64)),
        ("vocab_size", serde_json::json!(1e12)),
        ("d_model", serde_json::json!(1u64 << 40)),
        ("encoder_layers", serde_json::json!(1_000_000)),
        ("num_mel_bins", serde_json::json!(1_000_000_000)),
        ("max_target_positions", serde_json::json!(1u64 << 62)),
    ] {
        let mut config = base.clone();
        config[key] = value.clone();
        let err = WhisperConfig::from_json(&config, None).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ModelFormat, "{key}={value}: {err}");
    }
}

#[test]
fn safetensors_shapes_cannot_overflow_past_the_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let header = br#"{"w":{"dtype":"F32","shape":[1099511627776,1099511627776,1048576],"data_offsets":[0,0]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    std::fs::write(&path, bytes).unwrap();
    let err = loading::safetensors::read_header(&path).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ModelFormat, "{err}");
}

#[test]
fn zero_hz_wav_and_zero_timescale_m4a_are_decode_errors_not_panics() {
    // The 46-byte WAV of the report: 0 Hz, 2 data bytes.
    let wav = wav_header(0, &[0, 0]);
    assert_eq!(wav.len(), 46);
    let err = audio::decode_bytes(wav).unwrap_err();
    assert_eq!(err.code(), ErrorCode::AudioDecode, "{err}");
    let Some(m4a) = common::shared("audio/lena.m4a") else {
        return;
    };
    let mut bytes = std::fs::read(m4a).unwrap();
    let at = bytes.windows(4).position(|w| w == b"mdhd").unwrap();
    bytes[at + 16..at + 20].copy_from_slice(&[0; 4]);
    let err = audio::decode_bytes(bytes).unwrap_err();
    assert_eq!(err.code(), ErrorCode::AudioDecode, "{err}");
}

#[test]
fn pcm_out_of_range_is_rejected_and_small_overs_clipped() {
    let loud = AudioInput::Pcm {
        samples: vec![1e30; 16_000],
        sample_rate: 16_000,
    };
    assert_eq!(
        audio::load_mono(loud, 16_000).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    let int16 = AudioInput::Pcm {
        samples: vec![12_000.0; 16_000],
        sample_rate: 16_000,
    };
    let err = audio::load_mono(int16, 16_000).unwrap_err();
    assert!(err.to_string().contains("32768"), "{err}");
    let over = AudioInput::Pcm {
        samples: vec![1.5, -1.2, 0.5],
        sample_rate: 16_000,
    };
    assert_eq!(
        audio::load_mono(over, 16_000).unwrap(),
        vec![1.0, -1.0, 0.5]
    );
}

#[test]
fn self_test_fails_beyond_its_dtype_tolerance() {
    let tolerance = backend::self_test_tolerance(Dtype::Bfloat16);
    assert!(tolerance < 0.12, "a 12 % error must fail");
    let report = backend::self_test(256, Dtype::Float32).unwrap();
    assert!(report.relative_error <= backend::self_test_tolerance(Dtype::Float32));
    // Either it passes within its tolerance, or it is a coded failure.
    match backend::self_test(2048, Dtype::Bfloat16) {
        Ok(r) => assert!(r.relative_error <= tolerance),
        Err(e) => assert_eq!(e.code(), ErrorCode::SelfTestFailed),
    }
}

/// A copy of the SmolLM2 folder (links) whose config.json is patched.
fn smollm2_with(patch: impl FnOnce(&mut serde_json::Value)) -> Option<tempfile::TempDir> {
    let dir = common::smollm2_dir()?;
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "config.json" {
            symlink(entry.path(), tmp.path().join(entry.file_name())).unwrap();
        }
    }
    let mut config = common::read_json(&dir.join("config.json"));
    patch(&mut config);
    std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
    Some(tmp)
}

#[test]
fn prompt_longer_than_the_context_is_a_coded_error() {
    // The report's case (9,000 tokens, 8,192-token model) on a config whose
    // context is 64 positions, so that the test prefills little.
    let Some(dir) = smollm2_with(|c| c["max_position_embeddings"] = 64.into()) else {
        return;
    };
    let llm = Llm::load(dir.path().to_str().unwrap(), LoadOptions::default()).unwrap();
    let generate = |len: usize, max_tokens: usize| {
        let prompt = vec![28u32; len];
        let options = GenerateOptions {
            max_tokens,
            ignore_eos: true,
            ..Default::default()
        };
        llm.generate(Prompt::Tokens(&prompt), &options, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })
    };
    for len in [9000, 64] {
        let err = generate(len, 1).unwrap_err();
        assert_eq!(err.code(), ErrorCode::PromptTooLong, "{err}");
    }
    // Near the end of the context, generation stops at it ("length").
    let r = generate(62, 50).unwrap();
    assert_eq!(r.token_ids.len(), 2);
}

#[test]
fn llm_config_sizes_are_bounded() {
    let Some(dir) = smollm2_with(|c| {
        c["vocab_size"] = 4_000_000_000u64.into();
        c["hidden_size"] = (1u64 << 30).into();
    }) else {
        return;
    };
    let err = Llm::load(dir.path().to_str().unwrap(), LoadOptions::default())
        .err()
        .unwrap();
    assert_eq!(err.code(), ErrorCode::ModelFormat, "{err}");
}

#[test]
fn whisper_encoder_stops_between_layers_once_aborted() {
    let Some(dir) = common::shared("models/whisper-tiny.en") else {
        return;
    };
    let engine = mlx_napi_core::whisper::WhisperEngine::load_dir(&dir, Default::default()).unwrap();
    let config = engine.model().config().clone();
    let mel = mlx_rs::ops::zeros::<f32>(&[1, 2 * config.n_audio_ctx as i32, config.n_mels as i32])
        .unwrap();
    let raised = std::sync::atomic::AtomicBool::new(true);
    let err = engine
        .model()
        .encode_abortable(&mel, Some(&raised))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Aborted);
    let lowered = std::sync::atomic::AtomicBool::new(false);
    let features = engine
        .model()
        .encode_abortable(&mel, Some(&lowered))
        .unwrap();
    assert_eq!(features.shape()[1], config.n_audio_ctx as i32);
}
