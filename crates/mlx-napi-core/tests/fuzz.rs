//! Mutation fuzzing of every parser that reads untrusted bytes: safetensors
//! headers, `.npy` / `.npz`, Whisper and Llama configs, the audio front end
//! (every container, from real seed files), the chat-template renderer and
//! the streaming detokenizer. Stable Rust, no extra dependency: a seeded
//! xorshift PRNG mutates seed inputs; every run must return `Ok` or a coded
//! `Err` — a panic is a finding and fails the test.
//!
//! CI runs a short smoke pass (`MLX_FUZZ_ITERS`, default 200 per target).
//! Long runs: `scripts/fuzz.sh [seconds per target]` (sets
//! `MLX_FUZZ_SECONDS`, one process per target via `MLX_FUZZ_TARGET`);
//! executions and findings go to RELIABILITY.md.
//!
//! Each finding's input is written to `MLX_FUZZ_FINDINGS` (default
//! `target/fuzz-findings/<target>/`). Committed inputs in
//! `tests/fuzz-corpus/<target>/` (regression cases, extra seeds) are replayed
//! first, as-is, on every run — CI included.

mod common;

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    path::Path,
    time::{Duration, Instant},
};

use mlx_napi_core::{
    audio,
    llm::models::{llama::LlamaArgs, load_model},
    loading::{load_weights, npz, safetensors, weight_files, Quantization},
    nn::WeightTree,
    tokenizer::{ChatMessage, Tokenizer},
    whisper::config::WhisperConfig,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u32; 9] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        if data.is_empty() {
            data.push(rng.next() as u8);
            continue;
        }
        let at = rng.below(data.len());
        match rng.below(7) {
            0 => data[at] ^= 1 << rng.below(8),
            1 => data[at] = INTERESTING[rng.below(INTERESTING.len())] as u8,
            2 => {
                let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                for (i, b) in v.iter().enumerate() {
                    if let Some(d) = data.get_mut(at + i) {
                        *d = *b;
                    }
                }
            }
            3 => data.truncate(at),
            4 => {
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(at..at, bytes);
            }
            5 => {
                let end = (at + 1 + rng.below(64)).min(data.len());
                let chunk = data[at..end].to_vec();
                let to = rng.below(data.len());
                data.splice(to..to, chunk);
            }
            _ => {
                // Digits in text formats: make numbers absurd.
                if data[at].is_ascii_digit() {
                    data.splice(at..at, b"99999999999".iter().copied());
                }
            }
        }
    }
    data
}

/// Runs `target` on mutations of `seeds` until the iteration or time budget
/// is spent; returns (executions, panics) and prints them.
/// The committed corpus of a target: regression cases and extra seeds.
fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Keeps a finding's input for a regression case (FNV-1a names it).
fn save_finding(name: &str, input: &[u8]) {
    let dir = std::env::var("MLX_FUZZ_FINDINGS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-findings")
        })
        .join(name);
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{hash:016x}")), input);
}

/// CPU time this process has used, user + system (Linux: fields 14 and 15 of
/// /proc/self/stat, in clock ticks of 1/100 s); None elsewhere.
fn process_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; count fields after its ')'.
    let mut rest = s[s.rfind(')')? + 1..].split_whitespace().skip(11);
    let user: f64 = rest.next()?.parse().ok()?;
    let system: f64 = rest.next()?.parse().ok()?;
    Some((user + system) / 100.0)
}

fn fuzz(name: &str, seeds: &[Vec<u8>], mut target: impl FnMut(&[u8])) -> (u64, Vec<String>) {
    if std::env::var("MLX_FUZZ_TARGET").is_ok_and(|t| t != name) {
        return (0, Vec::new());
    }
    let mut seeds = seeds.to_vec();
    // Committed cases first: every pass replays them before mutating.
    seeds.splice(0..0, corpus(name));
    let iters: u64 = std::env::var("MLX_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seconds: Option<u64> = std::env::var("MLX_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok());
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    // A CPU-time budget: on a shared machine a wall-clock budget says little
    // about how much fuzzing a target got.
    let cpu_budget: Option<f64> = std::env::var("MLX_FUZZ_CPU_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
    let (mut runs, mut findings) = (0u64, Vec::new());
    // Quiet the default panic message: findings are reported below.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    loop {
        match deadline {
            Some(d) if Instant::now() >= d => break,
            _ if runs % 64 == 0
                && cpu_budget.is_some_and(|b| process_cpu_seconds().is_some_and(|c| c >= b)) =>
            {
                break
            }
            // Every seed (committed cases included) runs at least once.
            None if runs >= iters.max(seeds.len() as u64) => break,
            _ => {}
        }
        let seed = if runs < seeds.len() as u64 {
            &seeds[runs as usize]
        } else {
            &seeds[rng.below(seeds.len())]
        };
        let input = if runs < seeds.len() as u64 {
            seed.clone()
        } else {
            mutate(&mut rng, seed)
        };
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            let why = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if findings.len() < 10 {
                findings.push(format!("{name}: panic {why:?} on {} bytes", input.len()));
                save_finding(name, &input);
            }
        }
        runs += 1;
    }
    std::panic::set_hook(hook);
    println!(
        "fuzz {name}: {runs} executions, {} findings, {:.0} CPU s",
        findings.len(),
        process_cpu_seconds().unwrap_or(0.0)
    );
    (runs, findings)
}

fn assert_clean(result: (u64, Vec<String>)) {
    assert!(result.1.is_empty(), "{:#?}", result.1);
}

fn safetensors_seed(header: &str, data: usize) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(vec![0u8; data]);
    out
}

#[test]
fn fuzz_safetensors_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let seeds = vec![
        safetensors_seed(
            r#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"__metadata__":{"format":"pt"}}"#,
            24,
        ),
        safetensors_seed(
            r#"{"w":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]},"b":{"dtype":"U32","shape":[1,1],"data_offsets":[8,12]}}"#,
            12,
        ),
    ];
    assert_clean(fuzz("safetensors", &seeds, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let _ = safetensors::read_header(&path);
    }));
}

fn npy_seed(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

#[test]
fn fuzz_npy_and_npz() {
    let seeds = vec![
        npy_seed("<f4", "(2, 3)", &[0; 24]),
        npy_seed("<u4", "(3,)", &[1; 12]),
        npy_seed("|u1", "()", &[7]),
    ];
    assert_clean(fuzz("npy", &seeds, |bytes| {
        let _ = npz::parse_npy(bytes);
    }));
    // A stored (uncompressed) zip holding one .npy member.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.npz");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("a.npy", options).unwrap();
    std::io::Write::write_all(&mut zip, &seeds[0]).unwrap();
    let archive = zip.finish().unwrap().into_inner();
    assert_clean(fuzz("npz", &[archive], |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let _ = npz::load_npz(&path);
    }));
}

#[test]
fn fuzz_configs() {
    let whisper = br#"{"model_type":"whisper","d_model":384,"num_mel_bins":80,"max_source_positions":1500,"encoder_attention_heads":6,"encoder_layers":4,"encoder_ffn_dim":1536,"vocab_size":51864,"max_target_positions":448,"decoder_attention_heads":6,"decoder_layers":4,"decoder_ffn_dim":1536,"suppress_tokens":[1,2],"activation_function":"gelu"}"#.to_vec();
    let mlx = br#"{"n_mels":80,"n_audio_ctx":1500,"n_audio_state":384,"n_audio_head":6,"n_audio_layer":4,"n_vocab":51864,"n_text_ctx":448,"n_text_state":384,"n_text_head":6,"n_text_layer":4}"#.to_vec();
    assert_clean(fuzz("whisper-config", &[whisper, mlx], |bytes| {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
            let _ = WhisperConfig::from_json(&v, None);
        }
    }));
    let llama = br#"{"model_type":"llama","hidden_size":576,"num_hidden_layers":30,"intermediate_size":1536,"num_attention_heads":9,"num_key_value_heads":3,"head_dim":64,"vocab_size":49152,"max_position_embeddings":8192,"rope_theta":100000.0,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},"tie_word_embeddings":true}"#.to_vec();
    assert_clean(fuzz("llama-config", &[llama], |bytes| {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if let Ok(args) = LlamaArgs::from_config(&v) {
                let _ = args.validate();
            }
        }
    }));
    // The other architectures' configs, loaded against their fixture's
    // weights (so that parsing, validation, RoPE set-up and the layer plan
    // all run): an error is fine, a panic is a finding.
    for arch in ["gemma3", "phi3", "qwen3_moe", "qwen2", "qwen3"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(arch);
        let seed = std::fs::read(dir.join("config.json")).unwrap();
        let weights = load_weights(&weight_files(&dir).unwrap(), |_, _| {}).unwrap();
        assert_clean(fuzz(&format!("{arch}-config"), &[seed], |bytes| {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
                let quant = Quantization::from_config(&v).unwrap_or_default();
                let _ = load_model(&v, WeightTree::new(weights.clone(), quant, None));
            }
        }));
    }
}

#[test]
fn fuzz_audio_front_end() {
    // Real files of every container, cut to keep each execution short; the
    // mutations hit the headers, where the parsers trust sizes.
    let mut seeds = Vec::new();
    for name in [
        "jfk.wav",
        "lena.flac",
        "jfk.mp3",
        "lena.ogg",
        "lena.opus",
        "lena.m4a",
    ] {
        if let Some(path) = common::shared(&format!("audio/{name}")) {
            let bytes = std::fs::read(path).unwrap();
            let keep = if name.ends_with(".m4a") {
                bytes.len()
            } else {
                bytes.len().min(24_000)
            };
            seeds.push(bytes[..keep].to_vec());
        }
    }
    if seeds.is_empty() {
        return;
    }
    assert_clean(fuzz("audio", &seeds, |bytes| {
        let _ = audio::decode_bytes(bytes.to_vec());
    }));
}

fn smollm2_tokenizer() -> Option<Tokenizer> {
    let dir = common::smollm2_dir()?;
    Some(Tokenizer::load(Path::new(&dir)).unwrap())
}

#[test]
fn fuzz_chat_template_and_detokenizer() {
    let Some(tokenizer) = smollm2_tokenizer() else {
        return;
    };
    let template = br#"{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] | trim + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"#.to_vec();
    let messages = vec![
        ChatMessage::new("system", "Be brief."),
        ChatMessage::new("user", "Hi {{ there }} {% raw %}"),
    ];
    assert_clean(fuzz("chat-template", &[template], |bytes| {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return;
        };
        if let Ok(t) = tokenizer.clone().with_chat_template(text) {
            let _ = t.apply_chat_template(&messages, true);
        }
    }));
    let vocab = tokenizer.vocab_size() as u32;
    let ids: Vec<u8> = tokenizer
        .encode("Hello, wörld! 你好 🎉 <|im_end|>", false)
        .unwrap()
        .iter()
        .flat_map(|id| id.to_le_bytes())
        .collect();
    assert_clean(fuzz("detokenizer", &[ids], |bytes| {
        let mut decoder = tokenizer.stream_decoder(bytes.first().is_some_and(|b| b & 1 == 1));
        for chunk in bytes.chunks(4) {
            let mut id = [0u8; 4];
            id[..chunk.len()].copy_from_slice(chunk);
            // Mostly valid ids, sometimes far outside the vocabulary.
            let raw = u32::from_le_bytes(id);
            let id = if raw % 7 == 0 {
                raw
            } else {
                raw % (vocab + 10)
            };
            let _ = decoder.push(id);
        }
        let _ = decoder.finish();
    }));
}
