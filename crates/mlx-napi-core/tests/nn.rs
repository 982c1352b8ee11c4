mod common;

use std::collections::HashMap;

use common::{max_abs_diff, to_vec_f32, to_vec_i32};
use mlx_napi_core::{
    loading::{QuantSpec, Quantization},
    nn::{
        attention, causal_window_mask, padded_attention, AttentionMask, Embedding, Linear, Rope,
        WeightTree,
    },
};
use mlx_rs::{ops, random, Array};

fn tree(tensors: &[(&str, Array)], quantize: Option<QuantSpec>) -> WeightTree {
    let map: HashMap<String, Array> = tensors
        .iter()
        .map(|(n, a)| (n.to_string(), a.clone()))
        .collect();
    let quant = Quantization {
        default: Some(QuantSpec {
            group_size: 32,
            bits: 4,
        }),
        per_layer: HashMap::new(),
    };
    WeightTree::new(map, quant, quantize)
}

fn normal(shape: &[i32], seed: u64) -> Array {
    random::normal::<f32>(shape, None, None, &random::key(seed).unwrap()).unwrap()
}

#[test]
fn dense_linear_is_x_wt_plus_b() {
    let w = Array::from_slice(&[1f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
    let b = Array::from_slice(&[0.5f32, -0.5, 1.0], &[3]);
    let mut t = tree(&[("l.weight", w), ("l.bias", b)], None);
    let linear = Linear::load(&mut t, "l", 2, 3, true).unwrap();
    t.finish().unwrap();
    let y = linear
        .forward(&Array::from_slice(&[1f32, 1.0], &[1, 2]))
        .unwrap();
    assert_eq!(to_vec_f32(&y), vec![3.5, 6.5, 12.0]);
}

#[test]
fn quantized_linear_matches_its_dequantized_weight() {
    let w = normal(&[48, 64], 1);
    let x = normal(&[2, 5, 64], 2);
    let spec = QuantSpec {
        group_size: 32,
        bits: 4,
    };
    // Checkpoint stored quantized (weight/scales/biases), and quantize-at-load of the dense one.
    let (qw, scales, biases) = ops::quantize(&w, 32, 4).unwrap();
    let mut stored = tree(
        &[
            ("q.weight", qw.clone()),
            ("q.scales", scales.clone()),
            ("q.biases", biases.clone()),
        ],
        None,
    );
    let from_checkpoint = Linear::load(&mut stored, "q", 64, 48, false).unwrap();
    let mut dense = tree(&[("q.weight", w.clone())], Some(spec));
    let quantized_at_load = Linear::load(&mut dense, "q", 64, 48, false).unwrap();
    assert!(from_checkpoint.is_quantized() && quantized_at_load.is_quantized());
    let deq = ops::dequantize(&qw, &scales, &biases, 32, 4).unwrap();
    let expected = to_vec_f32(&x.matmul(deq.t()).unwrap());
    assert!(
        max_abs_diff(
            &to_vec_f32(&from_checkpoint.forward(&x).unwrap()),
            &expected
        ) < 1e-3
    );
    assert!(
        max_abs_diff(
            &to_vec_f32(&quantized_at_load.forward(&x).unwrap()),
            &expected
        ) < 1e-3
    );
    // And it approximates the float layer (4-bit error is a small fraction of the signal).
    let exact = to_vec_f32(&x.matmul(w.t()).unwrap());
    let mean = |v: Vec<f32>| v.iter().sum::<f32>() / v.len() as f32;
    let err = mean(
        expected
            .iter()
            .zip(&exact)
            .map(|(a, b)| (a - b).abs())
            .collect(),
    );
    let signal = mean(exact.iter().map(|v| v.abs()).collect());
    assert!(err < 0.2 * signal, "err {err} signal {signal}");
}

#[test]
fn quantized_embedding_rows_and_tied_head() {
    let table = normal(&[40, 64], 3);
    let (qw, scales, biases) = ops::quantize(&table, 32, 4).unwrap();
    let deq = ops::dequantize(&qw, &scales, &biases, 32, 4).unwrap();
    let mut t = tree(
        &[("e.weight", qw), ("e.scales", scales), ("e.biases", biases)],
        None,
    );
    let emb = Embedding::load(&mut t, "e", 40, 64).unwrap();
    let ids = Array::from_slice(&[3i32, 0, 39], &[1, 3]);
    let rows = emb.forward(&ids).unwrap();
    assert_eq!(rows.shape(), &[1, 3, 64]);
    assert_eq!(
        to_vec_f32(&rows),
        to_vec_f32(&deq.take_axis(&ids, 0).unwrap())
    );
    let x = normal(&[1, 2, 64], 4);
    let logits = emb.as_linear(&x).unwrap();
    assert_eq!(logits.shape(), &[1, 2, 40]);
    assert!(
        max_abs_diff(
            &to_vec_f32(&logits),
            &to_vec_f32(&x.matmul(deq.t()).unwrap())
        ) < 1e-3
    );
}

#[test]
fn weight_tree_reports_missing_mismatched_and_unexpected() {
    let mut t = tree(
        &[
            ("a.weight", Array::from_slice(&[1f32; 6], &[2, 3])),
            ("extra", Array::from_f32(0.0)),
        ],
        None,
    );
    let err = Linear::load(&mut t, "a", 2, 3, false).err().unwrap();
    assert_eq!(err.code().as_str(), "ERR_MODEL_FORMAT");
    assert!(
        err.to_string().contains("a.weight") && err.to_string().contains("[3, 2]"),
        "{err}"
    );
    let err = Linear::load(&mut t, "b", 2, 3, false).err().unwrap();
    assert!(err.to_string().contains("missing tensor b.weight"), "{err}");
    let err = t.finish().unwrap_err();
    assert!(err.to_string().contains("extra"), "{err}");
}

#[test]
fn causal_and_sliding_window_masks() {
    let m = causal_window_mask(2, 4, None).unwrap();
    let m: Vec<i32> = to_vec_i32(&m);
    assert_eq!(m, vec![1, 1, 1, 0, 1, 1, 1, 1]);
    let w = to_vec_i32(&causal_window_mask(3, 3, Some(2)).unwrap());
    assert_eq!(w, vec![1, 0, 0, 1, 1, 0, 0, 1, 1]);
}

#[test]
fn rope_variants() {
    let x = normal(&[1, 2, 3, 16], 5);
    let plain = Rope::new(16, 10000.0, false, None).unwrap();
    // Offset applies positions: rotating [pos 2] alone equals the third row of a full pass.
    let full = plain.forward(&x, 0).unwrap();
    let third = plain.forward(&x.index_range(2), 2).unwrap();
    assert!(max_abs_diff(&to_vec_f32(&third), &to_vec_f32(&full.index_range(2))) < 1e-5);
    // Llama 3 scaling with factor 1 and a huge original context is the identity rescale.
    let same = Rope::new(
        16,
        10000.0,
        false,
        Some(
            &serde_json::json!({"rope_type": "llama3", "factor": 1.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
        ),
    )
    .unwrap();
    assert!(
        max_abs_diff(
            &to_vec_f32(&same.forward(&x, 7).unwrap()),
            &to_vec_f32(&plain.forward(&x, 7).unwrap())
        ) < 1e-4
    );
    // A real factor changes low frequencies only (the first pair, highest frequency, is kept).
    let scaled = Rope::new(
        16,
        500000.0,
        false,
        Some(
            &serde_json::json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
        ),
    )
    .unwrap();
    let base = Rope::new(16, 500000.0, false, None).unwrap();
    let a = to_vec_f32(&scaled.forward(&x, 9000).unwrap());
    let b = to_vec_f32(&base.forward(&x, 9000).unwrap());
    assert!(max_abs_diff(&a, &b) > 1e-3);
    assert!((a[0] - b[0]).abs() < 1e-3 && (a[8] - b[8]).abs() < 1e-3);
    let err = Rope::new(
        16,
        1e4,
        false,
        Some(&serde_json::json!({"type": "yarn", "factor": 2.0})),
    )
    .err()
    .unwrap();
    assert_eq!(err.code().as_str(), "ERR_UNSUPPORTED_MODEL");
}

trait Row {
    fn index_range(&self, pos: i32) -> Array;
}

impl Row for Array {
    /// Positions `pos..pos+1` of a `[B, H, L, D]` array.
    fn index_range(&self, pos: i32) -> Array {
        use mlx_rs::ops::indexing::TryIndexOp;
        self.try_index((.., .., pos..pos + 1)).unwrap()
    }
}

#[test]
fn wrong_dtypes_are_format_errors() {
    // A packed uint32 weight without scales is not a dense layer.
    let mut t = tree(
        &[("p.weight", Array::from_slice(&[1u32; 8], &[2, 4]))],
        None,
    );
    let err = Linear::load(&mut t, "p", 4, 2, false).err().unwrap();
    assert_eq!(err.code().as_str(), "ERR_MODEL_FORMAT");
    assert!(err.to_string().contains("floating-point"), "{err}");
    // Scales present but a float "packed" weight.
    let mut t = tree(
        &[
            ("q.weight", Array::from_slice(&[0f32; 8], &[2, 4])),
            ("q.scales", Array::from_slice(&[1f32; 2], &[2, 1])),
            ("q.biases", Array::from_slice(&[0f32; 2], &[2, 1])),
        ],
        None,
    );
    let err = Linear::load(&mut t, "q", 32, 2, false).err().unwrap();
    assert!(err.to_string().contains("uint32"), "{err}");
}

#[test]
fn per_layer_quantization_overrides_apply() {
    let w = normal(&[16, 64], 6);
    let (q8, s8, b8) = ops::quantize(&w, 64, 8).unwrap();
    let (q4, s4, b4) = ops::quantize(&w, 32, 4).unwrap();
    let map: HashMap<String, Array> = [
        ("eight.weight", q8),
        ("eight.scales", s8),
        ("eight.biases", b8),
        ("four.weight", q4),
        ("four.scales", s4),
        ("four.biases", b4),
    ]
    .into_iter()
    .map(|(n, a)| (n.to_string(), a))
    .collect();
    let quant = Quantization::from_config(&serde_json::json!({"quantization": {
        "group_size": 32, "bits": 4, "eight": {"group_size": 64, "bits": 8}
    }}))
    .unwrap();
    let mut t = WeightTree::new(map, quant, None);
    let eight = Linear::load(&mut t, "eight", 64, 16, false).unwrap();
    let four = Linear::load(&mut t, "four", 64, 16, false).unwrap();
    t.finish().unwrap();
    let x = normal(&[1, 64], 7);
    let exact = to_vec_f32(&x.matmul(w.t()).unwrap());
    let err = |l: &Linear| max_abs_diff(&to_vec_f32(&l.forward(&x).unwrap()), &exact);
    // 8-bit is much closer than 4-bit: each layer used its own settings.
    assert!(
        err(&eight) < err(&four) / 4.0,
        "8-bit {} vs 4-bit {}",
        err(&eight),
        err(&four)
    );
}

#[test]
fn fused_activations_keep_half_precision_and_match_the_formulas() {
    use mlx_napi_core::nn::fused::{gelu, swiglu};
    let x = normal(&[4, 64], 7);
    let u = normal(&[4, 64], 8);
    let xs = common::to_vec_f32(&x);
    let us = common::to_vec_f32(&u);
    let want_gelu: Vec<f32> = xs
        .iter()
        .map(|&v| {
            let v = v as f64;
            (v * 0.5 * (1.0 + erf(v / std::f64::consts::SQRT_2))) as f32
        })
        .collect();
    let want_swiglu: Vec<f32> = xs
        .iter()
        .zip(&us)
        .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
        .collect();
    assert!(common::max_abs_diff(&common::to_vec_f32(&gelu(&x).unwrap()), &want_gelu) < 1e-5);
    assert!(
        common::max_abs_diff(&common::to_vec_f32(&swiglu(&x, &u).unwrap()), &want_swiglu) < 1e-5
    );
    for dtype in [mlx_rs::Dtype::Float16, mlx_rs::Dtype::Bfloat16] {
        let (xh, uh) = (x.as_dtype(dtype).unwrap(), u.as_dtype(dtype).unwrap());
        assert_eq!(gelu(&xh).unwrap().dtype(), dtype);
        assert_eq!(swiglu(&xh, &uh).unwrap().dtype(), dtype);
    }
}

/// Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7), enough for a 1e-5 check.
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.3275911 * x.abs());
    let poly = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    (1.0 - poly * (-x * x).exp()).copysign(x)
}

/// The CUDA kernel for a batch step's attention gives what MLX's masked
/// attention gives (GQA, strided keys as a cache hands them over, rows with
/// no padding and with all but one key padded). Runs on the CUDA backend
/// only: elsewhere the kernel is not used (`applies` is false) and the test
/// says so. `examples/padded_attention_check.rs` covers more shapes and times it.
#[test]
fn padded_decode_attention_matches_masked_attention() {
    let (b, heads, kv_heads, keys, d) = (4, 6, 2, 37, 64);
    let q = normal(&[b, 1, heads, d], 1)
        .as_dtype(mlx_rs::Dtype::Float16)
        .unwrap()
        .transpose_axes(&[0, 2, 1, 3])
        .unwrap();
    let buffer = |seed| {
        let full = normal(&[b, kv_heads, 64, d], seed)
            .as_dtype(mlx_rs::Dtype::Float16)
            .unwrap();
        mlx_rs::ops::indexing::TryIndexOp::try_index(&full, (.., .., ..keys)).unwrap()
    };
    let (k, v) = (buffer(2), buffer(3));
    if !padded_attention::applies(&q, &k) {
        eprintln!("skipped: the padded attention kernel runs on the CUDA backend only");
        return;
    }
    let pads = [0, keys - 1, 5, 20];
    let padding = Array::from_slice(&pads, &[b]);
    let slots = ops::arange::<_, i32>(0, keys, None)
        .unwrap()
        .reshape(&[1, keys])
        .unwrap();
    let mask = slots
        .ge(padding.reshape(&[b, 1]).unwrap())
        .unwrap()
        .reshape(&[b, 1, 1, keys])
        .unwrap();
    let scale = 0.125;
    let ours = padded_attention::attention(&q, &k, &v, scale, &padding).unwrap();
    let reference = attention(&q, &k, &v, scale, &AttentionMask::Array(mask)).unwrap();
    assert_eq!(ours.shape(), reference.shape());
    let diff = max_abs_diff(&to_vec_f32(&ours), &to_vec_f32(&reference));
    assert!(diff < 4e-3, "max abs difference {diff}");
}
