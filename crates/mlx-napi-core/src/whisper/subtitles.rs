//! Subtitle and JSON renderings of a [`Transcription`]: SubRip (`.srt`),
//! WebVTT (`.vtt`) and a JSON document with the same field names as the JS API.
//!
//! Cues are numbered from 1 in the order given; text is trimmed, and blank lines
//! inside it are removed because a blank line ends a cue in both formats.

use serde::Serialize;
use serde_json::Value;

use super::Transcription;

/// One timed piece of text (a segment), in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cue<'a> {
    pub start: f64,
    pub end: f64,
    pub text: &'a str,
}

impl<'a> From<&'a super::Segment> for Cue<'a> {
    fn from(s: &'a super::Segment) -> Self {
        Cue {
            start: decimal(s.start),
            end: decimal(s.end),
            text: &s.text,
        }
    }
}

/// One cue per word (`Segment::words`), for word-level subtitles; `None` when
/// a segment has no word timings (transcribed without `word_timestamps`).
pub fn word_cues(segments: &[super::Segment]) -> Option<Vec<Cue<'_>>> {
    let mut cues = Vec::new();
    for segment in segments {
        for word in segment.words.as_ref()? {
            cues.push(Cue {
                start: decimal(word.start),
                end: decimal(word.end),
                text: &word.word,
            });
        }
    }
    Some(cues)
}

/// `x` as the f64 nearest to its shortest decimal form (7.74f32 → 7.74, not
/// 7.739999771118164), so that times and scores read cleanly in JSON and JS.
pub fn decimal(x: f32) -> f64 {
    if !x.is_finite() {
        return f64::from(x);
    }
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// `HH:MM:SS{sep}mmm`, rounded to the millisecond; negative or NaN times are 0.
fn timestamp(seconds: f64, separator: char) -> String {
    let ms = if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1000.0).round() as u64
    } else {
        0
    };
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{separator}{ms:03}")
}

/// The cue's text lines: trimmed, without blank lines; `None` when empty.
fn cue_text(text: &str, escape_arrow: bool) -> Option<String> {
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            if escape_arrow {
                // "-->" inside a WebVTT cue payload would be read as a timing line.
                l.replace("-->", "->")
            } else {
                l.to_string()
            }
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn render(cues: &[Cue], separator: char, vtt: bool) -> String {
    let mut out = String::new();
    if vtt {
        out.push_str("WEBVTT\n\n");
    }
    let mut number = 0;
    for cue in cues {
        let Some(text) = cue_text(cue.text, vtt) else {
            continue;
        };
        number += 1;
        if !vtt {
            out.push_str(&format!("{number}\n"));
        }
        let end = if cue.end > cue.start {
            cue.end
        } else {
            cue.start
        };
        out.push_str(&format!(
            "{} --> {}\n{text}\n\n",
            timestamp(cue.start, separator),
            timestamp(end, separator)
        ));
    }
    out
}

/// SubRip: `1\n00:00:00,000 --> 00:00:07,740\ntext\n\n…`.
pub fn to_srt(cues: &[Cue]) -> String {
    render(cues, ',', false)
}

/// WebVTT: `WEBVTT\n\n00:00:00.000 --> 00:00:07.740\ntext\n\n…`.
pub fn to_vtt(cues: &[Cue]) -> String {
    render(cues, '.', true)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonSegment<'a> {
    id: usize,
    seek: usize,
    start: f64,
    end: f64,
    text: &'a str,
    tokens: &'a [u32],
    avg_logprob: f64,
    compression_ratio: f64,
    no_speech_prob: f64,
    temperature: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    words: Option<Vec<JsonWord<'a>>>,
}

#[derive(Serialize)]
struct JsonWord<'a> {
    word: &'a str,
    start: f64,
    end: f64,
    probability: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonTimings {
    decode_audio_ms: f64,
    mel_ms: f64,
    encode_ms: f64,
    decode_ms: f64,
    word_timestamps_ms: f64,
    total_ms: f64,
    real_time_factor: f64,
}

/// Field order and names of the JS `Transcription` object.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonTranscription<'a> {
    text: &'a str,
    language: &'a str,
    language_probability: f64,
    duration: f64,
    segments: Vec<JsonSegment<'a>>,
    timings: JsonTimings,
}

fn json_view(t: &Transcription) -> JsonTranscription<'_> {
    let timings = &t.timings;
    JsonTranscription {
        text: &t.text,
        language: &t.language,
        language_probability: decimal(t.language_probability),
        duration: decimal(t.duration),
        segments: t
            .segments
            .iter()
            .map(|s| JsonSegment {
                id: s.id,
                seek: s.seek,
                start: decimal(s.start),
                end: decimal(s.end),
                text: &s.text,
                tokens: &s.tokens,
                avg_logprob: decimal(s.avg_logprob),
                compression_ratio: decimal(s.compression_ratio),
                no_speech_prob: decimal(s.no_speech_prob),
                temperature: decimal(s.temperature),
                words: s.words.as_ref().map(|words| {
                    words
                        .iter()
                        .map(|w| JsonWord {
                            word: &w.word,
                            start: decimal(w.start),
                            end: decimal(w.end),
                            probability: decimal(w.probability),
                        })
                        .collect()
                }),
            })
            .collect(),
        timings: JsonTimings {
            decode_audio_ms: timings.decode_audio_ms,
            mel_ms: timings.mel_ms,
            encode_ms: timings.encode_ms,
            decode_ms: timings.decode_ms,
            word_timestamps_ms: timings.word_timestamps_ms,
            total_ms: timings.total_ms,
            real_time_factor: timings.real_time_factor,
        },
    }
}

/// The transcription as a JSON object (the JS API's keys, in its order).
pub fn to_json_value(t: &Transcription) -> Value {
    // Serializing plain numbers and strings cannot fail.
    serde_json::to_value(json_view(t)).expect("JSON value serializes")
}

/// The transcription as JSON, pretty-printed with two-space indentation, keys
/// in the JS object's order.
pub fn to_json(t: &Transcription) -> String {
    serde_json::to_string_pretty(&json_view(t)).expect("JSON value serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whisper::{Segment, Timings};

    fn cue(start: f64, end: f64, text: &str) -> Cue<'_> {
        Cue { start, end, text }
    }

    #[test]
    fn timestamps_round_to_milliseconds_and_carry_into_hours() {
        assert_eq!(timestamp(0.0, ','), "00:00:00,000");
        assert_eq!(timestamp(7.74, ','), "00:00:07,740");
        assert_eq!(timestamp(59.9996, '.'), "00:01:00.000");
        assert_eq!(timestamp(3723.5, '.'), "01:02:03.500");
        assert_eq!(timestamp(100.0 * 3600.0, ','), "100:00:00,000");
        assert_eq!(timestamp(-1.0, ','), "00:00:00,000");
        assert_eq!(timestamp(f64::NAN, ','), "00:00:00,000");
    }

    #[test]
    fn srt_numbers_cues_and_skips_empty_text() {
        let cues = [
            cue(0.0, 7.74, " And so my fellow Americans"),
            cue(7.74, 8.0, "   "),
            cue(7.74, 10.74, " ask what you can do"),
        ];
        assert_eq!(
            to_srt(&cues),
            "1\n00:00:00,000 --> 00:00:07,740\nAnd so my fellow Americans\n\n\
             2\n00:00:07,740 --> 00:00:10,740\nask what you can do\n\n"
        );
    }

    #[test]
    fn vtt_has_a_header_dots_and_no_arrows_in_text() {
        let cues = [cue(61.0, 62.5, "a --> b\n\n second line ")];
        assert_eq!(
            to_vtt(&cues),
            "WEBVTT\n\n00:01:01.000 --> 00:01:02.500\na -> b\nsecond line\n\n"
        );
        assert_eq!(to_vtt(&[]), "WEBVTT\n\n");
        assert_eq!(to_srt(&[]), "");
    }

    #[test]
    fn an_end_before_the_start_is_clamped() {
        assert_eq!(
            to_srt(&[cue(2.0, 1.0, "x")]),
            "1\n00:00:02,000 --> 00:00:02,000\nx\n\n"
        );
    }

    #[test]
    fn word_cues_and_json_words() {
        use crate::whisper::Word;
        let word = |w: &str, start: f32, end: f32| Word {
            word: w.into(),
            start,
            end,
            probability: 0.5,
        };
        let mut segment = Segment {
            id: 0,
            seek: 0,
            start: 0.0,
            end: 1.0,
            text: " Hi there.".into(),
            tokens: vec![],
            avg_logprob: 0.0,
            compression_ratio: 1.0,
            no_speech_prob: 0.0,
            temperature: 0.0,
            words: None,
        };
        assert_eq!(word_cues(std::slice::from_ref(&segment)), None);
        segment.words = Some(vec![word(" Hi", 0.0, 0.32), word(" there.", 0.32, 0.9)]);
        let cues = word_cues(std::slice::from_ref(&segment)).unwrap();
        assert_eq!(
            to_srt(&cues),
            "1\n00:00:00,000 --> 00:00:00,320\nHi\n\n2\n00:00:00,320 --> 00:00:00,900\nthere.\n\n"
        );
        let t = Transcription {
            text: segment.text.clone(),
            language: "en".into(),
            language_probability: 1.0,
            duration: 1.0,
            segments: vec![segment],
            timings: Timings::default(),
        };
        let v = to_json_value(&t);
        assert_eq!(v["segments"][0]["words"][1]["word"], " there.");
        assert_eq!(v["segments"][0]["words"][1]["start"], 0.32);
        assert_eq!(v["segments"][0]["words"][0]["probability"], 0.5);
    }

    #[test]
    fn json_uses_the_js_field_names() {
        let t = Transcription {
            text: " hi".into(),
            language: "en".into(),
            language_probability: 1.0,
            duration: 1.5,
            segments: vec![Segment {
                id: 0,
                seek: 0,
                start: 0.0,
                end: 1.5,
                text: " hi".into(),
                tokens: vec![50363, 23105, 50438],
                avg_logprob: -0.25,
                compression_ratio: 0.5,
                no_speech_prob: 0.125,
                temperature: 0.0,
                words: None,
            }],
            timings: Timings {
                total_ms: 10.0,
                ..Default::default()
            },
        };
        let v = to_json_value(&t);
        assert_eq!(v["segments"][0]["avgLogprob"], -0.25);
        assert_eq!(v["segments"][0]["tokens"][1], 23105);
        assert_eq!(v["timings"]["totalMs"], 10.0);
        assert_eq!(v["languageProbability"], 1.0);
        assert_eq!(decimal(7.74), 7.74);
        assert_eq!(
            to_json_value(&Transcription {
                duration: 7.74,
                ..t.clone()
            })["duration"],
            7.74
        );
        let text = to_json(&t);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, v);
        assert!(text.starts_with("{\n  \"text\": \" hi\",\n  \"language\": \"en\""));
    }
}
