//! Builds the long-form Whisper set (tests/common/longform.rs) and either
//! writes it out for benchmarks or transcribes it and reports WER per batch size.
//!
//! ```text
//! cargo run --release -p mlx-napi-core --example longform_eval -- write OUT.wav OUT.txt [variants]
//! cargo run --release -p mlx-napi-core --example longform_eval -- eval MODEL_DIR [batch sizes…]
//! ```
//! `variants` (default 1) tiles that many reorderings of the set (6 ≈ 21 min).
//! `eval` writes each transcript to /tmp/longform-b<N>.txt.

#[path = "../tests/common/longform.rs"]
mod longform;
#[path = "../tests/common/wer.rs"]
mod wer;

use std::path::{Path, PathBuf};

use mlx_napi_core::whisper::{LoadOptions, TranscribeHooks, TranscribeOptions, WhisperEngine};

fn shared() -> PathBuf {
    std::env::var_os("MLX_TEST_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

fn write_wav(path: &Path, samples: &[f32]) -> std::io::Result<()> {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|&s| ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
        .collect();
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&longform::RATE.to_le_bytes());
    out.extend_from_slice(&(longform::RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    std::fs::write(path, out)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("write") => {
            let variants: usize = args.get(3).map_or(1, |v| v.parse().unwrap());
            let mut samples = Vec::new();
            let mut text = Vec::new();
            for v in 0..variants {
                let set = longform::build(&shared(), v);
                samples.extend_from_slice(&set.samples);
                text.push(set.reference());
            }
            write_wav(Path::new(&args[1]), &samples).unwrap();
            std::fs::write(&args[2], text.join(" ") + "\n").unwrap();
            println!(
                "{:.1} s, {} words",
                samples.len() as f32 / longform::RATE as f32,
                wer::normalize(&text.join(" ")).len()
            );
        }
        Some("eval") => {
            let engine =
                WhisperEngine::load_dir(Path::new(&args[1]), LoadOptions::default()).unwrap();
            let set = longform::build(&shared(), 0);
            let reference = set.reference();
            let frames = set.samples.len() / 160;
            let windows = mlx_napi_core::whisper::windows::plan_windows(&set.samples, frames);
            let cuts: Vec<String> = windows
                .iter()
                .map(|&(start, len)| {
                    format!("{:.2}+{:.2}", start as f32 / 100.0, len as f32 / 100.0)
                })
                .collect();
            println!("windows: {}", cuts.join(" "));
            let sizes: Vec<usize> = if args.len() > 2 {
                args[2..].iter().map(|s| s.parse().unwrap()).collect()
            } else {
                vec![1, 8]
            };
            if sizes == [0] {
                return;
            }
            for batch_size in sizes {
                let options = TranscribeOptions {
                    batch_size,
                    ..Default::default()
                };
                let r = engine
                    .transcribe_samples(&set.samples, &options, TranscribeHooks::default())
                    .unwrap();
                let (errors, words) = wer::word_errors(&reference, &r.text);
                println!(
                    "batch {batch_size}: WER {:.2} % ({errors}/{words}), {:.1} s, {} segments",
                    100.0 * errors as f64 / words as f64,
                    r.timings.total_ms / 1e3,
                    r.segments.len()
                );
                let lines: Vec<String> = r
                    .segments
                    .iter()
                    .map(|s| {
                        format!(
                            "{:7.2} {:7.2} t={} {}",
                            s.start, s.end, s.temperature, s.text
                        )
                    })
                    .collect();
                std::fs::write(format!("/tmp/longform-b{batch_size}.txt"), lines.join("\n"))
                    .unwrap();
            }
            let clips: Vec<String> = set
                .clips
                .iter()
                .map(|c| format!("{:7.2} {:7.2} {}", c.start_s, c.end_s, c.text))
                .collect();
            std::fs::write("/tmp/longform-ref.txt", clips.join("\n")).unwrap();
        }
        _ => eprintln!(
            "usage: longform_eval write OUT.wav OUT.txt [variants] | eval MODEL_DIR [batch…]"
        ),
    }
}
