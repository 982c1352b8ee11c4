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
