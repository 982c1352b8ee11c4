//! `Llm::load` end to end on a folder assembled from a fixture checkpoint and
//! the SmolLM2 tokenizer (ids < 256 decode fine with it).

mod common;

use std::{fs, ops::ControlFlow, path::PathBuf};

use mlx_napi_core::{
    llm::{GenerateOptions, Llm, LoadOptions, Prompt},
    loading::{DtypeChoice, LoadProgress, QuantSpec},
};

fn assemble(arch: &str) -> Option<tempfile::TempDir> {
    let tokenizer = common::smollm2_dir()?.join("tokenizer.json");
    let dir = tempfile::tempdir().unwrap();
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(arch);
    for file in ["config.json", "model.safetensors"] {
        fs::copy(fixture.join(file), dir.path().join(file)).unwrap();
    }
    fs::copy(tokenizer, dir.path().join("tokenizer.json")).unwrap();
    Some(dir)
}

#[test]
fn load_reports_progress_and_generates() {
    let Some(dir) = assemble("qwen2") else { return };
    let mut stages = Vec::new();
    let mut progress = |p: &LoadProgress| stages.push(p.clone());
    let llm = Llm::load(
        dir.path().to_str().unwrap(),
        LoadOptions {
            progress: Some(&mut progress),
            ..Default::default()
        },
    )
    .unwrap();
    let names: Vec<&str> = stages.iter().map(|p| p.stage).collect();
    assert!(
        names.starts_with(&["weights"]) && names.ends_with(&["model", "tokenizer"]),
        "{names:?}"
    );
    assert_eq!(llm.model_type(), "qwen2");
    assert_eq!(llm.dtype(), mlx_rs::Dtype::Float32);
    assert_eq!(llm.eos_token_ids(), &[2]);
    let options = GenerateOptions {
        max_tokens: 5,
        ignore_eos: true,
        ..Default::default()
    };
    let result = llm
        .generate(Prompt::Tokens(&[10, 20, 30]), &options, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(result.token_ids.len(), 5);
    assert_eq!(result.host_reads, 5);
}

#[test]
fn quantize_and_dtype_options() {
    let Some(dir) = assemble("llama") else { return };
    let path = dir.path().to_str().unwrap();
    let err = Llm::load(
        path,
        LoadOptions {
            quantize: Some(QuantSpec {
                group_size: 48,
                bits: 4,
            }),
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert_eq!(err.code().as_str(), "ERR_INVALID_ARG");
    let llm = Llm::load(
        path,
        LoadOptions {
            quantize: Some(QuantSpec {
                group_size: 32,
                bits: 4,
            }),
            dtype: DtypeChoice::Bfloat16,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(llm.dtype(), mlx_rs::Dtype::Bfloat16);
}

#[test]
fn unsupported_and_broken_models_are_coded_errors() {
    let Some(dir) = assemble("qwen3") else { return };
    let path = dir.path().to_str().unwrap();
    let config = dir.path().join("config.json");
    let original = fs::read_to_string(&config).unwrap();
    fs::write(&config, original.replace("\"qwen3\"", "\"mamba\"")).unwrap();
    assert_eq!(
        Llm::load(path, LoadOptions::default())
            .err()
            .unwrap()
            .code()
            .as_str(),
        "ERR_UNSUPPORTED_MODEL"
    );
    fs::write(&config, &original[..original.len() / 2]).unwrap();
    assert_eq!(
        Llm::load(path, LoadOptions::default())
            .err()
            .unwrap()
            .code()
            .as_str(),
        "ERR_MODEL_FORMAT"
    );
    fs::write(&config, &original).unwrap();
    fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    assert_eq!(
        Llm::load(path, LoadOptions::default())
            .err()
            .unwrap()
            .code()
            .as_str(),
        "ERR_MODEL_NOT_FOUND"
    );
    assert_eq!(
        Llm::load("/nonexistent/model", LoadOptions::default())
            .err()
            .unwrap()
            .code()
            .as_str(),
        "ERR_MODEL_NOT_FOUND"
    );
}

#[test]
fn engine_types_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Llm>();
    assert_send::<mlx_napi_core::llm::ChatSession>();
}

#[test]
fn bounded_kv_cache_option() {
    let Some(dir) = assemble("qwen3") else { return };
    let llm = Llm::load(dir.path().to_str().unwrap(), LoadOptions::default()).unwrap();
    let run = |max_kv_size| {
        let options = GenerateOptions {
            max_tokens: 12,
            ignore_eos: true,
            max_kv_size,
            ..Default::default()
        };
        llm.generate(Prompt::Tokens(&[5, 6, 7, 8, 9, 10]), &options, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap()
        .token_ids
    };
    let unbounded = run(None);
    // A bound above prompt + generation changes nothing.
    assert_eq!(run(Some(64)), unbounded);
    // A small bound still generates (attention over the last 4 positions).
    assert_eq!(run(Some(4)).len(), 12);
    let options = GenerateOptions {
        max_kv_size: Some(0),
        ..Default::default()
    };
    let err = llm
        .generate(Prompt::Tokens(&[5]), &options, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
    assert_eq!(err.code().as_str(), "ERR_INVALID_ARG");
}

/// The new architectures end to end through `Llm::load` (config, weights,
/// tokenizer, EOS) and generation, also quantized at load.
#[test]
fn gemma3_phi3_and_qwen3_moe_load_and_generate() {
    for arch in ["gemma3", "phi3", "qwen3_moe"] {
        let Some(dir) = assemble(arch) else { return };
        for quantize in [
            None,
            Some(QuantSpec {
                group_size: 32,
                bits: 4,
            }),
        ] {
            let llm = Llm::load(
                dir.path().to_str().unwrap(),
                LoadOptions {
                    quantize,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{arch}: {e}"));
            let expected_type = if arch == "gemma3" {
                "gemma3_text"
            } else {
                arch
            };
            assert_eq!(llm.model_type(), expected_type);
            let options = GenerateOptions {
                max_tokens: 6,
                ignore_eos: true,
                ..Default::default()
            };
            let result = llm
                .generate(Prompt::Tokens(&[10, 20, 30, 40]), &options, &mut |_| {
                    ControlFlow::Continue(())
                })
                .unwrap();
            assert_eq!(result.token_ids.len(), 6, "{arch}");
        }
    }
}
