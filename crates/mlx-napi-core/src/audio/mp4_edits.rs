//! The edit list of an MP4/M4A audio track, which symphonia's MP4 reader does
//! not apply: AAC encoders prime the decoder with 1024 extra samples and the
//! edit list (`moov/trak/edts/elst`) says to skip them and where the audio ends.
//!
//! Only what gapless playback needs is read: the first audio (`soun`) track's
//! first non-empty edit, converted to sample counts.

use std::io::{Read, Seek, SeekFrom};

/// Samples to drop at the start and how many to keep after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EditTrim {
    pub skip: usize,
    pub keep: usize,
}

/// Largest `moov` box we read into memory (sample tables of long files fit).
const MAX_MOOV_BYTES: u64 = 64 << 20;

/// The first audio track's first media edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioEdit {
    /// Where playback starts, in media timescale units.
    media_time: u64,
    media_timescale: u32,
    /// How long it plays, in movie timescale units.
    duration: u64,
    movie_timescale: u32,
}

impl AudioEdit {
    /// The edit as sample counts at `sample_rate`.
    pub fn trim(&self, sample_rate: u32) -> EditTrim {
        let rate = u128::from(sample_rate);
        let skip = u128::from(self.media_time) * rate / u128::from(self.media_timescale);
        let keep = u128::from(self.duration) * rate / u128::from(self.movie_timescale);
        EditTrim {
            skip: skip as usize,
            keep: keep as usize,
        }
    }
}

/// The edit of the first audio track of the MP4 in `source`; `None` when it is
/// not an MP4, has no edit list, or the list is unusual.
pub fn audio_edit<R: Read + Seek>(source: &mut R) -> Option<AudioEdit> {
    let moov = read_top_level_box(source, b"moov")?;
    let movie_timescale = timescale(child(&moov, b"mvhd")?)?;
    let mut payload = &moov[..];
    while let Some((kind, body, rest)) = next_box(payload) {
        payload = rest;
        if kind != *b"trak" {
            continue;
        }
        let Some(mdia) = child(body, b"mdia") else {
            continue;
        };
        let is_audio = child(mdia, b"hdlr").and_then(|h| h.get(8..12)) == Some(b"soun".as_slice());
        if !is_audio {
            continue;
        }
        let media_timescale = timescale(child(mdia, b"mdhd")?)?;
        let elst = child(child(body, b"edts")?, b"elst")?;
        let (duration, media_time) = first_edit(elst)?;
        return Some(AudioEdit {
            media_time,
            media_timescale,
            duration,
            movie_timescale,
        });
    }
    None
}

/// Reads the body of the top-level box `kind`, seeking over the others.
fn read_top_level_box<R: Read + Seek>(source: &mut R, kind: &[u8; 4]) -> Option<Vec<u8>> {
    let end = source.seek(SeekFrom::End(0)).ok()?;
    let mut at = 0u64;
    while at + 8 <= end {
        source.seek(SeekFrom::Start(at)).ok()?;
        let mut header = [0u8; 16];
        source.read_exact(&mut header[..8]).ok()?;
        let mut size = u64::from(u32::from_be_bytes(header[..4].try_into().ok()?));
        let mut header_len = 8;
        if size == 1 {
            source.read_exact(&mut header[8..16]).ok()?;
            size = u64::from_be_bytes(header[8..16].try_into().ok()?);
            header_len = 16;
        } else if size == 0 {
            size = end - at;
        }
        if size < header_len || at + size > end {
            return None;
        }
        if &header[4..8] == kind {
            let body_len = size - header_len;
            if body_len > MAX_MOOV_BYTES {
                return None;
            }
            let mut body = vec![0u8; body_len as usize];
            source.read_exact(&mut body).ok()?;
            return Some(body);
        }
        at += size;
    }
    None
}

/// Splits the first box off `data`: (type, body, rest).
fn next_box(data: &[u8]) -> Option<([u8; 4], &[u8], &[u8])> {
    let size = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let kind: [u8; 4] = data.get(4..8)?.try_into().ok()?;
    let (size, header) = match size {
        1 => (
            u64::from_be_bytes(data.get(8..16)?.try_into().ok()?) as usize,
            16,
        ),
        0 => (data.len(), 8),
        n => (n, 8),
    };
    if size < header || size > data.len() {
        return None;
    }
    Some((kind, &data[header..size], &data[size..]))
}

fn child<'a>(mut data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    while let Some((k, body, rest)) = next_box(data) {
        if k == *kind {
            return Some(body);
        }
        data = rest;
    }
    None
}

/// `timescale` of an `mvhd` or `mdhd` body (versions 0 and 1).
fn timescale(body: &[u8]) -> Option<u32> {
    let at = if *body.first()? == 1 { 20 } else { 12 };
    let value = u32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?);
    (value > 0).then_some(value)
}

/// First edit that plays media: (segment duration in movie units, media time
/// in media units). Empty edits (media time −1, a leading delay) are skipped;
/// non-unity rates are not supported.
fn first_edit(body: &[u8]) -> Option<(u64, u64)> {
    let version = *body.first()?;
    let count = u32::from_be_bytes(body.get(4..8)?.try_into().ok()?) as usize;
    let entry_len = if version == 1 { 20 } else { 12 };
    for i in 0..count {
        let entry = body.get(8 + i * entry_len..8 + (i + 1) * entry_len)?;
        let (duration, media_time, rate) = if version == 1 {
            (
                u64::from_be_bytes(entry[..8].try_into().ok()?),
                i64::from_be_bytes(entry[8..16].try_into().ok()?),
                &entry[16..20],
            )
        } else {
            (
                u64::from(u32::from_be_bytes(entry[..4].try_into().ok()?)),
                i64::from(i32::from_be_bytes(entry[4..8].try_into().ok()?)),
                &entry[8..12],
            )
        };
        if media_time < 0 {
            continue;
        }
        if rate != [0, 1, 0, 0] {
            return None;
        }
        return Some((duration, media_time as u64));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend(kind);
        out.extend(body);
        out
    }

    fn header_with_timescale(timescale: u32) -> Vec<u8> {
        let mut body = vec![0u8; 12];
        body.extend(timescale.to_be_bytes());
        body.extend([0u8; 8]);
        body
    }

    fn movie(edits: &[(u32, i32)]) -> Vec<u8> {
        let mut elst = vec![0, 0, 0, 0];
        elst.extend((edits.len() as u32).to_be_bytes());
        for &(duration, media_time) in edits {
            elst.extend(duration.to_be_bytes());
            elst.extend(media_time.to_be_bytes());
            elst.extend([0, 1, 0, 0]);
        }
        let mut hdlr = vec![0u8; 8];
        hdlr.extend(b"soun");
        let mdia = [
            mp4_box(b"mdhd", &header_with_timescale(44_100)),
            mp4_box(b"hdlr", &hdlr),
        ]
        .concat();
        let trak = [
            mp4_box(b"edts", &mp4_box(b"elst", &elst)),
            mp4_box(b"mdia", &mdia),
        ]
        .concat();
        let moov = [
            mp4_box(b"mvhd", &header_with_timescale(1000)),
            mp4_box(b"trak", &trak),
        ]
        .concat();
        [
            mp4_box(b"ftyp", b"M4A \0\0\0\0"),
            mp4_box(b"mdat", &[0; 100]),
            mp4_box(b"moov", &moov),
        ]
        .concat()
    }

    #[test]
    fn reads_priming_and_duration() {
        let trim = audio_edit(&mut Cursor::new(movie(&[(12_271, 1024)])))
            .unwrap()
            .trim(44_100);
        assert_eq!(
            trim,
            EditTrim {
                skip: 1024,
                keep: 541_151
            }
        );
        // A leading empty edit is skipped; its delay is not audio we have.
        let trim = audio_edit(&mut Cursor::new(movie(&[(500, -1), (1000, 2112)])))
            .unwrap()
            .trim(44_100);
        assert_eq!(
            trim,
            EditTrim {
                skip: 2112,
                keep: 44_100
            }
        );
    }

    #[test]
    fn ignores_other_files() {
        assert_eq!(
            audio_edit(&mut Cursor::new(b"RIFF....WAVEfmt ".to_vec())),
            None
        );
        assert_eq!(audio_edit(&mut Cursor::new(Vec::new())), None);
        let mut truncated = movie(&[(1000, 1024)]);
        truncated.truncate(truncated.len() - 10);
        assert_eq!(audio_edit(&mut Cursor::new(truncated)), None);
    }
}
