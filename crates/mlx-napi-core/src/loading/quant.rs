//! Quantized checkpoints (the MLX-community `quantization` config block) and
//! quantize-at-load.
//!
//! A layer is quantized when the checkpoint holds `<layer>.scales` (this is how
//! mlx-lm decides too); its group size and bits come from a per-layer entry of
//! the `quantization` block when present, else from the block's defaults.

use std::collections::HashMap;

use crate::{Error, Result};

/// Group size and bit width of affine quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantSpec {
    pub group_size: i32,
    pub bits: i32,
}

impl QuantSpec {
    /// Checks the values MLX's affine kernels support.
    pub fn validate(self) -> Result<Self> {
        if ![32, 64, 128].contains(&self.group_size) {
            return Err(Error::invalid(format!(
                "quantization group size (groupSize) must be 32, 64 or 128, got {}",
                self.group_size
            )));
        }
        if ![2, 3, 4, 5, 6, 8].contains(&self.bits) {
            return Err(Error::invalid(format!(
                "quantization bits must be 2, 3, 4, 5, 6 or 8, got {}",
                self.bits
            )));
        }
        Ok(self)
    }
}

/// The checkpoint's quantization settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quantization {
    /// Defaults for quantized layers; `None` for a float checkpoint.
    pub default: Option<QuantSpec>,
    /// Per-layer overrides by module path (e.g. `model.layers.0.mlp.down_proj`);
    /// `None` = that layer is explicitly not quantized.
    pub per_layer: HashMap<String, Option<QuantSpec>>,
}

impl Quantization {
    /// Parses `config["quantization"]` (falling back to `quantization_config`
    /// when it is in MLX form). Non-affine modes are `ERR_UNSUPPORTED_MODEL`.
    pub fn from_config(config: &serde_json::Value) -> Result<Self> {
        let block = match config.get("quantization") {
            Some(b) => b,
            None => match config.get("quantization_config") {
                // Only the MLX form (group_size + bits) is ours; e.g. GPTQ/AWQ configs are not.
                Some(b) if b.get("bits").is_some() && b.get("group_size").is_some() => b,
                Some(b) => {
                    let method = b
                        .get("quant_method")
                        .and_then(|m| m.as_str())
                        .unwrap_or("unknown");
                    return Err(Error::UnsupportedModel(format!(
                        "quantization method {method:?} is not supported (only MLX affine quantization)"
                    )));
                }
                None => return Ok(Self::default()),
            },
        };
        let obj = block
            .as_object()
            .ok_or_else(|| Error::format("config.json: `quantization` must be an object"))?;
        if let Some(mode) = obj.get("mode").and_then(|m| m.as_str()) {
            if mode != "affine" {
                return Err(Error::UnsupportedModel(format!(
                    "quantization mode {mode:?} is not supported (only \"affine\")"
                )));
            }
        }
        let default = Some(spec_from(block, "quantization")?);
        let mut per_layer = HashMap::new();
        for (key, value) in obj {
            match value {
                serde_json::Value::Object(_) => {
                    per_layer.insert(key.clone(), Some(spec_from(value, key)?));
                }
                serde_json::Value::Bool(false) => {
                    per_layer.insert(key.clone(), None);
                }
                _ => {}
            }
        }
        Ok(Self { default, per_layer })
    }

    /// Settings for the layer at `path`, which the checkpoint stores quantized.
    pub fn spec_for(&self, path: &str) -> Result<QuantSpec> {
        match self.per_layer.get(path) {
            Some(Some(spec)) => Ok(*spec),
            _ => self.default.ok_or_else(|| {
                Error::format(format!(
                    "{path} is stored quantized (has .scales) but config.json has no `quantization` block"
                ))
            }),
        }
    }
}

fn spec_from(value: &serde_json::Value, what: &str) -> Result<QuantSpec> {
    let field = |name: &str| {
        value
            .get(name)
            .and_then(|v| v.as_i64())
            .map(|v| v as i32)
            .ok_or_else(|| Error::format(format!("config.json: {what} lacks an integer `{name}`")))
    };
    QuantSpec {
        group_size: field("group_size")?,
        bits: field("bits")?,
    }
    .validate()
    .map_err(|e| Error::format(format!("config.json: {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_defaults_and_overrides() {
        let q = Quantization::from_config(&json!({"quantization": {
            "group_size": 64, "bits": 4, "mode": "affine",
            "model.layers.0.mlp.down_proj": {"group_size": 32, "bits": 8},
            "lm_head": false
        }}))
        .unwrap();
        assert_eq!(
            q.spec_for("x").unwrap(),
            QuantSpec {
                group_size: 64,
                bits: 4
            }
        );
        assert_eq!(
            q.spec_for("model.layers.0.mlp.down_proj").unwrap(),
            QuantSpec {
                group_size: 32,
                bits: 8
            }
        );
        assert_eq!(q.per_layer["lm_head"], None);
    }

    #[test]
    fn rejects_bad_blocks() {
        let e =
            Quantization::from_config(&json!({"quantization": {"group_size": 64}})).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::ModelFormat);
        let e = Quantization::from_config(
            &json!({"quantization": {"group_size": 32, "bits": 4, "mode": "mxfp4"}}),
        )
        .unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::UnsupportedModel);
        let e =
            Quantization::from_config(&json!({"quantization_config": {"quant_method": "gptq"}}))
                .unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::UnsupportedModel);
        assert_eq!(
            Quantization::from_config(&json!({})).unwrap(),
            Quantization::default()
        );
    }
}
