mod common;

use common::{to_vec_f32, to_vec_i32};
use mlx_napi_core::cache::KvCache;
use mlx_rs::{ops, Array};

/// `[B, H, L, D]` whose values encode (batch, position): b*1000 + start + l.
fn chunk(batch: i32, start: i32, len: i32) -> Array {
    let data: Vec<f32> = (0..batch)
        .flat_map(|b| (0..len).flat_map(move |l| [(b * 1000 + start + l) as f32; 2]))
        .collect();
    Array::from_slice(&data, &[batch, 1, len, 2])
}

fn positions(a: &Array) -> Vec<f32> {
    to_vec_f32(a).into_iter().step_by(2).collect()
}

#[test]
fn grows_in_steps_and_returns_everything_in_order() {
    let mut cache = KvCache::new().with_step(4);
    let (k, v) = cache
        .update_and_fetch(&chunk(2, 0, 3), &chunk(2, 0, 3))
        .unwrap();
    assert_eq!(cache.capacity(), 4);
    assert_eq!(k.shape(), &[2, 1, 3, 2]);
    assert_eq!(positions(&v), vec![0., 1., 2., 1000., 1001., 1002.]);
    for pos in 3..7 {
        let (k, _) = cache
            .update_and_fetch(&chunk(2, pos, 1), &chunk(2, pos, 1))
            .unwrap();
        assert_eq!(k.dim(2), pos + 1);
    }
    assert_eq!(cache.capacity(), 8, "grew by one step, not per token");
    assert_eq!(cache.offset(), 7);
    let (k, _) = cache
        .update_and_fetch(&chunk(2, 7, 1), &chunk(2, 7, 1))
        .unwrap();
    let expected: Vec<f32> = (0..8)
        .map(|p| p as f32)
        .chain((0..8).map(|p| 1000. + p as f32))
        .collect();
    assert_eq!(positions(&k), expected);
}

#[test]
fn truncate_keeps_a_prefix_and_overwrites_the_rest() {
    let mut cache = KvCache::new();
    cache
        .update_and_fetch(&chunk(1, 0, 5), &chunk(1, 0, 5))
        .unwrap();
    cache.truncate(2).unwrap();
    assert_eq!(cache.offset(), 2);
    let replacement = ops::multiply(chunk(1, 2, 2), Array::from_f32(-1.0)).unwrap();
    let (k, _) = cache.update_and_fetch(&replacement, &replacement).unwrap();
    assert_eq!(positions(&k), vec![0., 1., -2., -3.]);
    assert!(cache.truncate(9).is_err());
}

#[test]
fn sliding_window_keeps_the_last_positions() {
    let mut cache = KvCache::with_max_size(4).unwrap();
    // A chunk longer than the window: attention sees all of it, the cache keeps 4.
    let (k, _) = cache
        .update_and_fetch(&chunk(1, 0, 6), &chunk(1, 0, 6))
        .unwrap();
    assert_eq!(k.dim(2), 6);
    for pos in 6..9 {
        let (k, _) = cache
            .update_and_fetch(&chunk(1, pos, 1), &chunk(1, pos, 1))
            .unwrap();
        let mut kept = positions(&k);
        kept.sort_by(f32::total_cmp);
        let expected: Vec<f32> = (pos - 3..=pos).map(|p| p as f32).collect();
        assert_eq!(kept, expected, "window after position {pos}");
    }
    // Another chunk: kept positions come back in temporal order, then the chunk.
    let (k, _) = cache
        .update_and_fetch(&chunk(1, 9, 2), &chunk(1, 9, 2))
        .unwrap();
    assert_eq!(positions(&k), vec![5., 6., 7., 8., 9., 10.]);
    assert_eq!(cache.offset(), 11);
    assert!(
        cache.truncate(3).is_err(),
        "evicted positions cannot be restored"
    );
}

#[test]
fn select_keeps_batch_rows() {
    let mut cache = KvCache::new();
    cache
        .update_and_fetch(&chunk(3, 0, 2), &chunk(3, 0, 2))
        .unwrap();
    cache.select(&Array::from_slice(&[2i32, 0], &[2])).unwrap();
    let (k, _) = cache
        .update_and_fetch(&chunk(2, 2, 1), &chunk(2, 2, 1))
        .unwrap();
    assert_eq!(positions(&k), vec![2000., 2001., 2., 0., 1., 1002.]);
    let _ = to_vec_i32(&Array::from_int(0));
}
