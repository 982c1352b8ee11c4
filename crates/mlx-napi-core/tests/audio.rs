//! Audio decoding and resampling against the clips in ../shared/audio.

mod common;

use std::path::PathBuf;

use mlx_napi_core::{
    audio::{self, decode_bytes, decode_file, AudioInput},
    ErrorCode,
};

/// The clip's path, or `None` after printing why the test is skipped.
fn clip(name: &str) -> Option<PathBuf> {
    common::shared(&format!("audio/{name}"))
}

/// (file, samples at the source rate per the README, rate, channels, tolerance in ms)
const CLIPS: &[(&str, usize, u32, usize, f64)] = &[
    ("jfk.wav", 176_000, 16_000, 1, 0.0),
    ("jfk.mp3", 176_000, 16_000, 1, 2.0),
    (
        "librivox/sense_and_sensibility_01_austen_64kb-0870.wav",
        113_600,
        16_000,
        1,
        0.0,
    ),
    (
        "librivox/sense_and_sensibility_01_austen_64kb-0880.wav",
        47_840,
        16_000,
        1,
        0.0,
    ),
    (
        "librivox/sense_and_sensibility_01_austen_64kb-0890.wav",
        84_800,
        16_000,
        1,
        0.0,
    ),
    (
        "librivox/sense_and_sensibility_01_austen_64kb-0920.wav",
        96_800,
        16_000,
        1,
        0.0,
    ),
    (
        "librivox/sense_and_sensibility_01_austen_64kb-0930.wav",
        52_640,
        16_000,
        1,
        0.0,
    ),
    ("Front_Center.wav", 68_545, 48_000, 1, 0.0),
    ("Noise.wav", 67_579, 48_000, 1, 0.0),
    ("lena.wav", 541_184, 44_100, 1, 0.0),
    ("lena.flac", 541_184, 44_100, 1, 0.0),
    ("lena.mp3", 541_184, 44_100, 1, 2.0),
    ("lena.ogg", 541_184, 44_100, 1, 2.0),
    ("lena.opus", 589_044, 48_000, 1, 2.0),
    // The edit list's duration is in milliseconds: 12.271 s = 541151 samples.
    ("lena.m4a", 541_184, 44_100, 2, 1.0),
];

#[test]
fn every_shared_clip_decodes_with_the_documented_length() {
    for &(name, samples, rate, channels, tolerance_ms) in CLIPS {
        let Some(path) = clip(name) else { continue };
        let audio = decode_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(audio.sample_rate, rate, "{name}");
        assert_eq!(audio.channels, channels, "{name}");
        let diff_ms = (audio.samples.len() as f64 - samples as f64).abs() / f64::from(rate) * 1e3;
        assert!(
            diff_ms <= tolerance_ms,
            "{name}: {} samples, expected {samples} (±{tolerance_ms} ms)",
            audio.samples.len()
        );
        let peak = audio.samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!(peak > 0.01 && peak <= 1.0, "{name}: peak {peak}");
    }
}

#[test]
fn wav_samples_are_scaled_int16() {
    let Some(path) = clip("jfk.wav") else { return };
    let bytes = std::fs::read(&path).unwrap();
    let audio = decode_file(&path).unwrap();
    let data = bytes.windows(4).position(|w| w == b"data").unwrap() + 8;
    for i in [0usize, 1000, 88_000, 175_999] {
        let raw = i16::from_le_bytes([bytes[data + 2 * i], bytes[data + 2 * i + 1]]);
        assert_eq!(audio.samples[i], f32::from(raw) / 32768.0, "sample {i}");
    }
}

/// Pearson correlation of the overlapping prefix.
fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mean = |x: &[f32]| x.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt()
}

#[test]
fn lossy_lena_formats_match_the_wav_after_resampling() {
    let Some(wav) = clip("lena.wav") else { return };
    let reference = audio::load_mono(AudioInput::File(wav), 16_000).unwrap();
    for name in ["lena.mp3", "lena.ogg", "lena.opus", "lena.m4a", "lena.flac"] {
        let Some(path) = clip(name) else { continue };
        let native = decode_file(&path).unwrap();
        let decoded = audio::resample(&native.samples, native.sample_rate, 16_000).unwrap();
        assert!(
            (decoded.len() as i64 - reference.len() as i64).abs() <= 800,
            "{name}: {} vs {}",
            decoded.len(),
            reference.len()
        );
        let r = correlation(&decoded, &reference);
        assert!(r >= 0.99, "{name}: correlation {r}");
    }
}

#[test]
fn resamples_48k_clip_to_16k() {
    let Some(path) = clip("Front_Center.wav") else {
        return;
    };
    let samples = audio::load_mono(AudioInput::File(path), 16_000).unwrap();
    // faster-whisper's FFmpeg resampler gives 22848 samples for this clip.
    assert_eq!(samples.len(), 22_848);
}

#[test]
fn encoded_buffer_decodes_like_the_file() {
    for name in ["jfk.mp3", "lena.m4a", "lena.opus"] {
        let Some(path) = clip(name) else { continue };
        let from_file = decode_file(&path).unwrap();
        let from_bytes = decode_bytes(std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(from_file.samples, from_bytes.samples, "{name}");
        assert_eq!(from_file.channels, from_bytes.channels, "{name}");
    }
}

#[test]
fn pcm_input_is_resampled_and_validated() {
    let pcm = vec![0.25f32; 48_000];
    let out = audio::load_mono(
        AudioInput::Pcm {
            samples: pcm,
            sample_rate: 48_000,
        },
        16_000,
    )
    .unwrap();
    assert_eq!(out.len(), 16_000);
    assert!((out[8_000] - 0.25).abs() < 1e-3);
    let bad = AudioInput::Pcm {
        samples: vec![0.0, f32::NAN],
        sample_rate: 16_000,
    };
    assert_eq!(
        audio::load_mono(bad, 16_000).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    let zero_rate = AudioInput::Pcm {
        samples: vec![0.0; 4],
        sample_rate: 0,
    };
    assert_eq!(
        audio::load_mono(zero_rate, 16_000).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn empty_and_garbage_input_fail_with_decode_code() {
    let err = decode_bytes(Vec::new()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::AudioDecode, "{err}");
    let garbage: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let err = decode_bytes(garbage).unwrap_err();
    assert_eq!(err.code(), ErrorCode::AudioDecode, "{err}");

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let err = decode_file(&empty).unwrap_err();
    assert_eq!(err.code(), ErrorCode::AudioDecode, "{err}");
    assert!(err.to_string().contains("empty"), "{err}");

    let err = decode_file(dir.path().join("missing.wav")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Io, "{err}");
}

#[test]
fn truncated_files_fail_with_decode_code() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "jfk.wav",
        "lena.flac",
        "lena.m4a",
        "lena.ogg",
        "lena.opus",
        "jfk.mp3",
    ] {
        let Some(path) = clip(name) else { continue };
        let bytes = std::fs::read(&path).unwrap();
        let file_name = path.file_name().unwrap();
        // Cut inside the header, and cut the payload in half.
        for keep in [20, bytes.len() / 2] {
            let cut = dir.path().join(file_name);
            std::fs::write(&cut, &bytes[..keep]).unwrap();
            match decode_file(&cut) {
                Err(err) => assert_eq!(
                    err.code(),
                    ErrorCode::AudioDecode,
                    "{name}[..{keep}]: {err}"
                ),
                Ok(audio) => panic!(
                    "{name} cut to {keep} bytes decoded {} samples without error",
                    audio.samples.len()
                ),
            }
        }
    }
}

#[test]
fn corrupt_payload_is_rejected_or_bounded() {
    // A valid WAV header followed by a data chunk of the wrong size is still PCM; but a
    // FLAC whose frames are overwritten with noise must fail with the decode code.
    let Some(path) = clip("lena.flac") else {
        return;
    };
    let mut bytes = std::fs::read(&path).unwrap();
    let start = 8_192;
    for (i, b) in bytes[start..].iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8;
    }
    let err = decode_bytes(bytes).unwrap_err();
    assert_eq!(err.code(), ErrorCode::AudioDecode, "{err}");
}

/// A WAV header for `format_tag` with one second of zeroed 16-bit mono data.
fn wav_with_format(format_tag: u16) -> Vec<u8> {
    let data_len = 32_000u32;
    let mut out = Vec::new();
    out.extend(b"RIFF");
    out.extend((36 + data_len).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend(16u32.to_le_bytes());
    out.extend(format_tag.to_le_bytes());
    out.extend(1u16.to_le_bytes()); // channels
    out.extend(16_000u32.to_le_bytes()); // sample rate
    out.extend(32_000u32.to_le_bytes()); // byte rate
    out.extend(2u16.to_le_bytes()); // block align
    out.extend(16u16.to_le_bytes()); // bits per sample
    out.extend(b"data");
    out.extend(data_len.to_le_bytes());
    out.resize(out.len() + data_len as usize, 0);
    out
}

#[test]
fn unknown_codecs_fail_with_unsupported_code() {
    // Sanity: the same header with PCM (tag 1) decodes.
    let pcm = decode_bytes(wav_with_format(1)).unwrap();
    assert_eq!((pcm.samples.len(), pcm.sample_rate), (16_000, 16_000));
    // 0x0161 is Windows Media Audio: a real codec nobody here decodes.
    let err = decode_bytes(wav_with_format(0x0161)).unwrap_err();
    assert!(
        matches!(err.code(), ErrorCode::AudioUnsupported),
        "{:?}: {err}",
        err.code()
    );
    assert!(err.to_string().contains("unsupported"), "{err}");
}
