//! Timing two kernels against each other on this machine.
//!
//! Samples of the two alternate, so a neighbour's load or a frequency change
//! hits both alike; the median of each then ignores the odd preempted sample.

use std::time::{Duration, Instant};

/// Fewest samples of each kernel, whatever the budget.
const MIN_SAMPLES: usize = 3;
/// Most samples of each kernel, even when the budget allows more.
const MAX_SAMPLES: usize = 15;
/// A sample repeats a fast kernel until it lasts about this long, above the clock's resolution.
const SAMPLE_TARGET: Duration = Duration::from_micros(20);

/// Median seconds per call of `a` and of `b`: at least [`MIN_SAMPLES`] each,
/// more while `budget` lasts.
pub(super) fn race(mut a: impl FnMut(), mut b: impl FnMut(), budget: Duration) -> (f64, f64) {
    let start = Instant::now();
    let calls_a = calls_per_sample(time(&mut a, 1));
    let calls_b = calls_per_sample(time(&mut b, 1));
    let mut ta = Vec::with_capacity(MAX_SAMPLES);
    let mut tb = Vec::with_capacity(MAX_SAMPLES);
    while ta.len() < MIN_SAMPLES || (ta.len() < MAX_SAMPLES && start.elapsed() < budget) {
        ta.push(time(&mut a, calls_a));
        tb.push(time(&mut b, calls_b));
    }
    (median(&mut ta), median(&mut tb))
}

/// Seconds per call over `calls` calls.
fn time(f: &mut impl FnMut(), calls: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..calls {
        f();
    }
    t.elapsed().as_secs_f64() / f64::from(calls)
}

fn calls_per_sample(secs_per_call: f64) -> u32 {
    let wanted = SAMPLE_TARGET.as_secs_f64() / secs_per_call.max(1e-9);
    wanted.ceil().clamp(1.0, 1000.0) as u32
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::INFINITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_ignores_one_outlier_and_an_empty_list_never_wins() {
        assert_eq!(median(&mut [3.0, 100.0, 1.0, 2.0, 2.5]), 2.5);
        assert_eq!(median(&mut []), f64::INFINITY);
    }

    #[test]
    fn the_race_runs_each_side_at_least_the_minimum_number_of_samples() {
        let (mut na, mut nb) = (0usize, 0usize);
        let (a, b) = race(|| na += 1, || nb += 1, Duration::ZERO);
        // One calibration call plus MIN_SAMPLES samples of at least one call each.
        assert!(na > MIN_SAMPLES && nb > MIN_SAMPLES, "{na} {nb}");
        assert!(a.is_finite() && b.is_finite());
    }
}
