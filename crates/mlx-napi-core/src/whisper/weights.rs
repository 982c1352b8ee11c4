//! Finding, reading and normalizing a Whisper checkpoint's tensors.
//!
//! Both layouts end up as one set of names (Hugging Face's) with convolution
//! weights in MLX's `[out, kernel, in]` order, cast to the compute dtype, in a
//! shared [`WeightTree`] (quantized layers are detected there by `.scales`).

use std::{collections::HashMap, path::Path};

use mlx_rs::{Array, Dtype};
use serde_json::Value;

use super::config::{CheckpointLayout, WhisperConfig};
use crate::{
    loading::{
        cast_weights, load_npz, load_weights, read_json, read_json_opt, resolve_dtype,
        weight_files, DtypeChoice, QuantSpec, Quantization,
    },
    nn::WeightTree,
    Error, Result,
};

/// Everything read from a checkpoint folder, ready to build the network.
pub struct Checkpoint {
    pub config: WhisperConfig,
    pub tree: WeightTree,
    pub dtype: Dtype,
}

/// Reads `config.json` and the weights of `dir` (either layout).
/// `quantize` asks for dense linear/embedding weights to be quantized at load.
pub fn load_checkpoint(
    dir: &Path,
    dtype: DtypeChoice,
    quantize: Option<QuantSpec>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Checkpoint> {
    let raw_config: Value = read_json(dir, "config.json")?;
    let generation: Option<Value> = read_json_opt(dir, "generation_config.json")?;
    let mut config =
        WhisperConfig::from_json(&raw_config, generation.as_ref()).map_err(|e| match e {
            Error::ModelFormat(m) => {
                Error::format(format!("{}: {m}", dir.join("config.json").display()))
            }
            other => other,
        })?;
    let mut quantization = Quantization::from_config(&raw_config)?;
    let mut tensors = if !has_safetensors(dir) && dir.join("weights.npz").exists() {
        let tensors = load_npz(&dir.join("weights.npz"))?;
        progress(1, 1);
        tensors
    } else {
        load_weights(&weight_files(dir)?, progress)?
    };
    if config.layout == CheckpointLayout::Mlx {
        // mlx-whisper stores its word-timing heads as an int tensor [n, 2].
        if let Some(heads) = tensors.get("alignment_heads") {
            if config.alignment_heads.is_none() {
                let heads = super::alignment::heads_from_tensor(heads)?;
                super::alignment::check_heads(&heads, config.n_text_layer, config.n_text_head)?;
                config.alignment_heads = Some(heads);
            }
        }
        tensors = rename_mlx_tensors(tensors)?;
        // mlx-whisper's config has no MLP width (openai-whisper fixes it at 4×);
        // the first layer's weight tells, and the loader checks every layer.
        for (side, width) in [
            ("encoder", &mut config.n_audio_ffn),
            ("decoder", &mut config.n_text_ffn),
        ] {
            if let Some(fc1) = tensors.get(&format!("model.{side}.layers.0.fc1.weight")) {
                *width = fc1.dim(0) as usize;
            }
        }
        quantization.per_layer = quantization
            .per_layer
            .into_iter()
            .map(|(name, spec)| (mlx_to_hf_name(&name).unwrap_or(name), spec))
            .collect();
    } else {
        // PyTorch stores conv weights as [out, in, kernel].
        for name in ["model.encoder.conv1.weight", "model.encoder.conv2.weight"] {
            if let Some(w) = tensors.get_mut(name) {
                if w.ndim() != 3 {
                    return Err(Error::format(format!(
                        "{name} must be 3-D, got {:?}",
                        w.shape()
                    )));
                }
                *w = w.swap_axes(1, 2)?;
            }
        }
    }
    let dtype = resolve_dtype(dtype, &tensors)?;
    cast_weights(&mut tensors, dtype)?;
    Ok(Checkpoint {
        config,
        tree: WeightTree::new(tensors, quantization, quantize),
        dtype,
    })
}

fn has_safetensors(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .any(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
        })
        .unwrap_or(false)
}

/// mlx-whisper names → Hugging Face names (`None` for tensors we do not use,
/// such as the stored `alignment_heads`).
fn rename_mlx_tensors(tensors: HashMap<String, Array>) -> Result<HashMap<String, Array>> {
    let mut renamed = HashMap::with_capacity(tensors.len());
    for (name, array) in tensors {
        if name == "alignment_heads" {
            continue;
        }
        let hf = mlx_to_hf_name(&name).ok_or_else(|| {
            Error::format(format!(
                "unexpected tensor {name} in an MLX Whisper checkpoint"
            ))
        })?;
        renamed.insert(hf, array);
    }
    Ok(renamed)
}

/// `decoder.blocks.3.cross_attn.query.weight` → `model.decoder.layers.3.encoder_attn.q_proj.weight`.
fn mlx_to_hf_name(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = name.split('.').collect();
    let side = *parts.first()?;
    if side != "encoder" && side != "decoder" {
        return None;
    }
    // The decoder's learned positions are a bare parameter in mlx-whisper.
    if parts[1..] == ["positional_embedding"] {
        return Some(format!("model.{side}.embed_positions.weight"));
    }
    for part in parts.iter_mut().skip(1) {
        *part = match *part {
            "blocks" => "layers",
            "attn" => "self_attn",
            "cross_attn" => "encoder_attn",
            "attn_ln" => "self_attn_layer_norm",
            "cross_attn_ln" => "encoder_attn_layer_norm",
            "query" => "q_proj",
            "key" => "k_proj",
            "value" => "v_proj",
            "out" => "out_proj",
            "mlp1" => "fc1",
            "mlp2" => "fc2",
            "mlp_ln" => "final_layer_norm",
            "ln_post" | "ln" => "layer_norm",
            "token_embedding" => "embed_tokens",
            other => other,
        };
    }
    Some(format!("model.{}", parts.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_mlx_tensors() {
        let cases = [
            ("encoder.conv1.weight", "model.encoder.conv1.weight"),
            (
                "encoder.blocks.0.attn.query.weight",
                "model.encoder.layers.0.self_attn.q_proj.weight",
            ),
            (
                "encoder.blocks.0.attn.key.weight",
                "model.encoder.layers.0.self_attn.k_proj.weight",
            ),
            (
                "encoder.blocks.1.mlp_ln.bias",
                "model.encoder.layers.1.final_layer_norm.bias",
            ),
            ("encoder.ln_post.weight", "model.encoder.layer_norm.weight"),
            (
                "decoder.token_embedding.scales",
                "model.decoder.embed_tokens.scales",
            ),
            (
                "decoder.positional_embedding",
                "model.decoder.embed_positions.weight",
            ),
            (
                "decoder.blocks.2.cross_attn.out.bias",
                "model.decoder.layers.2.encoder_attn.out_proj.bias",
            ),
            (
                "decoder.blocks.2.cross_attn_ln.weight",
                "model.decoder.layers.2.encoder_attn_layer_norm.weight",
            ),
            (
                "decoder.blocks.2.mlp2.weight",
                "model.decoder.layers.2.fc2.weight",
            ),
            ("decoder.ln.weight", "model.decoder.layer_norm.weight"),
        ];
        for (mlx, hf) in cases {
            assert_eq!(mlx_to_hf_name(mlx).as_deref(), Some(hf), "{mlx}");
        }
        assert_eq!(mlx_to_hf_name("lm_head.weight"), None);
    }
}
