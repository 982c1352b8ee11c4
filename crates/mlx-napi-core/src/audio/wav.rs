//! Fast path for plain WAV files: 16-bit integer or 32-bit float PCM, one to
//! eight channels, every chunk length consistent with the file.
//!
//! Why: symphonia decodes WAV in packets of ~1k frames through a planar
//! buffer, an interleaved copy and our down-mix; on the H200 machine's CPU that
//! took 207 ms for 30 minutes of 16 kHz audio, a quarter of a batch-16
//! transcription (`benchmark/RESULTS.md`, "stages"). Converting the data chunk
//! in 1 MiB blocks is ~3× faster (21.3 minutes of 16-bit mono on the 2-core
//! dev machine: 35 ms against symphonia's 102 ms, the same samples).
//!
//! Anything else — other sample formats, a data chunk longer than the file
//! (truncated), a streaming writer's unknown length, absurd rates — returns
//! `None`, and symphonia reads the file as before, with its checks and errors.
//! The samples equal symphonia's bit for bit (tested: `s as f32 / 32768` for
//! integers, and the same channel mean as `decode::downmix_into`).

use std::io::{Read, Seek, SeekFrom};

use super::DecodedAudio;

/// Format tags of the `fmt ` chunk (and the sub-format of an extensible one).
const FORMAT_PCM: u16 = 1;
const FORMAT_FLOAT: u16 = 3;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// A file with more chunks than this before its data is not "plain".
const MAX_CHUNKS: usize = 64;
/// Bytes converted per read.
const BLOCK_BYTES: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum SampleKind {
    I16,
    F32,
}

struct Format {
    kind: SampleKind,
    channels: usize,
    sample_rate: u32,
}

/// Reads `source` as a plain WAV file of `len` bytes, or `None` when it is not
/// one (the caller then decodes it with symphonia). An I/O error is also
/// `None`: symphonia's path reports it with its own context.
pub(super) fn decode_plain<R: Read + Seek>(
    source: &mut R,
    len: u64,
    max_rate: u32,
) -> Option<DecodedAudio> {
    source.seek(SeekFrom::Start(0)).ok()?;
    let mut riff = [0u8; 12];
    source.read_exact(&mut riff).ok()?;
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return None;
    }
    let mut position = 12u64;
    let mut format: Option<Format> = None;
    for _ in 0..MAX_CHUNKS {
        let mut header = [0u8; 8];
        source.read_exact(&mut header).ok()?;
        let size = u64::from(u32::from_le_bytes(header[4..8].try_into().ok()?));
        let body = position + 8;
        // A chunk that runs past the end: truncated or a streaming writer's
        // placeholder length; symphonia decides what to make of it.
        if body + size > len {
            return None;
        }
        match &header[0..4] {
            b"fmt " => format = Some(parse_format(source, size, max_rate)?),
            b"data" => {
                let format = format?;
                source.seek(SeekFrom::Start(body)).ok()?;
                return convert(source, size, &format);
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        position = body + size + (size & 1);
        source.seek(SeekFrom::Start(position)).ok()?;
    }
    None
}

fn parse_format<R: Read>(source: &mut R, size: u64, max_rate: u32) -> Option<Format> {
    if !(16..=64).contains(&size) {
        return None;
    }
    let mut fmt = vec![0u8; size as usize];
    source.read_exact(&mut fmt).ok()?;
    let u16_at = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([fmt[i], fmt[i + 1], fmt[i + 2], fmt[i + 3]]);
    let mut tag = u16_at(0);
    let channels = usize::from(u16_at(2));
    let sample_rate = u32_at(4);
    let block_align = usize::from(u16_at(12));
    let bits = u16_at(14);
    if tag == FORMAT_EXTENSIBLE {
        // cbSize 22: valid bits, channel mask, then the sub-format GUID whose
        // first two bytes are the format tag.
        if size < 40 || u16_at(16) < 22 || u16_at(18) != bits {
            return None;
        }
        tag = u16_at(24);
    }
    let kind = match (tag, bits) {
        (FORMAT_PCM, 16) => SampleKind::I16,
        (FORMAT_FLOAT, 32) => SampleKind::F32,
        _ => return None,
    };
    let width = usize::from(bits / 8);
    let plain = (1..=8).contains(&channels)
        && block_align == channels * width
        && (1..=max_rate).contains(&sample_rate);
    plain.then_some(Format {
        kind,
        channels,
        sample_rate,
    })
}

/// Converts `size` bytes of interleaved samples to their mono mean.
fn convert<R: Read>(source: &mut R, size: u64, format: &Format) -> Option<DecodedAudio> {
    let width = match format.kind {
        SampleKind::I16 => 2,
        SampleKind::F32 => 4,
    };
    let frame_bytes = width * format.channels;
    let frames = usize::try_from(size).ok()? / frame_bytes;
    // No whole frame, or a ragged end: symphonia's reading of it stands.
    if frames == 0 || !(size as usize).is_multiple_of(frame_bytes) {
        return None;
    }
    let mut mono = Vec::with_capacity(frames);
    let block = (BLOCK_BYTES / frame_bytes).max(1) * frame_bytes;
    let mut bytes = vec![0u8; block];
    let mut interleaved = Vec::with_capacity(block / width);
    let mut left = frames * frame_bytes;
    while left > 0 {
        let take = left.min(block);
        source.read_exact(&mut bytes[..take]).ok()?;
        if format.channels == 1 {
            // Mono (the common case): straight into the output.
            extend_samples(&mut mono, &bytes[..take], format.kind);
        } else {
            interleaved.clear();
            extend_samples(&mut interleaved, &bytes[..take], format.kind);
            super::decode::downmix_into(&interleaved, format.channels, &mut mono);
        }
        left -= take;
    }
    Some(DecodedAudio {
        samples: mono,
        sample_rate: format.sample_rate,
        channels: format.channels,
    })
}

/// Appends the samples encoded in `bytes` as `f32`.
fn extend_samples(out: &mut Vec<f32>, bytes: &[u8], kind: SampleKind) {
    match kind {
        SampleKind::I16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0),
        ),
        SampleKind::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// A WAV file: `fmt` chunk body, then the chunks in `extra` before `data`.
    fn wav(fmt: &[u8], extra: &[(&[u8; 4], Vec<u8>)], data: &[u8]) -> Vec<u8> {
        let mut body = b"WAVE".to_vec();
        let mut chunk = |id: &[u8; 4], bytes: &[u8]| {
            body.extend_from_slice(id);
            body.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            body.extend_from_slice(bytes);
            if bytes.len() % 2 == 1 {
                body.push(0);
            }
        };
        chunk(b"fmt ", fmt);
        for (id, bytes) in extra {
            chunk(id, bytes);
        }
        chunk(b"data", data);
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&(body.len() as u32).to_le_bytes());
        file.extend_from_slice(&body);
        file
    }

    fn fmt(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut f = Vec::new();
        f.extend_from_slice(&tag.to_le_bytes());
        f.extend_from_slice(&channels.to_le_bytes());
        f.extend_from_slice(&rate.to_le_bytes());
        f.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        f.extend_from_slice(&align.to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        f
    }

    fn extensible(sub: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let mut f = fmt(FORMAT_EXTENSIBLE, channels, rate, bits);
        f.extend_from_slice(&22u16.to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&sub.to_le_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
        f
    }

    fn int16(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    fn plain(file: &[u8]) -> Option<DecodedAudio> {
        decode_plain(&mut Cursor::new(file), file.len() as u64, 1_536_000)
    }

    /// What symphonia makes of the same bytes (the path this one replaces).
    fn symphonia(file: &[u8]) -> DecodedAudio {
        crate::audio::decode::decode_with_symphonia(file.to_vec()).expect("symphonia decodes it")
    }

    fn assert_same(a: &DecodedAudio, b: &DecodedAudio) {
        assert_eq!(a.sample_rate, b.sample_rate);
        assert_eq!(a.channels, b.channels);
        assert_eq!(a.samples.len(), b.samples.len());
        for (i, (x, y)) in a.samples.iter().zip(&b.samples).enumerate() {
            assert_eq!(x.to_bits(), y.to_bits(), "sample {i}: {x} vs {y}");
        }
    }

    #[test]
    fn int16_mono_and_stereo_equal_symphonia() {
        let samples: Vec<i16> = (0..5000)
            .map(|i| ((i * 7919) % 65536 - 32768) as i16)
            .collect();
        for channels in [1u16, 2, 3] {
            let file = wav(
                &fmt(FORMAT_PCM, channels, 16_000, 16),
                &[],
                &int16(&samples[..4998]),
            );
            let fast = plain(&file).expect("plain WAV");
            assert_eq!(fast.samples.len(), 4998 / channels as usize);
            assert_same(&fast, &symphonia(&file));
        }
    }

    #[test]
    fn float_extensible_and_extra_chunks_equal_symphonia() {
        let values: Vec<f32> = (0..3000).map(|i| ((i as f32) * 0.37).sin() * 0.9).collect();
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        // An odd-length chunk before the data exercises the padding.
        let list: (&[u8; 4], Vec<u8>) = (b"JUNK", b"abc".to_vec());
        for format in [
            fmt(FORMAT_FLOAT, 2, 44_100, 32),
            extensible(FORMAT_FLOAT, 2, 44_100, 32),
        ] {
            let file = wav(&format, std::slice::from_ref(&list), &data);
            assert_same(&plain(&file).expect("plain WAV"), &symphonia(&file));
        }
        let file = wav(
            &extensible(FORMAT_PCM, 1, 8_000, 16),
            &[],
            &int16(&[1, -2, 3, 32767]),
        );
        assert_same(&plain(&file).expect("plain WAV"), &symphonia(&file));
    }

    /// Every WAV file in ../shared/audio (skipped without it) decodes the
    /// same on both paths, through `decode_file` and `decode_bytes`.
    #[test]
    fn shared_wav_files_equal_symphonia() {
        let dir = match std::env::var_os("MLX_TEST_SHARED") {
            Some(dir) => std::path::PathBuf::from(dir),
            None => std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        }
        .join("audio");
        let mut files: Vec<_> = walk(&dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "wav"))
            .collect();
        if files.is_empty() {
            eprintln!("skipping: no WAV files under {}", dir.display());
            return;
        }
        files.sort();
        for path in files {
            let bytes = std::fs::read(&path).expect("readable");
            let reference = symphonia(&bytes);
            let fast = plain(&bytes).unwrap_or_else(|| panic!("{} is plain", path.display()));
            assert_same(&fast, &reference);
            assert_same(
                &crate::audio::decode_file(&path).expect("decodes"),
                &reference,
            );
            assert_same(
                &crate::audio::decode_bytes(bytes).expect("decodes"),
                &reference,
            );
        }
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .flat_map(|e| {
                let path = e.path();
                if path.is_dir() {
                    walk(&path)
                } else {
                    vec![path]
                }
            })
            .collect()
    }

    #[test]
    fn anything_unusual_is_left_to_symphonia() {
        let data = int16(&[1, 2, 3, 4]);
        // 24-bit, 8-bit, A-law, zero rate, too many channels, misaligned block.
        for format in [
            fmt(FORMAT_PCM, 1, 16_000, 24),
            fmt(FORMAT_PCM, 1, 16_000, 8),
            fmt(6, 1, 8_000, 8),
            fmt(FORMAT_PCM, 1, 0, 16),
            fmt(FORMAT_PCM, 9, 16_000, 16),
        ] {
            assert!(plain(&wav(&format, &[], &data)).is_none());
        }
        let mut misaligned = fmt(FORMAT_PCM, 2, 16_000, 16);
        misaligned[12] = 3;
        assert!(plain(&wav(&misaligned, &[], &data)).is_none());
        // Truncated: the data chunk claims more than the file holds.
        let mut truncated = wav(&fmt(FORMAT_PCM, 1, 16_000, 16), &[], &data);
        truncated.truncate(truncated.len() - 2);
        assert!(plain(&truncated).is_none());
        // A ragged last frame, an empty data chunk, no fmt before data, not RIFF.
        assert!(plain(&wav(&fmt(FORMAT_PCM, 2, 16_000, 16), &[], &data[..6])).is_none());
        assert!(plain(&wav(&fmt(FORMAT_PCM, 1, 16_000, 16), &[], &[])).is_none());
        let mut no_fmt = b"RIFF\0\0\0\0WAVEdata\x02\0\0\0\x01\0".to_vec();
        assert!(plain(&no_fmt).is_none());
        no_fmt[0] = b'X';
        assert!(plain(&no_fmt).is_none());
    }
}
