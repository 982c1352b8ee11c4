mod common;

use mlx_napi_core::{
    audio::decode_file,
    loading::DtypeChoice,
    whisper::{mel::*, model::Whisper, tokenizer::WhisperTokenizer, weights::load_checkpoint},
};
use mlx_rs::{
    ops::indexing::{argmax_axis, TryIndexOp},
    Array,
};

#[test]
fn smoke() {
    let Some(dir) = common::shared("models/whisper-tiny.en") else {
        return;
    };
    let t0 = std::time::Instant::now();
    let ck = load_checkpoint(&dir, DtypeChoice::Auto, |_, _| {}).unwrap();
    let tok = WhisperTokenizer::load(&dir, ck.config.num_languages()).unwrap();
    let model = Whisper::from_weights(ck.config, ck.tree, ck.dtype).unwrap();
    println!("load {:?}", t0.elapsed());
    let samples = decode_file(dir.join("../../audio/jfk.wav"))
        .unwrap()
        .samples;
    let mel = LogMel::new(80)
        .unwrap()
        .compute(&samples, CHUNK_SAMPLES)
        .unwrap();
    let win = window_frames(&mel, 0, samples.len() / 160)
        .unwrap()
        .reshape(&[1, 3000, 80])
        .unwrap();
    let t0 = std::time::Instant::now();
    let feats = model.encode(&win).unwrap();
    feats.eval().unwrap();
    println!("encode {:?}", t0.elapsed());
    let mut state = model.start_decoding(&feats).unwrap();
    let mut tokens = vec![50257i32, 50362];
    let mut input = Array::from_slice(&tokens, &[1, 2]);
    let t0 = std::time::Instant::now();
    for _ in 0..40 {
        let logits = model.decode(&input, &mut state).unwrap();
        let last = logits.try_index((.., -1, ..)).unwrap();
        let next = argmax_axis(&last, -1, false).unwrap();
        next.eval().unwrap();
        let id = next.as_slice::<u32>()[0] as i32;
        if id == 50256 {
            break;
        }
        tokens.push(id);
        input = Array::from_slice(&[id], &[1, 1]);
    }
    println!("decode {:?} {} tokens", t0.elapsed(), tokens.len());
    let ids: Vec<u32> = tokens.iter().map(|&t| t as u32).collect();
    println!("{:?}\n{}", ids, tok.decode_text(&ids).unwrap());
}
