use mlx_napi_core::{
    backend::{backend_info, self_test},
    ErrorCode,
};
use mlx_rs::{ops, Dtype};

#[test]
fn reports_the_linked_mlx() {
    let info = backend_info().unwrap();
    assert_eq!(info.mlx_version, "0.32.2");
    assert!(matches!(info.device, "cpu" | "gpu"));
}

#[test]
fn self_test_matmul_matches_closed_form() {
    let report = self_test(64, Dtype::Float32).unwrap();
    let expected = 64.0 * 64.0 * (0..64).map(|i| f64::from(i % 8) / 8.0).sum::<f64>();
    assert_eq!(report.expected, expected);
    assert!(
        (report.checksum - expected).abs() < 1e-4 * expected,
        "{report:?}"
    );
    assert!(report.relative_error < 1e-4);
}

#[test]
fn self_test_rejects_bad_size() {
    let err = self_test(0, Dtype::Float32).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}

#[test]
fn mlx_exceptions_become_errors() {
    let a = ops::ones::<f32>(&[2, 3]).unwrap();
    let b = ops::ones::<f32>(&[4, 5]).unwrap();
    let err: mlx_napi_core::Error = ops::matmul(&a, &b).unwrap_err().into();
    assert_eq!(err.code(), ErrorCode::Mlx);
    assert!(err.to_string().contains("matmul"), "{err}");
    // MLX still works after the exception.
    let c = ops::matmul(&a, ops::ones::<f32>(&[3, 2]).unwrap()).unwrap();
    assert_eq!(c.sum(None).unwrap().item_cast::<f32>(), 12.0);
}

#[test]
fn matmul_benchmark_times_each_iteration() {
    let t = mlx_napi_core::backend::benchmark_matmul(32, Dtype::Float32, 1, 3).unwrap();
    assert_eq!(t.millis.len(), 3);
    assert!(t.median_tflops() > 0.0);
    let err = mlx_napi_core::backend::benchmark_matmul(32, Dtype::Float32, 0, 0).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}
