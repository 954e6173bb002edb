//! Percentiles and medians: every figure of the suite is a percentile of one run's samples,
//! then the median of several runs (the machine is shared and noisy; a median ignores one
//! unlucky run where a mean would not).

use serde::Serialize;

/// The `p`-th percentile (0–100) of `values`, nearest rank; `0.0` when empty.
#[cfg(test)]
#[must_use]
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile_sorted(&sorted, p)
}

/// Like [`percentile`], on values already sorted.
#[must_use]
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of several runs' figures; `0.0` when there are none.
#[must_use]
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// A latency distribution, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    #[must_use]
    pub fn of(samples_ms: &[f64]) -> Self {
        if samples_ms.is_empty() {
            return Self::default();
        }
        let mut sorted = samples_ms.to_vec();
        sorted.sort_by(f64::total_cmp);
        #[allow(clippy::cast_precision_loss)]
        let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
        Self {
            count: sorted.len(),
            p50_ms: round3(percentile_sorted(&sorted, 50.0)),
            p90_ms: round3(percentile_sorted(&sorted, 90.0)),
            p99_ms: round3(percentile_sorted(&sorted, 99.0)),
            max_ms: round3(sorted[sorted.len() - 1]),
            mean_ms: round3(mean),
        }
    }
}

/// Three decimals are plenty for milliseconds and keep the JSON readable.
#[must_use]
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// `value / baseline`, or `None` when the baseline is missing or zero.
#[must_use]
pub fn ratio(value: f64, baseline: f64) -> Option<f64> {
    (baseline > 0.0 && baseline.is_finite()).then(|| round3(value / baseline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_and_medians() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((percentile(&values, 50.0) - 50.0).abs() < f64::EPSILON);
        assert!((percentile(&values, 99.0) - 99.0).abs() < f64::EPSILON);
        assert!((percentile(&[3.0], 99.0) - 3.0).abs() < f64::EPSILON);
        assert!((median(&[5.0, 1.0, 3.0]) - 3.0).abs() < f64::EPSILON);
        assert!((median(&[4.0, 1.0, 3.0, 2.0]) - 2.5).abs() < f64::EPSILON);
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(Latency::of(&[]).count, 0);
    }
}
