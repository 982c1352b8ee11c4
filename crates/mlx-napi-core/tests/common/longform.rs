//! The long-form Whisper test set: real recordings from ../shared/audio
//! (LibriVox, jfk) interleaved with espeak-ng sentences
//! (tests/data/longform, made by scripts/fixtures/gen_longform_speech.sh) and
//! natural-length pauses with a low noise floor, > 3 minutes at 16 kHz, with
//! the exact reference text. `variant` reorders the clips and pauses so that
//! several variants can be tiled into longer audio (benchmarks).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use mlx_napi_core::audio::{load_mono, AudioInput};

pub const RATE: u32 = 16_000;

/// Real recordings in ../shared/audio with their transcripts.
const REAL: [(&str, &str); 6] = [
    (
        "jfk.wav",
        "and so my fellow americans ask not what your country can do for you ask what you can do for your country",
    ),
    (
        "librivox/sense_and_sensibility_01_austen_64kb-0870.wav",
        "and mister john dashwood had then leisure to consider how much there might be prudently in his power to do for them",
    ),
    (
        "librivox/sense_and_sensibility_01_austen_64kb-0880.wav",
        "he was not an ill disposed young man",
    ),
    (
        "librivox/sense_and_sensibility_01_austen_64kb-0890.wav",
        "unless to be rather cold hearted and rather selfish is to be ill disposed",
    ),
    // The package's transcript repeats "a" ("a more a amiable"); the speaker says it once.
    (
        "librivox/sense_and_sensibility_01_austen_64kb-0920.wav",
        "had he married a more amiable woman he might have been made still more respectable than he was",
    ),
    (
        "librivox/sense_and_sensibility_01_austen_64kb-0930.wav",
        "he might even have been made amiable himself",
    ),
];

/// Pause lengths in seconds, cycled: from a breath to a long pause.
const PAUSES: [f32; 7] = [0.35, 0.9, 0.5, 1.4, 0.25, 0.7, 1.1];

/// One clip of the set: where its speech sits and what it says.
pub struct Clip {
    pub start_s: f32,
    pub end_s: f32,
    pub text: String,
}

pub struct LongForm {
    pub samples: Vec<f32>,
    pub clips: Vec<Clip>,
}

impl LongForm {
    pub fn reference(&self) -> String {
        self.clips
            .iter()
            .map(|c| c.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn duration_s(&self) -> f32 {
        self.samples.len() as f32 / RATE as f32
    }
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/longform")
}

/// Deterministic noise floor (−66 dBFS uniform) so pauses are not digital silence.
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 1e-3
    }
}

/// Builds variant `variant` of the set from `shared` (the ../shared folder).
/// Every real clip appears twice, every synthetic sentence once.
pub fn build(shared: &Path, variant: usize) -> LongForm {
    let manifest = std::fs::read_to_string(data_dir().join("manifest.tsv")).unwrap();
    let tts: Vec<(PathBuf, String)> = manifest
        .lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            (data_dir().join(cols[0]), cols[3].to_string())
        })
        .collect();
    let real: Vec<(PathBuf, String)> = REAL
        .iter()
        .map(|(rel, text)| (shared.join("audio").join(rel), text.to_string()))
        .collect();
    // Two synthetic sentences, then a real clip; rotated by the variant.
    let mut order = Vec::new();
    let mut real_i = variant;
    for (i, clip) in tts
        .iter()
        .enumerate()
        .cycle()
        .skip(variant * 5)
        .take(tts.len())
    {
        order.push(clip.clone());
        if i % 2 == 1 {
            order.push(real[real_i % real.len()].clone());
            real_i += 1;
        }
    }
    let mut noise = Noise(variant as u64 + 1);
    let mut samples = Vec::new();
    let mut clips = Vec::new();
    for (k, (path, text)) in order.iter().enumerate() {
        let pause = PAUSES[(k + variant) % PAUSES.len()];
        samples.extend((0..(pause * RATE as f32) as usize).map(|_| noise.next()));
        let audio = load_mono(AudioInput::File(path.clone()), RATE).unwrap();
        let start_s = samples.len() as f32 / RATE as f32;
        samples.extend(audio.iter().map(|&s| s + noise.next()));
        clips.push(Clip {
            start_s,
            end_s: samples.len() as f32 / RATE as f32,
            text: text.clone(),
        });
    }
    samples.extend((0..(0.5 * RATE as f32) as usize).map(|_| noise.next()));
    LongForm { samples, clips }
}
