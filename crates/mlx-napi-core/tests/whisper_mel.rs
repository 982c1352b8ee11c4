//! Whisper's log-mel front end against mlx-whisper's output in ../shared/reference.

mod common;
mod npy;

use mlx_napi_core::{
    audio::decode_file,
    whisper::mel::{mel_filters, window_frames, LogMel, CHUNK_SAMPLES, N_FRAMES},
};

#[test]
fn filter_bank_matches_librosa_slaney() {
    let Some(path) = common::shared("reference/mel_filters_80.npy") else {
        return;
    };
    let (shape, reference) = npy::read_npy_f32(&path);
    assert_eq!(shape, vec![80, 201]);
    let ours = mel_filters(16_000, 400, 80);
    let diff = common::max_abs_diff(&ours, &reference);
    println!("filter bank max |diff| {diff}");
    assert!(diff <= 1e-6, "max |diff| {diff}");
}

#[test]
fn log_mel_of_jfk_matches_mlx_whisper() {
    let Some(npy) = common::shared("reference/whisper-logmel-jfk.npy") else {
        return;
    };
    let Some(wav) = common::shared("audio/jfk.wav") else {
        return;
    };
    let (shape, reference) = npy::read_npy_f32(&npy);
    assert_eq!(shape, vec![3000, 80]);
    let samples = decode_file(&wav).unwrap().samples;
    let mel = LogMel::new(80)
        .unwrap()
        .compute(&samples, CHUNK_SAMPLES)
        .unwrap();
    assert_eq!(mel.shape(), &[4100, 80]);
    let first_window = window_frames(&mel, 0, N_FRAMES).unwrap();
    first_window.eval().unwrap();
    let diff = common::max_abs_diff(first_window.as_slice::<f32>(), &reference);
    println!("log-mel max |diff| {diff}");
    assert!(diff <= 1e-4, "max |diff| {diff}");
}

#[test]
fn transcription_window_zero_fills_after_content() {
    let Some(wav) = common::shared("audio/jfk.wav") else {
        return;
    };
    let samples = decode_file(&wav).unwrap().samples;
    let mel = LogMel::new(80)
        .unwrap()
        .compute(&samples, CHUNK_SAMPLES)
        .unwrap();
    let content = samples.len() / 160;
    let window = window_frames(&mel, 0, content).unwrap();
    window.eval().unwrap();
    assert_eq!(window.shape(), &[3000, 80]);
    let data = window.as_slice::<f32>();
    assert!(data[content * 80..].iter().all(|&v| v == 0.0));
    assert!(data[(content - 1) * 80..content * 80]
        .iter()
        .any(|&v| v != 0.0));
}

#[test]
fn mel_128_bank_is_unit_area_triangles() {
    let bank = mel_filters(16_000, 400, 128);
    assert_eq!(bank.len(), 128 * 201);
    // Weights are non-negative and nearly every band covers at least one FFT bin
    // (the exact values are checked against transformers in the fixture tests).
    assert!(bank.iter().all(|&w| w >= 0.0));
    let nonzero_rows = bank
        .chunks(201)
        .filter(|row| row.iter().any(|&w| w > 0.0))
        .count();
    assert!(nonzero_rows >= 120, "{nonzero_rows}");
}
