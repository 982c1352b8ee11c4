//! Where the batched schedule cuts the audio into windows.
//!
//! Windows decoded independently (in a batch) cannot resume from their last
//! complete segment as the sequential seek loop does, so a word that straddles
//! a cut is lost. Cutting every 30 s wherever speech is lost 4–20 words per
//! cut on long-form speech. Instead each window ends in the quietest stretch
//! of its last part: the plan looks for pauses in the signal's short-time
//! energy (10 ms frames smoothed over 200 ms), takes the latest one that is
//! about as quiet as the quietest, and cuts in its middle, so both windows
//! keep some silence around their speech. Windows are ≤ 30 s and cover the
//! audio without gaps or overlaps; the plan depends only on the audio, never
//! on the batch size.

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

/// Consecutive windows `(start frame, frames)` covering `content_frames` mel
/// frames of `samples` (16 kHz), each ≤ 30 s and, except the last, cut in a pause.
pub fn plan_windows(samples: &[f32], content_frames: usize) -> Vec<(usize, usize)> {
    let power = smoothed_power(samples, content_frames);
    let mut windows = Vec::new();
    let mut start = 0;
    while start < content_frames {
        let remaining = content_frames - start;
        if remaining <= N_FRAMES {
            windows.push((start, remaining));
            break;
        }
        let cut = cut_point(&power, start);
        windows.push((start, cut - start));
        start = cut;
    }
    windows
}

/// The frame where the window starting at `start` should end (exclusive).
fn cut_point(power: &[f64], start: usize) -> usize {
    let lo = start + MIN_WINDOW_FRAMES.min(N_FRAMES);
    let hi = start + N_FRAMES; // inclusive: a cut at hi makes a full 30 s window
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
        .unwrap_or(hi);
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
    fn no_pause_still_gives_bounded_windows() {
        let s = signal(&[(95.0, 0.5)]);
        let windows = plan_windows(&s, frames(&s));
        assert!(windows.iter().all(|&(_, len)| len <= N_FRAMES));
        assert_eq!(windows.iter().map(|w| w.1).sum::<usize>(), frames(&s));
    }
}
