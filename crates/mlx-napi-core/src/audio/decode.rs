//! Encoded audio (a file or an in-memory buffer) → mono `f32` PCM at the source rate.
//!
//! Plain 16-bit and float WAV takes a faster path (`wav.rs`, same samples).
//! Other containers and codecs come from symphonia (WAV/AIFF PCM and ADPCM, FLAC, MP3,
//! Ogg Vorbis, MP4/M4A AAC and ALAC, Matroska/WebM). symphonia has no Opus codec,
//! so Ogg Opus packets from its demuxer go to the pure-Rust `opus-decoder` crate,
//! with the header's pre-skip and the last page's end trim applied here.
//!
//! MP4/M4A edit lists (AAC encoder priming) are applied here, since
//! symphonia's MP4 reader ignores them.
//!
//! Errors are never panics: empty, unrecognizable, corrupt or truncated input is
//! `ERR_AUDIO_DECODE`; a recognized stream in a codec we lack is `ERR_AUDIO_UNSUPPORTED`.

use std::{
    fs::File,
    io::{Cursor, Seek, SeekFrom},
    path::Path,
};

use symphonia::core::{
    audio::SampleBuffer,
    codecs::{CodecParameters, Decoder, DecoderOptions, CODEC_TYPE_NULL, CODEC_TYPE_OPUS},
    errors::Error as SymError,
    formats::{FormatOptions, Packet},
    io::{MediaSource, MediaSourceStream},
    meta::MetadataOptions,
    probe::Hint,
};

use super::{mp4_edits, wav};
use crate::{Error, Result};

/// Decoded audio, down-mixed to one channel.
#[derive(Debug, Clone)]
pub struct DecodedAudio {
    /// Mono samples in [-1, 1] (the mean of all source channels).
    pub samples: Vec<f32>,
    /// Rate of `samples` in Hz (the source's rate; nothing is resampled here).
    pub sample_rate: u32,
    /// Channel count of the source before down-mixing.
    pub channels: usize,
}

impl DecodedAudio {
    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// Decodes the audio file at `path`; the extension only hints the container.
pub fn decode_file(path: impl AsRef<Path>) -> Result<DecodedAudio> {
    let path = path.as_ref();
    // A FIFO or device would block or never end: only regular files are read.
    let file = crate::loading::files::open_regular(path)?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Err(Error::AudioDecode(format!("{} is empty", path.display())));
    }
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let what = path.display().to_string();
    let ends = read_ends(&file, len).map_err(|source| Error::Io {
        context: format!("cannot read audio file {what}"),
        source,
    })?;
    let edit = if is_mp4(&ends.0) {
        crate::loading::files::open_regular(path)
            .ok()
            .and_then(|mut f| guarded(|| mp4_edits::audio_edit(&mut f)).ok().flatten())
    } else {
        None
    };
    if ends.0.starts_with(b"RIFF") {
        let mut file = &file;
        if let Some(audio) = wav::decode_plain(&mut file, len, MAX_SOURCE_RATE) {
            return Ok(audio);
        }
        file.seek(SeekFrom::Start(0)).map_err(|source| Error::Io {
            context: format!("cannot read audio file {what}"),
            source,
        })?;
    }
    let mut audio = guarded(|| decode_source(Box::new(file), hint))
        .and_then(|r| r)
        .map_err(|e| with_context(e, &what))?;
    check_ogg_complete(&ends.0, &ends.1).map_err(|e| with_context(e, &what))?;
    apply_edit(&mut audio, edit);
    Ok(audio)
}

/// Decodes an in-memory encoded file (WAV, MP3, ... bytes as stored on disk).
pub fn decode_bytes(bytes: Vec<u8>) -> Result<DecodedAudio> {
    if bytes.is_empty() {
        return Err(Error::AudioDecode("the audio buffer is empty".into()));
    }
    let head = bytes[..bytes.len().min(ENDS_LEN)].to_vec();
    let tail = bytes[bytes.len().saturating_sub(ENDS_LEN)..].to_vec();
    let edit = if is_mp4(&head) {
        guarded(|| mp4_edits::audio_edit(&mut Cursor::new(&bytes)))
            .ok()
            .flatten()
    } else {
        None
    };
    if head.starts_with(b"RIFF") {
        let len = bytes.len() as u64;
        if let Some(audio) = wav::decode_plain(&mut Cursor::new(&bytes), len, MAX_SOURCE_RATE) {
            return Ok(audio);
        }
    }
    let mut audio = decode_with_symphonia(bytes)?;
    check_ogg_complete(&head, &tail)?;
    apply_edit(&mut audio, edit);
    Ok(audio)
}

/// Decodes in-memory bytes with symphonia (no fast path).
pub(super) fn decode_with_symphonia(bytes: Vec<u8>) -> Result<DecodedAudio> {
    guarded(|| decode_source(Box::new(Cursor::new(bytes)), Hint::new()))?
}

/// Runs third-party parsing code that may panic on absurd headers (symphonia
/// panics on a 0 Hz WAV or a 0 MP4 timescale: "TimeBase cannot have 0
/// numerator or denominator") and turns a panic into `ERR_AUDIO_DECODE`.
fn guarded<T>(parse: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse)).map_err(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "malformed header".into());
        Error::AudioDecode(format!("corrupt or absurd audio header ({why})"))
    })
}

fn is_mp4(head: &[u8]) -> bool {
    head.get(4..8) == Some(b"ftyp".as_slice())
}

/// Drops AAC priming and end padding as the MP4 edit list says (symphonia's
/// MP4 reader does not).
fn apply_edit(audio: &mut DecodedAudio, edit: Option<mp4_edits::AudioEdit>) {
    let Some(edit) = edit else { return };
    let trim = edit.trim(audio.sample_rate);
    if trim.skip >= audio.samples.len() {
        return;
    }
    audio.samples.drain(..trim.skip);
    if trim.keep > 0 {
        audio.samples.truncate(trim.keep);
    }
}

/// Highest sample rate a container may declare (what the resampler accepts).
const MAX_SOURCE_RATE: u32 = 1_536_000;

/// How much of each end of the input the integrity checks look at (more than
/// one maximal Ogg page, 65 307 bytes).
const ENDS_LEN: usize = 1 << 17;

fn read_ends(file: &File, len: u64) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    use std::io::Read;
    let mut file = file;
    let mut head = vec![0; (len as usize).min(ENDS_LEN)];
    file.read_exact(&mut head)?;
    let mut tail = vec![0; (len as usize).min(ENDS_LEN)];
    file.seek(SeekFrom::Start(len - tail.len() as u64))?;
    file.read_exact(&mut tail)?;
    file.seek(SeekFrom::Start(0))?;
    Ok((head, tail))
}

/// symphonia's Ogg reader cannot tell a stream cut at a page boundary from a
/// complete one; the end-of-stream flag on the last page can.
fn check_ogg_complete(head: &[u8], tail: &[u8]) -> Result<()> {
    const CAPTURE: &[u8] = b"OggS";
    const EOS_FLAG: u8 = 0x04;
    if !head.starts_with(CAPTURE) {
        return Ok(());
    }
    let last_page = tail.windows(CAPTURE.len()).rposition(|w| w == CAPTURE);
    match last_page.and_then(|at| tail.get(at + 5)) {
        Some(flags) if flags & EOS_FLAG != 0 => Ok(()),
        _ => Err(Error::AudioDecode(
            "the Ogg stream is truncated: its last page lacks the end-of-stream flag".into(),
        )),
    }
}

fn with_context(err: Error, what: &str) -> Error {
    match err {
        Error::AudioDecode(m) => Error::AudioDecode(format!("{what}: {m}")),
        Error::AudioUnsupported(m) => Error::AudioUnsupported(format!("{what}: {m}")),
        other => other,
    }
}

fn decode_source(source: Box<dyn MediaSource>, hint: Hint) -> Result<DecodedAudio> {
    let stream = MediaSourceStream::new(source, Default::default());
    // Gapless: honour encoder delay/padding (LAME, Ogg granules) so lengths match the source.
    let format_options = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &format_options, &MetadataOptions::default())
        .map_err(|e| match e {
            // No reader claimed the bytes: not audio we know.
            SymError::Unsupported(why) if why.contains("no suitable format reader") => {
                Error::AudioDecode(
                    "not a recognized audio format (expected WAV, AIFF, FLAC, MP3, Ogg, MP4/M4A \
                     or Matroska data)"
                        .into(),
                )
            }
            // A reader recognized the container but not what it holds.
            SymError::Unsupported(why) => Error::AudioUnsupported(why.to_string()),
            other => Error::AudioDecode(format!("cannot read the container: {other}")),
        })?;
    let mut reader = probed.format;
    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| Error::AudioDecode("the container holds no audio track".into()))?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let sample_rate = params
        .sample_rate
        .filter(|&r| r > 0)
        .ok_or_else(|| Error::AudioDecode("the audio track declares no sample rate".into()))?;
    if sample_rate > MAX_SOURCE_RATE {
        return Err(Error::AudioDecode(format!(
            "the audio track declares an absurd sample rate of {sample_rate} Hz"
        )));
    }
    let mut decoder = PacketDecoder::new(&params)?;

    let mut mono = Vec::new();
    let mut packets = 0usize;
    let mut bad_packets = 0usize;
    let mut first_failure = String::new();
    let mut channels = params.channels.map(|c| c.count()).unwrap_or(0);
    loop {
        let packet = match reader.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            // A new stream starts (chained Ogg): we transcribe the first one only.
            Err(SymError::ResetRequired) => break,
            Err(e) if mono.is_empty() => {
                return Err(Error::AudioDecode(format!(
                    "cannot read audio packets: {e}"
                )))
            }
            // Damage after good audio: keep what decoded, like common players do; the
            // length check below still rejects a stream that stops early.
            Err(_) => break,
        };
        if packet.track_id() != track_id {
            continue;
        }
        packets += 1;
        match decoder.decode(&packet, &mut mono) {
            Ok(ch) => channels = ch,
            // A corrupt packet: skip it, as symphonia recommends, unless most are corrupt.
            Err(DecodeFailure::Packet(why)) => {
                if bad_packets == 0 {
                    first_failure = why;
                }
                bad_packets += 1;
            }
            Err(DecodeFailure::Fatal(e)) => return Err(e),
        }
    }

    if mono.is_empty() {
        return Err(Error::AudioDecode(if packets == 0 {
            "the stream holds no audio packets".into()
        } else {
            format!(
                "none of the {packets} audio packets could be decoded (corrupt data: \
                 {first_failure})"
            )
        }));
    }
    if bad_packets * 10 > packets {
        return Err(Error::AudioDecode(format!(
            "{bad_packets} of {packets} audio packets are corrupt (first: {first_failure})"
        )));
    }
    check_not_truncated(&params, mono.len(), sample_rate)?;
    Ok(DecodedAudio {
        samples: mono,
        sample_rate,
        channels: channels.max(1),
    })
}

/// A container that declares its length (WAV data size, FLAC STREAMINFO, Xing
/// frame count) but delivers clearly less audio was cut short.
fn check_not_truncated(params: &CodecParameters, decoded: usize, rate: u32) -> Result<()> {
    let Some(declared) = params.n_frames else {
        return Ok(());
    };
    let declared = declared
        .saturating_sub(u64::from(params.delay.unwrap_or(0)))
        .saturating_sub(u64::from(params.padding.unwrap_or(0)));
    // Lossy codecs may legitimately differ by a frame or two of priming/padding.
    let slack = (declared / 100).max(4096);
    if (decoded as u64) + slack < declared {
        return Err(Error::AudioDecode(format!(
            "the stream is truncated: it declares {:.3} s but only {:.3} s could be decoded",
            declared as f64 / f64::from(rate),
            decoded as f64 / f64::from(rate),
        )));
    }
    Ok(())
}

enum DecodeFailure {
    /// This packet is damaged; later ones may be fine.
    Packet(String),
    /// Decoding cannot continue (e.g. the stream changed layout).
    Fatal(Error),
}

enum PacketDecoder {
    Symphonia {
        decoder: Box<dyn Decoder>,
        buffer: Option<SampleBuffer<f32>>,
    },
    Opus(Box<OpusStream>),
}

impl PacketDecoder {
    fn new(params: &CodecParameters) -> Result<Self> {
        if params.codec == CODEC_TYPE_OPUS {
            return Ok(PacketDecoder::Opus(Box::new(OpusStream::new(params)?)));
        }
        let decoder = symphonia::default::get_codecs()
            .make(params, &DecoderOptions::default())
            .map_err(|e| match e {
                SymError::Unsupported(what) => Error::AudioUnsupported(format!(
                    "no decoder for this codec ({what}; codec id {})",
                    params.codec
                )),
                other => Error::AudioDecode(format!("cannot set up the decoder: {other}")),
            })?;
        Ok(PacketDecoder::Symphonia {
            decoder,
            buffer: None,
        })
    }

    /// Decodes one packet, appending its down-mixed samples to `mono`; returns the
    /// packet's channel count.
    fn decode(&mut self, packet: &Packet, mono: &mut Vec<f32>) -> Result<usize, DecodeFailure> {
        match self {
            PacketDecoder::Symphonia { decoder, buffer } => {
                let decoded = match decoder.decode(packet) {
                    Ok(d) => d,
                    Err(SymError::DecodeError(m)) => return Err(DecodeFailure::Packet(m.into())),
                    Err(SymError::IoError(e)) => return Err(DecodeFailure::Packet(e.to_string())),
                    Err(e) => {
                        return Err(DecodeFailure::Fatal(Error::AudioDecode(format!(
                            "decoding failed: {e}"
                        ))))
                    }
                };
                let spec = *decoded.spec();
                let frames = decoded.frames();
                if frames == 0 {
                    return Ok(spec.channels.count());
                }
                let fits = buffer.as_ref().is_some_and(|b| {
                    b.capacity() >= frames * spec.channels.count()
                        && b.capacity() % spec.channels.count().max(1) == 0
                });
                if !fits {
                    *buffer = Some(SampleBuffer::new(decoded.capacity() as u64, spec));
                }
                let buffer = buffer.as_mut().expect("allocated above");
                buffer.copy_interleaved_ref(decoded);
                let channels = spec.channels.count().max(1);
                downmix_into(buffer.samples(), channels, mono);
                Ok(channels)
            }
            PacketDecoder::Opus(opus) => opus.decode(packet, mono),
        }
    }
}

/// Appends the per-frame channel mean of interleaved `samples` to `mono`.
pub(super) fn downmix_into(samples: &[f32], channels: usize, mono: &mut Vec<f32>) {
    if channels == 1 {
        mono.extend_from_slice(samples);
        return;
    }
    let scale = 1.0 / channels as f32;
    mono.extend(
        samples
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * scale),
    );
}

/// Ogg Opus: always decoded at 48 kHz. The first `pre_skip` output samples are
/// encoder priming and are dropped; the demuxer's per-packet end trim cuts the
/// padding of the last page.
struct OpusStream {
    decoder: opus_decoder::OpusDecoder,
    channels: usize,
    pre_skip_left: usize,
    pcm: Vec<f32>,
}

impl OpusStream {
    fn new(params: &CodecParameters) -> Result<Self> {
        let channels = params.channels.map(|c| c.count()).unwrap_or(1);
        if !(1..=2).contains(&channels) {
            return Err(Error::AudioUnsupported(format!(
                "Opus with {channels} channels (multistream) is not supported; mono and stereo are"
            )));
        }
        let decoder = opus_decoder::OpusDecoder::new(48_000, channels)
            .map_err(|e| Error::AudioDecode(format!("cannot set up the Opus decoder: {e}")))?;
        let max = opus_decoder::OpusDecoder::MAX_FRAME_SIZE_48K * channels;
        Ok(OpusStream {
            decoder,
            channels,
            pre_skip_left: params.delay.unwrap_or(0) as usize,
            pcm: vec![0.0; max],
        })
    }

    fn decode(&mut self, packet: &Packet, mono: &mut Vec<f32>) -> Result<usize, DecodeFailure> {
        let data = packet.buf();
        if data.is_empty() {
            return Ok(self.channels);
        }
        let frames = self
            .decoder
            .decode_float(data, &mut self.pcm, false)
            .map_err(|e| DecodeFailure::Packet(format!("Opus packet: {e}")))?;
        let mut start = (packet.trim_start() as usize).min(frames);
        let end = frames.saturating_sub(packet.trim_end() as usize).max(start);
        let skip = self.pre_skip_left.min(end - start);
        self.pre_skip_left -= skip;
        start += skip;
        downmix_into(
            &self.pcm[start * self.channels..end * self.channels],
            self.channels,
            mono,
        );
        Ok(self.channels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_averages_channels() {
        let mut out = Vec::new();
        downmix_into(&[1.0, 0.0, 0.5, 0.5, -1.0, 1.0], 2, &mut out);
        assert_eq!(out, vec![0.5, 0.5, 0.0]);
    }
}
