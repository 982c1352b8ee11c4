//! Where the batched schedule cuts the audio: into sections, and sections
//! into windows.
//!
//! Cutting every 30 s wherever speech is lost 4–20 words per cut on long-form
//! speech. Instead every cut falls in a pause: the planner looks for the
//! quietest stretches of the signal's short-time energy (10 ms frames smoothed
//! over 200 ms), takes the latest one in the allowed range that is about as
//! quiet as the quietest, and cuts in its middle, so both sides keep some
//! silence around their speech. Sections (one per batch row) are contiguous
//! and of about equal length; a window is ≤ 30 s. Cuts depend only on the
//! audio and the number of sections, never on how the batch is scheduled.

use super::mel::{HOP_LENGTH, N_FRAMES, SAMPLE_RATE};

/// Frames (10 ms) of the energy smoothing window: 200 ms, longer than the
/// gaps inside words (plosive closures) and shorter than pauses between them.
const SMOOTH_FRAMES: usize = 20;
/// A window is at least this long unless it is the last: 5 s.
const MIN_WINDOW_FRAMES: usize = 5 * SAMPLE_RATE as usize / HOP_LENGTH;
/// A stretch counts as "as quiet as the quietest" within this power ratio (3 dB).
const QUIET_RATIO: f64 = 2.0;
/// Absolute floor so digital silence (power 0) does not make every other
/// near-silent frame look loud: −80 dBFS.
const POWER_FLOOR: f64 = 1e-8;

/// Mean power of each 10 ms frame, smoothed over [`SMOOTH_FRAMES`].
fn smoothed_power(samples: &[f32], frames: usize) -> Vec<f64> {
    let power: Vec<f64> = (0..frames)
        .map(|f| {
            let start = (f * HOP_LENGTH).min(samples.len());
            let end = ((f + 1) * HOP_LENGTH).min(samples.len());
            let chunk = &samples[start..end];
            if chunk.is_empty() {
                0.0
            } else {
                chunk
                    .iter()
                    .map(|&s| f64::from(s) * f64::from(s))
                    .sum::<f64>()
                    / chunk.len() as f64
            }
        })
        .collect();
    // Centered moving average via a prefix sum.
    let mut prefix = Vec::with_capacity(frames + 1);
    prefix.push(0.0);
    for p in &power {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + p);
    }
    let half = SMOOTH_FRAMES / 2;
    (0..frames)
        .map(|f| {
            let lo = f.saturating_sub(half);
            let hi = (f + half + 1).min(frames);
            ((prefix[hi] - prefix[lo]) / (hi - lo) as f64).max(POWER_FLOOR)
        })
        .collect()
}

/// A frame is loud enough to be speech within this ratio (20 dB) of the
/// signal's loud frames (its 95th percentile of smoothed power).
const SPEECH_RATIO: f64 = 0.01;
/// A stretch the model passed over counts when it is at least this long (3 s)…
const SKIP_MIN_FRAMES: usize = 3 * SAMPLE_RATE as usize / HOP_LENGTH;
/// …and at least this share of its frames are speech.
const SKIP_MIN_SPEECH: f64 = 0.5;
/// A segment this long (8 s) with fewer words per second than
/// [`SKIP_MAX_WORD_RATE`] over speech passed over most of what it spans
/// (read speech runs at 2–3 words per second).
const SKIP_LONG_SEGMENT_FRAMES: usize = 8 * SAMPLE_RATE as usize / HOP_LENGTH;
const SKIP_MAX_WORD_RATE: f64 = 0.6;
/// …or with fewer words per second of speech than this share of the
/// recording's own typical rate ([`WordRate`]). Measured on the long-form set
/// (H200, batch 16): a 19.4 s segment held 15 words (0.77 per second, above
/// the absolute floor) where 28 words were spoken besides, against a typical
/// 2.6 per second of speech. Relative, so that scripts written without spaces
/// (few "words") and slow speakers are judged against themselves.
const SKIP_RELATIVE_WORD_RATE: f64 = 0.45;
/// An idle row takes over the rest of a section only when that is at least
/// this long (3 s): a sliver would cost a row and a context-free start for
/// little.
const TAKE_OVER_MIN_FRAMES: usize = 3 * SAMPLE_RATE as usize / HOP_LENGTH;

/// The typical words per second of speech of the segments read so far (the
/// median over segments of ≥ 2 s), known once there are enough of them.
#[derive(Debug, Default)]
pub struct WordRate {
    rates: Vec<f64>,
}

impl WordRate {
    const MIN_SEGMENTS: usize = 8;
    const MIN_FRAMES: usize = 2 * SAMPLE_RATE as usize / HOP_LENGTH;

    /// Adds a segment `(start frame, end frame, words)` that was accepted.
    pub fn add(&mut self, planner: &Planner, (start, end, words): (usize, usize, usize)) {
        let speech = planner.speech_seconds(start, end);
        if end >= start + Self::MIN_FRAMES && speech > 0.0 {
            self.rates.push(words as f64 / speech);
        }
    }

    pub fn typical(&self) -> Option<f64> {
        if self.rates.len() < Self::MIN_SEGMENTS {
            return None;
        }
        let mut sorted = self.rates.clone();
        sorted.sort_by(f64::total_cmp);
        Some(sorted[sorted.len() / 2])
    }
}

/// Finds pauses (and speech) in one audio signal.
pub struct Planner {
    power: Vec<f64>,
    /// Smoothed power above which a frame counts as speech.
    speech_floor: f64,
}

/// Speech a decoded window passed over: keep its first `keep` segments, read
/// again from frame `resume` in a window that ends by `limit` (so that the
/// model cannot jump past the skipped speech a second time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    pub keep: usize,
    pub resume: usize,
    pub limit: usize,
}

impl Planner {
    /// For `content_frames` mel frames of 16 kHz `samples`.
    pub fn new(samples: &[f32], content_frames: usize) -> Self {
        let power = smoothed_power(samples, content_frames);
        let mut sorted = power.clone();
        sorted.sort_by(f64::total_cmp);
        let loud = sorted
            .get(sorted.len() * 95 / 100)
            .copied()
            .unwrap_or(POWER_FLOOR);
        Planner {
            power,
            speech_floor: (loud * SPEECH_RATIO).max(POWER_FLOOR * 100.0),
        }
    }

    /// Share of the frames in `from..to` loud enough to be speech.
    /// Seconds of speech in frames `from..to`.
    pub fn speech_seconds(&self, from: usize, to: usize) -> f64 {
        let frames = to.min(self.power.len()).saturating_sub(from);
        self.speech_share(from, to) * frames as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64
    }

    pub fn speech_share(&self, from: usize, to: usize) -> f64 {
        let to = to.min(self.power.len());
        if from >= to {
            return 0.0;
        }
        let loud = self.power[from..to]
            .iter()
            .filter(|&&p| p > self.speech_floor)
            .count();
        loud as f64 / (to - from) as f64
    }

    /// Checks a decoded window `window_start..window_end` whose segments span
    /// `spans` (start frame, end frame, words), in order: a gap of ≥ 3 s
    /// before a segment (or after the last, up to `window_end`) that is mostly
    /// speech, or a segment of ≥ 8 s with under 0.6 words per second over
    /// speech, is speech the model skipped. Whisper does this when it starts
    /// a window without context (a section's first window): its timestamps
    /// jump from the first seconds to the middle.
    pub fn skipped_speech(
        &self,
        window_start: usize,
        window_end: usize,
        spans: &[(usize, usize, usize)],
        typical_rate: Option<f64>,
    ) -> Option<Skipped> {
        let passed_over = |from: usize, to: usize| {
            to >= from + SKIP_MIN_FRAMES && self.speech_share(from, to) >= SKIP_MIN_SPEECH
        };
        let mut previous_end = window_start;
        for (i, &(start, end, words)) in spans.iter().enumerate() {
            if passed_over(previous_end, start) {
                return Some(Skipped {
                    keep: i,
                    resume: previous_end,
                    limit: start.max(previous_end + SKIP_MIN_FRAMES),
                });
            }
            let seconds =
                (end.saturating_sub(start)) as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64;
            let sparse = (words as f64) < SKIP_MAX_WORD_RATE * seconds
                || typical_rate.is_some_and(|typical| {
                    (words as f64)
                        < SKIP_RELATIVE_WORD_RATE * typical * self.speech_seconds(start, end)
                });
            if end >= start + SKIP_LONG_SEGMENT_FRAMES
                && sparse
                && self.speech_share(start, end) >= SKIP_MIN_SPEECH
            {
                return Some(Skipped {
                    keep: i,
                    resume: start,
                    limit: end,
                });
            }
            previous_end = previous_end.max(end);
        }
        passed_over(previous_end, window_end).then_some(Skipped {
            keep: spans.len(),
            resume: previous_end,
            limit: window_end,
        })
    }

    /// Where to split `from..to` for a second re-read of skipped speech: a
    /// pause in its middle third, when the span is long enough (≥ 6 s) for
    /// both halves to be at least the 3 s a skip must span. A window that
    /// covers only half of the span cannot be summed up by one sparse
    /// segment again (seen on the H200 at batch 16: re-reading the jfk clip
    /// in one window gave the same 19.4 s segment of 15 words).
    pub fn split_point(&self, from: usize, to: usize) -> Option<usize> {
        let span = to.checked_sub(from)?;
        if span < 2 * SKIP_MIN_FRAMES || to > self.frames() {
            return None;
        }
        Some(quiet_cut(&self.power, from + span / 3, from + 2 * span / 3))
    }

    /// Where a section at `seek` that ends at `end`, whose next window ends
    /// by `limit` (a re-read's bound, else `end`), can hand the rest of its
    /// audio to an idle row: the end of that next window, when at least 3 s
    /// of the section lie beyond it. The section then ends there, and the
    /// idle row reads from there to `end` as a section of its own.
    ///
    /// Why: a re-read, or a window the model did not finish, lengthens one
    /// section's seek loop by a window or two; measured on the H200 (batch
    /// 16, 21.3 minutes), the batch then ran three more rounds at one or two
    /// rows, 40 % of the transcription's time.
    pub fn take_over_point(&self, seek: usize, limit: usize, end: usize) -> Option<usize> {
        let bound = limit.min(end);
        if bound <= seek {
            return None;
        }
        let cut = self.window_end(seek, bound);
        (end >= cut + TAKE_OVER_MIN_FRAMES).then_some(cut)
    }

    fn frames(&self) -> usize {
        self.power.len()
    }

    /// Up to `count` contiguous sections `(start, end)` covering the audio,
    /// each about as long as the others, cut in pauses (within ±5 s of the
    /// even split), and never shorter than one window unless the audio is.
    pub fn sections(&self, count: usize) -> Vec<(usize, usize)> {
        let frames = self.frames();
        let count = count.min(frames.div_ceil(N_FRAMES)).max(1);
        let slack = MIN_WINDOW_FRAMES;
        let mut cuts = vec![0];
        for k in 1..count {
            let target = k * frames / count;
            let previous = *cuts.last().unwrap_or(&0);
            let lo = target.saturating_sub(slack).max(previous + 1);
            let hi = (target + slack).min(frames - 1);
            if lo >= hi {
                continue;
            }
            cuts.push(quiet_cut(&self.power, lo, hi));
        }
        cuts.push(frames);
        cuts.windows(2)
            .map(|w| (w[0], w[1]))
            .filter(|(a, b)| b > a)
            .collect()
    }

    /// Where the window starting at `seek` ends (exclusive) in a section that
    /// ends at `end`: the section's end when it is within 30 s, else a pause
    /// 5–30 s after `seek`.
    pub fn window_end(&self, seek: usize, end: usize) -> usize {
        if end - seek <= N_FRAMES {
            return end;
        }
        let lo = seek + MIN_WINDOW_FRAMES.min(N_FRAMES);
        quiet_cut(&self.power, lo, seek + N_FRAMES)
    }
}

/// Consecutive windows `(start frame, frames)` covering `content_frames` mel
/// frames of `samples` (16 kHz), each ≤ 30 s and, except the last, cut in a
/// pause (one section's windows when no segment is re-read).
pub fn plan_windows(samples: &[f32], content_frames: usize) -> Vec<(usize, usize)> {
    let planner = Planner::new(samples, content_frames);
    let mut windows = Vec::new();
    let mut start = 0;
    while start < content_frames {
        let end = planner.window_end(start, content_frames);
        windows.push((start, end - start));
        start = end;
    }
    windows
}

/// The frame in `lo..=hi` to cut at: the middle of the latest stretch about
/// as quiet as the quietest in the range.
fn quiet_cut(power: &[f64], lo: usize, hi: usize) -> usize {
    let range = lo..=hi.min(power.len() - 1);
    let quietest = range
        .clone()
        .map(|f| power[f])
        .fold(f64::INFINITY, f64::min);
    let threshold = quietest * QUIET_RATIO;
    // The latest quiet frame: the longest window that still ends in a pause.
    let anchor = range
        .clone()
        .rev()
        .find(|&f| power[f] <= threshold)
        .unwrap_or(*range.end());
    // Cut in the middle of the quiet stretch around it (bounded by the range).
    let mut first = anchor;
    while first > *range.start() && power[first - 1] <= threshold {
        first -= 1;
    }
    let mut last = anchor;
    while last + 1 < power.len() && power[last + 1] <= threshold {
        last += 1;
    }
    ((first + last) / 2).clamp(*range.start(), *range.end())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = HOP_LENGTH;

    /// A tone at `level` for each `(seconds, level)` piece.
    fn signal(pieces: &[(f32, f32)]) -> Vec<f32> {
        let mut out = Vec::new();
        for &(seconds, level) in pieces {
            let n = (seconds * SAMPLE_RATE as f32) as usize;
            out.extend((0..n).map(|i| level * ((i as f32) * 0.3).sin()));
        }
        out
    }

    fn frames(samples: &[f32]) -> usize {
        samples.len() / FRAME
    }

    #[test]
    fn short_audio_is_one_window() {
        let s = signal(&[(12.0, 0.5)]);
        assert_eq!(plan_windows(&s, frames(&s)), vec![(0, 1200)]);
    }

    #[test]
    fn cuts_fall_in_pauses_and_cover_everything() {
        // Speech 0–22 s, pause 22–23 s, speech 23–40 s, pause 40–40.6 s, speech to 70 s.
        let s = signal(&[
            (22.0, 0.5),
            (1.0, 0.001),
            (17.0, 0.4),
            (0.6, 0.0),
            (29.4, 0.5),
        ]);
        let windows = plan_windows(&s, frames(&s));
        assert_eq!(windows[0].0, 0);
        for pair in windows.windows(2) {
            assert_eq!(pair[0].0 + pair[0].1, pair[1].0, "{windows:?}");
        }
        let (last_start, last_len) = *windows.last().unwrap();
        assert_eq!(last_start + last_len, frames(&s));
        assert!(windows.iter().all(|&(_, len)| len <= N_FRAMES));
        // First cut in the middle of the 22–23 s pause, second in 40–40.6 s.
        let cut1 = windows[0].1 as f32 / 100.0;
        assert!((22.3..=22.7).contains(&cut1), "{cut1}");
        let cut2 = (windows[1].0 + windows[1].1) as f32 / 100.0;
        assert!((40.1..=40.5).contains(&cut2), "{cut2}");
    }

    #[test]
    fn prefers_the_latest_of_equally_quiet_pauses() {
        // Pauses at 10 s and 25 s, both silent: the window runs to the later one.
        let s = signal(&[
            (10.0, 0.5),
            (0.5, 0.0),
            (14.5, 0.5),
            (0.5, 0.0),
            (20.0, 0.5),
        ]);
        let windows = plan_windows(&s, frames(&s));
        let cut = windows[0].1 as f32 / 100.0;
        assert!((25.0..=25.5).contains(&cut), "{cut}");
    }

    #[test]
    fn sections_are_even_and_cut_in_pauses() {
        // 100 s: speech with a pause every 10 s (at 10–10.5, 20–20.5, …).
        let mut pieces = Vec::new();
        for _ in 0..10 {
            pieces.push((9.5, 0.5));
            pieces.push((0.5, 0.0));
        }
        let s = signal(&pieces);
        let planner = Planner::new(&s, frames(&s));
        let sections = planner.sections(4);
        assert_eq!(sections.len(), 4, "{sections:?}");
        assert_eq!(sections[0].0, 0);
        assert_eq!(sections[3].1, frames(&s));
        for pair in sections.windows(2) {
            assert_eq!(pair[0].1, pair[1].0);
            // Every cut in a pause: 9.5–10 s into each 10 s period.
            let cut = pair[0].1 % 1000;
            assert!((950..=1000).contains(&cut), "{sections:?}");
        }
        // Never more sections than 30 s windows.
        assert_eq!(planner.sections(16).len(), 4);
        let short = signal(&[(12.0, 0.5)]);
        assert_eq!(Planner::new(&short, 1200).sections(16), vec![(0, 1200)]);
    }

    /// A planner over `total` seconds holding `count` 5 s sentences, one
    /// every 6 s from 0.5 s (0.5 s pauses between them).
    fn sentences(count: usize, total: f32) -> Planner {
        Planner::new(
            &speech_in(total, &sentence_spans(count)),
            (total * 100.0) as usize,
        )
    }

    /// The (start, end) seconds of [`sentences`]' sentences.
    fn sentence_spans(count: usize) -> Vec<(f32, f32)> {
        (0..count)
            .map(|k| (k as f32 * 6.0 + 0.5, k as f32 * 6.0 + 5.5))
            .collect()
    }

    /// Speech (a 200 Hz tone at -10 dBFS) from `a` to `b` seconds.
    fn speech_in(total: f32, pieces: &[(f32, f32)]) -> Vec<f32> {
        let mut samples = vec![0.0f32; (total * SAMPLE_RATE as f32) as usize];
        for &(a, b) in pieces {
            let (a, b) = ((a * 16000.0) as usize, (b * 16000.0) as usize);
            for (i, s) in samples[a..b].iter_mut().enumerate() {
                *s = 0.3 * (i as f32 * 200.0 * std::f32::consts::TAU / 16000.0).sin();
            }
        }
        samples
    }

    #[test]
    fn skipped_speech_is_found_in_gaps_and_in_sparse_segments() {
        let f = |s: f32| (s * 100.0) as usize; // seconds → frames
                                               // Speech throughout 0–30 s, in 5 s sentences with 0.5 s pauses.
        let pieces: Vec<(f32, f32)> = (0..5)
            .map(|k| (k as f32 * 6.0 + 0.5, k as f32 * 6.0 + 5.5))
            .collect();
        let samples = speech_in(30.0, &pieces);
        let planner = Planner::new(&samples, f(30.0));
        assert!(planner.speech_share(f(0.5), f(5.5)) > 0.9);
        assert!(planner.speech_share(f(5.8), f(6.2)) < 0.5);
        // Every sentence read: nothing skipped.
        let all: Vec<_> = pieces.iter().map(|&(a, b)| (f(a), f(b), 12)).collect();
        assert_eq!(planner.skipped_speech(0, f(30.0), &all, None), None);
        // The model jumped from the first sentence to the fourth: re-read
        // from the end of the first, in a window that ends where it resumed.
        let jumped = [all[0], all[3], all[4]];
        assert_eq!(
            planner.skipped_speech(0, f(30.0), &jumped, None),
            Some(Skipped {
                keep: 1,
                resume: f(5.5),
                limit: f(18.5)
            })
        );
        // Its first segment starts in the middle of the window.
        assert_eq!(
            planner.skipped_speech(0, f(30.0), &all[3..], None),
            Some(Skipped {
                keep: 0,
                resume: 0,
                limit: f(18.5)
            })
        );
        // One segment claims 0.5–17.5 s with 6 words.
        let sparse = [(f(0.5), f(17.5), 6), all[3], all[4]];
        assert_eq!(
            planner.skipped_speech(0, f(30.0), &sparse, None),
            Some(Skipped {
                keep: 0,
                resume: f(0.5),
                limit: f(17.5)
            })
        );
        // The last sentences never read, though the window was taken whole.
        assert_eq!(
            planner.skipped_speech(0, f(30.0), &all[..2], None),
            Some(Skipped {
                keep: 2,
                resume: f(11.5),
                limit: f(30.0)
            })
        );
        // Gaps over silence are pauses, not skips.
        let quiet = speech_in(30.0, &[(0.5, 5.5), (20.0, 25.0)]);
        let planner = Planner::new(&quiet, f(30.0));
        assert_eq!(
            planner.skipped_speech(
                0,
                f(30.0),
                &[(f(0.5), f(5.5), 12), (f(20.0), f(25.0), 12)],
                None
            ),
            None
        );
    }

    #[test]
    fn a_segment_far_sparser_than_the_recordings_own_rate_is_read_again() {
        let f = |s: f32| (s * 100.0) as usize;
        // Speech throughout 0–30 s, in 5 s sentences with 0.5 s pauses.
        let planner = sentences(5, 30.0);
        let pieces = sentence_spans(5);
        // 0.5–17.5 s with 12 words: 0.7 per second, above the absolute floor
        // (0.6), so without a typical rate it passes…
        let claimed = [
            (f(0.5), f(17.5), 12),
            (f(18.5), f(23.5), 12),
            (f(24.5), f(29.5), 12),
        ];
        assert_eq!(planner.skipped_speech(0, f(30.0), &claimed, None), None);
        // …no rate is known before 8 segments of ≥ 2 s were read…
        let mut rate = WordRate::default();
        for &(a, b) in &pieces {
            rate.add(&planner, (f(a), f(b), 12));
        }
        assert_eq!(rate.typical(), None);
        rate.add(&planner, (f(0.5), f(1.5), 1)); // too short to count
        for &(a, b) in &pieces[..3] {
            rate.add(&planner, (f(a), f(b), 13));
        }
        // …this recording speaks ~2.5 words per second of speech: 12 words
        // over ~15 s of speech is a skip.
        let typical = rate.typical().unwrap();
        assert!((2.2..2.9).contains(&typical), "{typical}");
        assert_eq!(
            planner.skipped_speech(0, f(30.0), &claimed, Some(typical)),
            Some(Skipped {
                keep: 0,
                resume: f(0.5),
                limit: f(17.5)
            })
        );
        // 20 words in the same stretch is within this recording's own range
        // (above 45 % of its rate): read as it is.
        let dense_enough = [(f(0.5), f(17.5), 20), claimed[1], claimed[2]];
        assert_eq!(
            planner.skipped_speech(0, f(30.0), &dense_enough, Some(typical)),
            None
        );
    }

    #[test]
    fn a_second_reread_splits_the_span_in_a_pause() {
        let f = |s: f32| (s * 100.0) as usize;
        // Sentences 0.5–5.5, 6.5–11.5, 12.5–17.5 s.
        let planner = sentences(3, 30.0);
        // 0.5–17.5 s: the cut lies in its middle third (frames 616–1183),
        // in a pause (the one from 11.5 s reaches into it), never inside a
        // sentence.
        let cut = planner.split_point(f(0.5), f(17.5)).unwrap();
        assert!((616..=1183).contains(&cut), "{cut}");
        assert!(
            planner.speech_share(cut.saturating_sub(5), cut + 5) < 0.5,
            "{cut}"
        );
        // Too short to split in two halves of ≥ 3 s each.
        assert_eq!(planner.split_point(f(0.5), f(6.0)), None);
        // Past the audio.
        assert_eq!(planner.split_point(f(0.5), f(40.0)), None);
    }

    #[test]
    fn an_idle_row_takes_over_after_the_next_window() {
        let f = |s: f32| (s * 100.0) as usize;
        // Sentences every 6 s over 90 s.
        let planner = sentences(15, 90.0);
        // A section at 10 s ending at 90 s: the next window ends in a pause
        // 5–30 s on, and the rest is taken over from there.
        let cut = planner.take_over_point(f(10.0), f(90.0), f(90.0)).unwrap();
        assert_eq!(cut, planner.window_end(f(10.0), f(90.0)));
        assert!((f(15.0)..=f(40.0)).contains(&cut), "{cut}");
        // A re-read bounded at 20 s: the rest after the re-read's window.
        let cut = planner.take_over_point(f(12.0), f(20.0), f(90.0)).unwrap();
        assert_eq!(cut, planner.window_end(f(12.0), f(20.0)));
        assert!(cut <= f(20.0));
        // Nothing beyond the next window, or less than 3 s of it: no take-over.
        assert_eq!(planner.take_over_point(f(70.0), f(90.0), f(90.0)), None);
        assert_eq!(planner.take_over_point(f(10.0), f(38.0), f(40.0)), None);
        assert_eq!(planner.take_over_point(f(20.0), f(20.0), f(90.0)), None);
    }

    #[test]
    fn no_pause_still_gives_bounded_windows() {
        let s = signal(&[(95.0, 0.5)]);
        let windows = plan_windows(&s, frames(&s));
        assert!(windows.iter().all(|&(_, len)| len <= N_FRAMES));
        assert_eq!(windows.iter().map(|w| w.1).sum::<usize>(), frames(&s));
    }
}
