//! Axes: scale, range and labelled ticks. Whatever the data range, an axis shows at least
//! three labelled ticks, and its data lies between its lowest and highest label: a log
//! axis labels decades when it spans many, 1-2-5 per decade when it spans fewer, then
//! 1-2-3-4-5-6-8, and evenly spaced round numbers when even those would leave fewer than
//! three (a range of less than about 3×, or a constant series). Above the highest
//! label the axis leaves room for the legend, unlabelled.

use std::ops::Range;

use crate::format;

/// Fewest labelled ticks an axis shows (but an index axis of one or two runs, or a
/// length axis of as few lengths).
const MIN_TICKS: usize = 3;
/// Most ticks 1-2-5 spacing may give over the data before a log axis labels decades only.
const MAX_TICKS: usize = 12;
/// A log axis pads its data range by this factor each way before ending on ticks, so
/// that no point sits on the frame.
const LOG_PAD: f64 = 1.05;

/// How labelled ticks are spaced.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Spacing {
    /// These mantissas in every decade (log axes).
    PerDecade(&'static [f64]),
    /// A constant step.
    Even(f64),
}

const DECADES: Spacing = Spacing::PerDecade(&[1.0]);
const ONE_TWO_FIVE: Spacing = Spacing::PerDecade(&[1.0, 2.0, 5.0]);
/// Finer, without 7 and 9, whose labels would crowd 8 and 10 near the top of a decade.
const FINE: Spacing = Spacing::PerDecade(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0]);

impl Spacing {
    /// The ticks in `lo..=hi`, ascending.
    fn within(self, lo: f64, hi: f64) -> Vec<f64> {
        let (lo, hi) = (lo - lo.abs() * 1e-9, hi + hi.abs() * 1e-9);
        match self {
            Spacing::PerDecade(mantissas) => {
                let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
                (k0..=k1)
                    .flat_map(|k| mantissas.iter().map(move |&m| times_ten_to(m, k)))
                    .filter(|v| (lo..=hi).contains(v))
                    .collect()
            }
            Spacing::Even(step) => {
                let (i0, i1) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
                (i0..=i1).map(|i| i as f64 * step).collect()
            }
        }
    }

    /// The largest tick at or below `x`.
    fn below(self, x: f64) -> f64 {
        match self {
            Spacing::PerDecade(_) => self.within(x / 20.0, x).last().copied().unwrap_or(x),
            Spacing::Even(step) => (x / step + 1e-9).floor() * step,
        }
    }

    /// The smallest tick at or above `x`.
    fn above(self, x: f64) -> f64 {
        match self {
            Spacing::PerDecade(_) => self.within(x, x * 20.0).first().copied().unwrap_or(x),
            Spacing::Even(step) => (x / step - 1e-9).ceil() * step,
        }
    }
}

/// `m × 10^k`, dividing for negative `k` so that 0.2 comes out as the nearest f64 to 0.2.
fn times_ten_to(m: f64, k: i32) -> f64 {
    if k < 0 {
        m / 10f64.powi(-k)
    } else {
        m * 10f64.powi(k)
    }
}

/// The largest of 1, 2, 5 × 10^k at or below `raw` (> 0).
fn round_step(raw: f64) -> f64 {
    let k = raw.log10().floor() as i32;
    let m = raw / times_ten_to(1.0, k);
    let m = if m >= 5.0 - 1e-9 {
        5.0
    } else if m >= 2.0 - 1e-9 {
        2.0
    } else {
        1.0
    };
    times_ten_to(m, k)
}

/// The spacing of a log axis over `lo..hi` (both > 0).
fn log_spacing(lo: f64, hi: f64) -> Spacing {
    let n = ONE_TWO_FIVE.within(lo, hi).len();
    if n > MAX_TICKS {
        return DECADES;
    }
    if n >= MIN_TICKS {
        return ONE_TWO_FIVE;
    }
    if FINE.within(lo, hi).len() >= MIN_TICKS {
        return FINE;
    }
    // A step of at most a third of the range gives three ticks or more; finer while the
    // tick below `lo` would not be positive.
    let mut step = round_step((hi - lo) / 3.0);
    while Spacing::Even(step).below(lo) <= 0.0 {
        step = round_step(step * 0.99);
    }
    Spacing::Even(step)
}

/// The least and greatest of the positive finite `values`.
fn positive_bounds(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold(None, |b, v| {
            Some(b.map_or((v, v), |(lo, hi): (f64, f64)| (lo.min(v), hi.max(v))))
        })
}

/// An axis: its scale and range, and the values labelled on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub log: bool,
    pub range: Range<f64>,
    /// Ascending, inside `range`.
    pub ticks: Vec<f64>,
    labels: Labels,
}

/// How tick values are written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Labels {
    /// Round numbers; `step`, that of evenly spaced ticks, gives every label the same
    /// decimals.
    Numbers { step: Option<f64> },
    /// Token counts as suites write them (4k).
    Lengths,
}

impl Axis {
    /// A log axis covering every positive finite value in `values` between labelled
    /// ticks, with the top `headroom` share of its height (< 1) left free for the legend.
    /// `None` when there is no such value.
    pub fn log(values: impl IntoIterator<Item = f64>, headroom: f64) -> Option<Self> {
        let (lo, hi) = positive_bounds(values)?;
        let (lo, hi) = (lo / LOG_PAD, hi * LOG_PAD);
        let spacing = log_spacing(lo, hi);
        // Decades end on a 1-2-5 tick, so as not to stretch the axis by up to a decade
        // each way; that end is labelled too.
        let ends = if spacing == DECADES {
            ONE_TWO_FIVE
        } else {
            spacing
        };
        let (lo, hi) = (ends.below(lo), ends.above(hi));
        let top = (lo * (hi / lo).powf(1.0 / (1.0 - headroom))).max(hi);
        let mut ticks = spacing.within(lo, hi);
        ticks.extend([lo, hi]);
        ticks.sort_by(f64::total_cmp);
        ticks.dedup_by(|a, b| (*a - *b).abs() <= b.abs() * 1e-9);
        let step = match spacing {
            Spacing::Even(step) => Some(step),
            Spacing::PerDecade(_) => None,
        };
        Some(Self {
            log: true,
            range: lo..top,
            ticks,
            labels: Labels::Numbers { step },
        })
    }

    /// A log axis of lengths labelled at the `measured` ones (not round numbers between
    /// them), covering them and `others` (e.g. a crossover) with a margin. `None`
    /// without a positive length.
    pub fn lengths(measured: &[f64], others: impl IntoIterator<Item = f64>) -> Option<Self> {
        let (lo, hi) = positive_bounds(measured.iter().copied().chain(others))?;
        let pad = if hi / lo < 1.5 { 1.3 } else { 1.15 };
        let mut ticks: Vec<f64> = measured.to_vec();
        ticks.sort_by(f64::total_cmp);
        ticks.dedup();
        Some(Self {
            log: true,
            range: lo / pad..hi * pad,
            ticks,
            labels: Labels::Lengths,
        })
    }

    /// A linear axis over `lo..hi` (`lo < hi`: the values it can show, e.g. accuracies
    /// in `[0, 1]`), labelled at round steps inside it, with the top `headroom` share of
    /// its height (< 1) left free for the legend.
    pub fn linear(lo: f64, hi: f64, headroom: f64) -> Self {
        let step = round_step((hi - lo) / 3.0);
        let even = Spacing::Even(step);
        let (lo, hi) = (even.below(lo), even.above(hi));
        Self {
            log: false,
            // A little below `lo`, so that points there stand clear of the frame.
            range: lo - (hi - lo) * 0.02..hi + (hi - lo) * headroom / (1.0 - headroom),
            ticks: even.within(lo, hi),
            labels: Labels::Numbers { step: Some(step) },
        }
    }

    /// A linear axis of run numbers `1..=runs`, each labelled while there are few.
    pub fn index(runs: usize) -> Self {
        let runs = runs.max(1) as f64;
        let step = round_step(runs / 8.0).max(1.0);
        Self {
            log: false,
            range: 0.5..runs + 0.5,
            ticks: Spacing::Even(step).within(1.0, runs),
            labels: Labels::Numbers { step: Some(step) },
        }
    }

    /// The label of tick `v`.
    pub fn label(&self, v: f64) -> String {
        match self.labels {
            Labels::Numbers { step } => format::tick(v, step),
            Labels::Lengths => format::length(v.round() as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts `MIN_TICKS` ticks or more, all inside the axis range, the lowest at or
    /// below every one of `values` and the highest at or above, with distinct labels.
    fn assert_covers(axis: &Axis, values: &[f64]) {
        let r = &axis.range;
        assert!(
            axis.ticks.iter().all(|t| r.start <= *t && *t <= r.end),
            "{axis:?}"
        );
        assert!(axis.ticks.len() >= MIN_TICKS, "{axis:?}");
        let (first, last) = (axis.ticks[0], axis.ticks[axis.ticks.len() - 1]);
        for v in values {
            assert!(
                first <= *v && *v <= last,
                "{v} outside the ticks of {axis:?}"
            );
        }
        let labels: Vec<String> = axis.ticks.iter().map(|t| axis.label(*t)).collect();
        let mut distinct = labels.clone();
        distinct.dedup();
        assert_eq!(labels, distinct, "labels repeat");
    }

    fn log(values: &[f64], headroom: f64) -> Axis {
        Axis::log(values.iter().copied(), headroom).expect("positive values")
    }

    #[test]
    fn narrow_log_range_gets_even_ticks() {
        // Decode ms/token between 23 and 28: no decade, and no 1-2-5 tick but 20 near it.
        let values = [23.0, 24.5, 28.0];
        let axis = log(&values, 0.0);
        assert_covers(&axis, &values);
        let labels: Vec<String> = axis.ticks.iter().map(|t| axis.label(*t)).collect();
        assert_eq!(labels, ["20", "22", "24", "26", "28", "30"]);
    }

    #[test]
    fn constant_series_gets_ticks_around_it() {
        // RWKV state bytes: one value at every length.
        for v in [0.5625, 3.0, 1.0, 1536.0] {
            let axis = log(&[v, v, v], 0.25);
            assert_covers(&axis, &[v]);
        }
    }

    #[test]
    fn a_constant_line_below_a_growing_one_stays_inside_the_ticks() {
        // State MB: RWKV constant, KV cache growing with length.
        let values = [0.5625, 4.5, 18.0, 72.0, 288.0];
        let axis = log(&values, 0.2);
        assert_covers(&axis, &values);
        assert_eq!(
            axis.labels,
            Labels::Numbers { step: None },
            "1-2-5 per decade: {axis:?}"
        );
        assert_eq!(axis.label(axis.ticks[0]), "0.5");
    }

    #[test]
    fn wide_log_range_labels_decades_and_its_ends() {
        let values = [0.03, 4.0e4];
        let axis = log(&values, 0.0);
        assert_covers(&axis, &values);
        let labels: Vec<String> = axis.ticks.iter().map(|t| axis.label(*t)).collect();
        assert_eq!(
            labels,
            ["0.02", "0.1", "1", "10", "100", "1k", "10k", "50k"]
        );
    }

    #[test]
    fn log_ranges_of_every_width_are_covered() {
        for lo in [0.013, 0.9, 1.0, 7.7, 23.0, 99.0, 1.3e5] {
            for ratio in [1.0, 1.01, 1.2, 1.9, 2.5, 4.0, 9.9, 30.0, 1e3, 1e6] {
                let values = [lo, lo * ratio];
                for headroom in [0.0, 0.3, 0.6] {
                    assert_covers(&log(&values, headroom), &values);
                }
            }
        }
    }

    #[test]
    fn no_positive_value_gives_no_axis() {
        assert_eq!(Axis::log([0.0, -1.0, f64::NAN], 0.0), None);
    }

    #[test]
    fn linear_axis_labels_round_steps() {
        let axis = Axis::linear(0.0, 1.0, 0.25);
        assert_covers(&axis, &[0.0, 1.0]);
        let labels: Vec<String> = axis.ticks.iter().map(|t| axis.label(*t)).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert!(axis.range.end > 1.0, "room for the legend");
    }

    #[test]
    fn index_axis_labels_whole_runs() {
        let labels = |n| {
            let axis = Axis::index(n);
            axis.ticks
                .iter()
                .map(|t| axis.label(*t))
                .collect::<Vec<_>>()
        };
        assert_eq!(labels(3), ["1", "2", "3"]);
        assert_eq!(labels(40), ["5", "10", "15", "20", "25", "30", "35", "40"]);
    }
}
