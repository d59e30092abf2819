//! Non-parametric trend statistics: Mann-Kendall, Theil-Sen with Sen's (1968) rank-based
//! confidence interval, and the few normal-distribution helpers they need.
//!
//! Rank-based methods are used on purpose: memory series have outliers (a burst of
//! requests, a collection that happens to run just before a sample) and non-normal noise,
//! which would fool least squares and its t-based intervals.

use std::cmp::Ordering;

/// Result of the Mann-Kendall trend test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannKendall {
    /// Kendall's S: concordant minus discordant pairs.
    pub s: f64,
    /// Variance of S under the no-trend hypothesis, corrected for ties in x and y.
    pub var_s: f64,
    /// Normal score of S with continuity correction (0 when `var_s` is 0).
    pub z: f64,
    /// Two-sided p-value of `z`.
    pub p_value: f64,
}

/// Theil-Sen slope with its confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TheilSen {
    /// Median of the pairwise slopes.
    pub slope: f64,
    /// Lower bound of the confidence interval.
    pub ci_low: f64,
    /// Upper bound of the confidence interval.
    pub ci_high: f64,
    /// Median of `y - slope * x`, so that `intercept + slope * x` is the fitted line.
    pub intercept: f64,
}

fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Sizes of groups of equal values: the "ties" of the tie corrections.
fn tie_group_sizes(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    let mut sizes = Vec::new();
    let mut run = 1usize;
    for w in sorted.windows(2) {
        if w[0] == w[1] {
            run += 1;
        } else {
            if run > 1 {
                sizes.push(run as f64);
            }
            run = 1;
        }
    }
    if run > 1 {
        sizes.push(run as f64);
    }
    sizes
}

/// Mann-Kendall test of a monotonic trend of `y` against `x`.
///
/// Pairs are scored `sign(x_j - x_i) * sign(y_j - y_i)`, so unsorted input and equal x
/// values are handled. The variance is Kendall's (1970) exact form under ties in both
/// variables, which reduces to the textbook `n(n-1)(2n+5)/18` without ties.
pub fn mann_kendall(x: &[f64], y: &[f64]) -> MannKendall {
    let n = x.len().min(y.len());
    let mut s = 0.0;
    for i in 0..n {
        for j in (i + 1)..n {
            s += sign(x[j] - x[i]) * sign(y[j] - y[i]);
        }
    }
    let nf = n as f64;
    let ties_x = tie_group_sizes(&x[..n]);
    let ties_y = tie_group_sizes(&y[..n]);
    let sum_a = |t: &[f64]| {
        t.iter()
            .map(|u| u * (u - 1.0) * (2.0 * u + 5.0))
            .sum::<f64>()
    };
    let sum_b = |t: &[f64]| t.iter().map(|u| u * (u - 1.0) * (u - 2.0)).sum::<f64>();
    let sum_c = |t: &[f64]| t.iter().map(|u| u * (u - 1.0)).sum::<f64>();
    let mut var_s = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - sum_a(&ties_x) - sum_a(&ties_y)) / 18.0;
    if n > 2 {
        var_s += sum_b(&ties_x) * sum_b(&ties_y) / (9.0 * nf * (nf - 1.0) * (nf - 2.0));
    }
    if n > 1 {
        var_s += sum_c(&ties_x) * sum_c(&ties_y) / (2.0 * nf * (nf - 1.0));
    }
    let var_s = var_s.max(0.0);
    let z = if var_s <= 0.0 {
        0.0
    } else if s > 0.0 {
        (s - 1.0) / var_s.sqrt()
    } else if s < 0.0 {
        (s + 1.0) / var_s.sqrt()
    } else {
        0.0
    };
    let p_value = (2.0 * normal_sf(z.abs())).min(1.0);
    MannKendall {
        s,
        var_s,
        z,
        p_value,
    }
}

/// Theil-Sen slope of `y` against `x` with Sen's (1968) distribution-free confidence
/// interval at level `confidence` (e.g. 0.95).
///
/// The interval takes the order statistics of the pairwise slopes at ranks
/// `(N ± z·sqrt(var S)) / 2`, where `var S` is the Mann-Kendall variance: the normal
/// approximation Sen gives, good from about 10 points. Returns `None` when every x is
/// equal (no slope exists).
pub fn theil_sen(x: &[f64], y: &[f64], confidence: f64, var_s: f64) -> Option<TheilSen> {
    let n = x.len().min(y.len());
    let mut slopes = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        for j in (i + 1)..n {
            let dx = x[j] - x[i];
            if dx != 0.0 {
                slopes.push((y[j] - y[i]) / dx);
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    let slope = median_sorted(&slopes);
    let count = slopes.len() as f64;
    let z = normal_quantile(0.5 + confidence / 2.0);
    let c = z * var_s.max(0.0).sqrt();
    // Ranks are 1-based in Sen's paper: lower = slopes[M1], upper = slopes[M2 + 1].
    let m1 = ((count - c) / 2.0).floor();
    let m2 = ((count + c) / 2.0).ceil();
    let last = slopes.len() - 1;
    let rank_to_index = |rank: f64| -> usize { (rank.max(1.0) as usize - 1).min(last) };
    let ci_low = slopes[rank_to_index(m1)];
    let ci_high = slopes[rank_to_index(m2 + 1.0)];
    let mut residual_levels: Vec<f64> = (0..n).map(|i| y[i] - slope * x[i]).collect();
    residual_levels.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    let intercept = median_sorted(&residual_levels);
    Some(TheilSen {
        slope,
        ci_low: ci_low.min(slope),
        ci_high: ci_high.max(slope),
        intercept,
    })
}

/// Median of an already sorted slice; 0 for an empty one.
pub fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Median of any slice.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    median_sorted(&sorted)
}

/// Complementary error function, Numerical Recipes' Chebyshev fit (`erfcc`):
/// fractional error below 1.2e-7 everywhere, ample for p-values.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Upper tail of the standard normal: P(Z > z).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Inverse of the standard normal CDF (Acklam's rational approximation, relative error
/// below 1.2e-9). `p` is clamped into (0, 1).
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
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let p_low = 0.024_25;
    if p < p_low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - p_low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn normal_helpers_match_tables() {
        assert!(close(normal_sf(0.0), 0.5, 1e-7));
        assert!(close(normal_sf(1.959_964), 0.025, 1e-6));
        assert!(close(normal_sf(-1.0), 0.841_344_7, 1e-6));
        assert!(close(normal_quantile(0.975), 1.959_964, 1e-6));
        assert!(close(normal_quantile(0.5), 0.0, 1e-9));
        assert!(close(normal_quantile(0.01), -2.326_348, 1e-6));
        assert!(close(normal_quantile(0.999), 3.090_232, 1e-6));
    }

    #[test]
    fn mann_kendall_without_ties_matches_hand_computation() {
        // y strictly increasing over 10 points: S = 45, var = 10*9*25/18 = 125.
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let mk = mann_kendall(&x, &x);
        assert_eq!(mk.s, 45.0);
        assert!(close(mk.var_s, 125.0, 1e-9));
        assert!(close(mk.z, 44.0 / 125f64.sqrt(), 1e-9));
        assert!(mk.p_value < 1e-4);
    }

    #[test]
    fn mann_kendall_tie_correction_reduces_variance() {
        let x: Vec<f64> = (0..6).map(f64::from).collect();
        let y = [1.0, 1.0, 2.0, 2.0, 2.0, 3.0];
        let mk = mann_kendall(&x, &y);
        // Ties in y: one pair group (2) and one triple (3).
        // var = (6*5*17 - 2*1*9 - 3*2*11) / 18 = (510 - 18 - 66) / 18.
        assert!(close(mk.var_s, 426.0 / 18.0, 1e-9));
        // Concordant pairs: all pairs with distinct y (15 total - 1 - 3 tied) = 11.
        assert_eq!(mk.s, 11.0);
    }

    #[test]
    fn constant_series_has_no_trend_and_no_nan() {
        let x: Vec<f64> = (0..12).map(f64::from).collect();
        let y = vec![7.0; 12];
        let mk = mann_kendall(&x, &y);
        assert_eq!(mk.s, 0.0);
        assert_eq!(mk.z, 0.0);
        assert!(close(mk.p_value, 1.0, 1e-9));
        let ts = theil_sen(&x, &y, 0.95, mk.var_s);
        let ts = ts.map(|t| (t.slope, t.ci_low, t.ci_high));
        assert_eq!(ts, Some((0.0, 0.0, 0.0)));
    }

    #[test]
    fn theil_sen_resists_an_outlier_and_brackets_the_slope() {
        let x: Vec<f64> = (0..30).map(f64::from).collect();
        let mut y: Vec<f64> = x
            .iter()
            .map(|v| 100.0 + 3.0 * v + (v * 7.0).sin())
            .collect();
        y[15] = 10_000.0;
        let mk = mann_kendall(&x, &y);
        let ts = theil_sen(&x, &y, 0.95, mk.var_s);
        let Some(ts) = ts else {
            panic!("slope must exist")
        };
        assert!(close(ts.slope, 3.0, 0.1), "slope {}", ts.slope);
        assert!(ts.ci_low <= 3.0 && 3.0 <= ts.ci_high);
        assert!(ts.ci_low > 2.5 && ts.ci_high < 3.5);
        assert!(close(ts.intercept, 100.0, 2.0));
    }

    #[test]
    fn sen_interval_covers_the_true_slope_about_as_often_as_stated() {
        // 400 series of 30 points, slope 2 plus uniform noise: a 95% interval should
        // contain 2 in roughly 95% of them (the normal approximation is slightly
        // conservative with ties-free data).
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut uniform = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let x: Vec<f64> = (0..30).map(f64::from).collect();
        let trials = 400;
        let mut covered = 0;
        for _ in 0..trials {
            let y: Vec<f64> = x
                .iter()
                .map(|v| 2.0 * v + 20.0 * (uniform() - 0.5))
                .collect();
            let mk = mann_kendall(&x, &y);
            if let Some(ts) = theil_sen(&x, &y, 0.95, mk.var_s) {
                if ts.ci_low <= 2.0 && 2.0 <= ts.ci_high {
                    covered += 1;
                }
            }
        }
        let rate = f64::from(covered) / f64::from(trials);
        assert!((0.90..=0.995).contains(&rate), "coverage {rate}");
    }

    #[test]
    fn theil_sen_needs_two_distinct_x() {
        assert!(theil_sen(&[1.0, 1.0], &[2.0, 3.0], 0.95, 1.0).is_none());
    }
}
