//! Summary statistics of repeated samples: percentiles, a bootstrap confidence
//! interval of the median, and Tukey's outlier classification (reported, never dropped).

use rand::{rngs::SmallRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Confidence level of every interval the harness reports.
pub const CONFIDENCE: f64 = 0.95;
const BOOTSTRAP_RESAMPLES: usize = 2000;

/// A confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
    pub level: f64,
}

/// Counts of samples beyond Tukey's fences (1.5 and 3 IQR from the quartiles).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outliers {
    pub low_severe: usize,
    pub low_mild: usize,
    pub high_mild: usize,
    pub high_severe: usize,
}

/// What the harness reports for one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub median: f64,
    pub mean: f64,
    pub p10: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
    /// Bootstrap interval of the median; degenerate (`lo == hi`) for one sample.
    pub ci: Interval,
    pub outliers: Outliers,
}

/// Percentile `q` in `[0, 1]` of sorted data, by linear interpolation between ranks.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// Median of `xs`, sorting it in place.
pub fn median_in_place(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    percentile_sorted(xs, 0.5)
}

/// Percentile bootstrap interval of `statistic`: each of `groups` is resampled with
/// replacement (independently, to its own size) `BOOTSTRAP_RESAMPLES` times and the
/// statistic computed on every resample. Seeded, so that a results file can be
/// recomputed exactly. Every group must be non-empty.
pub fn bootstrap(
    groups: &[&[f64]],
    statistic: impl Fn(&mut [Vec<f64>]) -> f64,
    level: f64,
    seed: u64,
) -> Interval {
    let clustered: Vec<Vec<&[f64]>> = groups.iter().map(|g| vec![*g]).collect();
    hierarchical_bootstrap(&clustered, statistic, level, seed)
}

/// [`bootstrap`] over groups whose samples come in clusters (the processes that took
/// them): each resample draws clusters with replacement, then samples within each
/// drawn cluster. Samples of one process share its placement luck (huge pages, cache
/// colouring, a neighbour's load), so resampling them as if independent would give an
/// interval that is too narrow; drawing processes first lets that luck widen it.
/// Every group needs a cluster and every cluster a sample.
pub fn hierarchical_bootstrap(
    groups: &[Vec<&[f64]>],
    statistic: impl Fn(&mut [Vec<f64>]) -> f64,
    level: f64,
    seed: u64,
) -> Interval {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut resamples: Vec<Vec<f64>> = groups
        .iter()
        .map(|g| Vec::with_capacity(g.iter().map(|c| c.len()).sum()))
        .collect();
    let mut stats: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            for (slot, clusters) in resamples.iter_mut().zip(groups) {
                slot.clear();
                for _ in 0..clusters.len() {
                    let cluster = clusters[rng.random_range(0..clusters.len())];
                    for _ in 0..cluster.len() {
                        slot.push(cluster[rng.random_range(0..cluster.len())]);
                    }
                }
            }
            statistic(&mut resamples)
        })
        .collect();
    stats.retain(|x| x.is_finite());
    stats.sort_by(f64::total_cmp);
    if stats.is_empty() {
        return Interval {
            lo: f64::NAN,
            hi: f64::NAN,
            level,
        };
    }
    let tail = (1.0 - level) / 2.0;
    Interval {
        lo: percentile_sorted(&stats, tail),
        hi: percentile_sorted(&stats, 1.0 - tail),
        level,
    }
}

/// Splits `samples` into the clusters of `sizes` (samples per process, in order); one
/// cluster when `sizes` is empty or does not add up to the samples.
pub fn clusters<'a>(samples: &'a [f64], sizes: &[usize]) -> Vec<&'a [f64]> {
    if sizes.is_empty() || sizes.contains(&0) || sizes.iter().sum::<usize>() != samples.len() {
        return vec![samples];
    }
    let mut rest = samples;
    sizes
        .iter()
        .map(|&n| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            head
        })
        .collect()
}

/// How many clusters (processes, or trials) in all would shrink an interval that
/// straddles `threshold` until it excludes it, assuming its width falls as
/// `1/sqrt(n)`: `n` itself when it already excludes it, `None` when the estimate sits
/// on the threshold (no count decides it).
pub fn needed_to_decide(estimate: f64, ci: Interval, threshold: f64, n: usize) -> Option<usize> {
    let gap = (estimate - threshold).abs();
    // The half-width on the threshold's side is what has to shrink below the gap.
    let half = if threshold >= estimate {
        ci.hi - estimate
    } else {
        estimate - ci.lo
    };
    if !(gap > 0.0 && half.is_finite()) {
        return None;
    }
    if half <= gap {
        return Some(n);
    }
    Some((n.max(1) as f64 * (half / gap).powi(2)).ceil() as usize)
}

/// Bootstrap interval of the median; degenerate for fewer than two samples.
pub fn bootstrap_median_ci(samples: &[f64], level: f64, seed: u64) -> Interval {
    if samples.len() < 2 {
        let x = samples.first().copied().unwrap_or(f64::NAN);
        return Interval {
            lo: x,
            hi: x,
            level,
        };
    }
    bootstrap(&[samples], |g| median_in_place(&mut g[0]), level, seed)
}

/// Bootstrap interval of the median of clustered samples ([`hierarchical_bootstrap`]);
/// degenerate for fewer than two samples.
pub fn clustered_median_ci(clusters: &[&[f64]], level: f64, seed: u64) -> Interval {
    let n: usize = clusters.iter().map(|c| c.len()).sum();
    if n < 2 {
        let x = clusters
            .iter()
            .find_map(|c| c.first())
            .copied()
            .unwrap_or(f64::NAN);
        return Interval {
            lo: x,
            hi: x,
            level,
        };
    }
    hierarchical_bootstrap(
        &[clusters.to_vec()],
        |g| median_in_place(&mut g[0]),
        level,
        seed,
    )
}

/// The log-log slope of a cost's medians against length, with its bootstrap interval:
/// each resample redraws every length's samples (processes first) and refits. `series`
/// holds `(length, clusters of samples)`; `None` with fewer than two lengths.
pub fn slope_interval(
    series: &[(f64, Vec<&[f64]>)],
    level: f64,
    seed: u64,
) -> Option<(f64, Interval)> {
    let lengths: Vec<f64> = series.iter().map(|s| s.0).collect();
    let fit = |groups: &mut [Vec<f64>]| {
        let pts: Vec<(f64, f64)> = lengths
            .iter()
            .zip(groups.iter_mut())
            .map(|(&l, g)| (l, median_in_place(g)))
            .collect();
        log_log_slope(&pts).unwrap_or(f64::NAN)
    };
    let groups: Vec<Vec<&[f64]>> = series.iter().map(|s| s.1.clone()).collect();
    let mut pooled: Vec<Vec<f64>> = groups.iter().map(|g| g.concat()).collect();
    let slope = fit(&mut pooled);
    slope
        .is_finite()
        .then(|| (slope, hierarchical_bootstrap(&groups, fit, level, seed)))
}

/// `median(numerator) / median(denominator)` with its bootstrap interval, both sides'
/// samples clustered by process.
pub fn ratio_interval(
    numerator: &[&[f64]],
    denominator: &[&[f64]],
    level: f64,
    seed: u64,
) -> (f64, Interval) {
    let ratio = |g: &mut [Vec<f64>]| median_in_place(&mut g[0]) / median_in_place(&mut g[1]);
    let mut pooled = vec![numerator.concat(), denominator.concat()];
    let point = ratio(&mut pooled);
    let ci = hierarchical_bootstrap(
        &[numerator.to_vec(), denominator.to_vec()],
        ratio,
        level,
        seed,
    );
    (point, ci)
}

/// Classifies samples against Tukey's fences.
pub fn tukey_outliers(samples: &[f64]) -> Outliers {
    if samples.len() < 4 {
        return Outliers::default();
    }
    let s = sorted(samples);
    let (q1, q3) = (percentile_sorted(&s, 0.25), percentile_sorted(&s, 0.75));
    let iqr = q3 - q1;
    let mut o = Outliers::default();
    for &x in &s {
        if x < q1 - 3.0 * iqr {
            o.low_severe += 1;
        } else if x < q1 - 1.5 * iqr {
            o.low_mild += 1;
        } else if x > q3 + 3.0 * iqr {
            o.high_severe += 1;
        } else if x > q3 + 1.5 * iqr {
            o.high_mild += 1;
        }
    }
    o
}

/// Summarises samples; `None` for an empty slice.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let s = sorted(samples);
    Some(Summary {
        median: percentile_sorted(&s, 0.5),
        mean: s.iter().sum::<f64>() / s.len() as f64,
        p10: percentile_sorted(&s, 0.1),
        p90: percentile_sorted(&s, 0.9),
        min: s[0],
        max: s[s.len() - 1],
        ci: bootstrap_median_ci(samples, CONFIDENCE, 0x5eed),
        outliers: tukey_outliers(samples),
    })
}

/// Least-squares slope of `ln y` against `ln x`: the exponent `k` in `y ~ x^k`.
/// `None` with fewer than two distinct positive points.
pub fn log_log_slope(points: &[(f64, f64)]) -> Option<f64> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    let n = pts.len() as f64;
    if pts.len() < 2 {
        return None;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// The standard normal quantile (inverse CDF) by Acklam's rational approximation
/// (relative error below 1.2e-9), for `p` in `(0, 1)`.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Wilson score interval of a proportion: `successes` of `trials` at confidence `level`.
/// Unlike the normal approximation it stays inside `[0, 1]` and is informative at 0 %
/// and 100 %, which is where small accuracy samples live. `trials == 0` gives `[0, 1]`.
pub fn wilson_interval(successes: usize, trials: usize, level: f64) -> Interval {
    if trials == 0 {
        return Interval {
            lo: 0.0,
            hi: 1.0,
            level,
        };
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z = normal_quantile(1.0 - (1.0 - level) / 2.0);
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Interval {
        lo: (centre - half).max(0.0),
        hi: (centre + half).min(1.0),
        level,
    }
}

/// Interval of the difference of two proportions, `a - b` (each `(successes,
/// trials)`), by Newcombe's hybrid score method (1998, method 10) from the two Wilson
/// intervals: it stays inside `[-1, 1]` and behaves at 0 % and 100 %, where the
/// normal approximation fails.
pub fn difference_interval(a: (usize, usize), b: (usize, usize), level: f64) -> Interval {
    let p = |(k, n): (usize, usize)| if n == 0 { 0.5 } else { k as f64 / n as f64 };
    let (pa, pb) = (p(a), p(b));
    let (wa, wb) = (
        wilson_interval(a.0, a.1, level),
        wilson_interval(b.0, b.1, level),
    );
    let d = pa - pb;
    Interval {
        lo: d - ((pa - wa.lo).powi(2) + (wb.hi - pb).powi(2)).sqrt(),
        hi: d + ((wa.hi - pa).powi(2) + (pb - wb.lo).powi(2)).sqrt(),
        level,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles_match_tables() {
        assert!((normal_quantile(0.975) - 1.959_963_985).abs() < 1e-8);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert!((normal_quantile(0.005) + 2.575_829_304).abs() < 1e-8);
    }

    #[test]
    fn wilson_intervals_match_published_values() {
        // Wilson (1927) / Newcombe (1998) table: 81 of 263 -> 0.2553 .. 0.3662.
        let i = wilson_interval(81, 263, 0.95);
        assert!(
            (i.lo - 0.2553).abs() < 1e-4 && (i.hi - 0.3662).abs() < 1e-4,
            "{i:?}"
        );
        // All correct or all wrong stays informative and inside [0, 1].
        let all = wilson_interval(10, 10, 0.95);
        assert!(
            (all.hi - 1.0).abs() < 1e-12 && (all.lo - 0.7225).abs() < 1e-4,
            "{all:?}"
        );
        let none = wilson_interval(0, 10, 0.95);
        assert!(
            none.lo == 0.0 && (none.hi - 0.2775).abs() < 1e-4,
            "{none:?}"
        );
        assert_eq!(
            (
                wilson_interval(0, 0, 0.95).lo,
                wilson_interval(0, 0, 0.95).hi
            ),
            (0.0, 1.0)
        );
        // More trials, narrower interval.
        let (a, b) = (wilson_interval(5, 10, 0.95), wilson_interval(50, 100, 0.95));
        assert!(b.hi - b.lo < a.hi - a.lo);
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile_sorted(&s, 0.5), 3.0);
        assert_eq!(percentile_sorted(&s, 0.0), 1.0);
        assert_eq!(percentile_sorted(&s, 1.0), 5.0);
        assert!((percentile_sorted(&s, 0.1) - 1.4).abs() < 1e-12);
        assert_eq!(percentile_sorted(&[1.0, 2.0], 0.5), 1.5);
    }

    #[test]
    fn summary_of_unsorted_samples() {
        let s = summarize(&[5.0, 1.0, 4.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.mean), (3.0, 1.0, 5.0, 3.0));
        assert!(s.ci.lo <= s.median && s.median <= s.ci.hi);
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn single_sample_has_degenerate_interval() {
        let s = summarize(&[7.0]).unwrap();
        assert_eq!((s.ci.lo, s.ci.hi, s.p10, s.p90), (7.0, 7.0, 7.0, 7.0));
    }

    #[test]
    fn bootstrap_interval_narrows_with_more_samples_and_is_seeded() {
        let noisy =
            |n: usize| -> Vec<f64> { (0..n).map(|i| 100.0 + ((i * 37) % 11) as f64).collect() };
        let small = bootstrap_median_ci(&noisy(8), 0.95, 1);
        let large = bootstrap_median_ci(&noisy(400), 0.95, 1);
        assert!(
            large.hi - large.lo < small.hi - small.lo,
            "{small:?} {large:?}"
        );
        assert_eq!(small, bootstrap_median_ci(&noisy(8), 0.95, 1));
    }

    #[test]
    fn tukey_flags_far_points_and_keeps_them() {
        let mut s: Vec<f64> = (0..20).map(|i| 10.0 + (i % 5) as f64 * 0.1).collect();
        s.push(100.0);
        s.push(10.9);
        let o = tukey_outliers(&s);
        assert_eq!(o.high_severe, 1);
        assert_eq!(o.high_mild, 1);
        assert_eq!(o.low_mild + o.low_severe, 0);
    }

    #[test]
    fn log_log_slope_recovers_power_laws() {
        let quad: Vec<(f64, f64)> = [128.0, 512.0, 2048.0]
            .iter()
            .map(|&x| (x, 3.0 * x * x))
            .collect();
        assert!((log_log_slope(&quad).unwrap() - 2.0).abs() < 1e-9);
        let flat = [(128.0, 5.0), (4096.0, 5.0)];
        assert!(log_log_slope(&flat).unwrap().abs() < 1e-12);
        assert!(log_log_slope(&[(1.0, 1.0)]).is_none());
    }

    #[test]
    fn clusters_split_by_process_and_fall_back_to_one() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(clusters(&s, &[2, 3]), vec![&s[..2], &s[2..]]);
        assert_eq!(clusters(&s, &[]), vec![&s[..]]);
        assert_eq!(clusters(&s, &[2, 2]), vec![&s[..]]);
    }

    #[test]
    fn process_luck_widens_the_interval() {
        // Three processes, each tight but 5 % apart: as one pool the median (the middle
        // process) looks precise; drawn by process it is not.
        let at = |base: f64| -> Vec<f64> { (0..16).map(|i| base + (i % 4) as f64 * 0.1).collect() };
        let (a, b, c) = (at(100.0), at(105.0), at(110.0));
        let pooled = [a.clone(), b.clone(), c.clone()].concat();
        let naive = bootstrap_median_ci(&pooled, 0.95, 3);
        let clustered = clustered_median_ci(&[&a, &b, &c], 0.95, 3);
        assert!(
            clustered.hi - clustered.lo > 3.0 * (naive.hi - naive.lo),
            "{naive:?} {clustered:?}"
        );
    }

    #[test]
    fn slope_interval_brackets_the_true_exponent() {
        let noisy = |x: f64, k: f64| -> Vec<f64> {
            (0..12)
                .map(|i| x.powf(k) * (1.0 + 0.02 * ((i * 7 % 5) as f64 - 2.0)))
                .collect()
        };
        let lens = [128.0, 512.0, 2048.0, 8192.0];
        for k in [0.0, 1.0, 1.3] {
            let data: Vec<Vec<f64>> = lens.iter().map(|&l| noisy(l, k)).collect();
            let series: Vec<(f64, Vec<&[f64]>)> = lens
                .iter()
                .zip(&data)
                .map(|(&l, d)| (l, vec![&d[..6], &d[6..]]))
                .collect();
            let (slope, ci) = slope_interval(&series, 0.95, 1).unwrap();
            assert!((slope - k).abs() < 0.01, "{slope} {k}");
            assert!(
                ci.lo <= slope && slope <= ci.hi && ci.hi - ci.lo < 0.05,
                "{ci:?}"
            );
        }
        assert!(slope_interval(&[(1.0, vec![&[1.0][..]])], 0.95, 1).is_none());
    }

    #[test]
    fn ratio_interval_of_medians() {
        let base = [20.0, 21.0, 19.0, 20.0];
        let cand = [10.0, 10.5, 9.5, 10.0];
        let (r, ci) = ratio_interval(&[&base], &[&cand], 0.95, 1);
        assert!((r - 2.0).abs() < 1e-12);
        assert!(ci.lo > 1.7 && ci.hi < 2.3, "{ci:?}");
    }

    #[test]
    fn needed_to_decide_scales_with_the_square_of_the_excess_width() {
        // Estimate 0.03, threshold 0.05, interval reaches 0.07: the half-width on the
        // threshold's side (0.04) must fall to 0.02, a quarter of the variance.
        let ci = Interval {
            lo: -0.01,
            hi: 0.07,
            level: 0.95,
        };
        assert_eq!(needed_to_decide(0.03, ci, 0.05, 2), Some(8));
        assert_eq!(needed_to_decide(0.05, ci, 0.05, 2), None);
        let decided = Interval {
            lo: 0.0,
            hi: 0.04,
            level: 0.95,
        };
        assert_eq!(needed_to_decide(0.02, decided, 0.05, 2), Some(2));
    }

    #[test]
    fn difference_interval_matches_newcombe() {
        // Newcombe (1998) table II, example (a): 56/70 vs 48/80 -> 0.0524 .. 0.3339.
        let i = difference_interval((56, 70), (48, 80), 0.95);
        assert!(
            (i.lo - 0.0524).abs() < 1e-3 && (i.hi - 0.3339).abs() < 1e-3,
            "{i:?}"
        );
        let same = difference_interval((10, 10), (10, 10), 0.95);
        assert!(
            same.lo < 0.0 && same.hi > 0.0 && same.lo >= -1.0,
            "{same:?}"
        );
    }
}
