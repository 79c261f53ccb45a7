//! One-dimensional k-means (Lloyd's algorithm) for weight-sharing codebooks.
//!
//! In 1-D the clusters of sorted centroids are contiguous runs of the sorted
//! values, split at the midpoints between neighbouring centroids. So the values
//! are sorted once, prefix sums give any run's mean in O(1), and an iteration
//! only binary-searches `k − 1` boundaries: O(k log n) instead of O(n·k).

/// Where the centroids start (Han et al. 2016, §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodebookInit {
    /// Evenly spaced between the smallest and the largest value: keeps the rare
    /// large weights representable, which the paper found works best.
    Linear,
    /// At evenly spaced quantiles of the values' CDF: dense where the weights
    /// are dense, so the reconstruction error starts lowest.
    Density,
}

/// Most centroids a codebook can hold: codes are `u8`.
pub const MAX_CENTROIDS: usize = 256;

/// Clusters `values` into at most `k` centroids (`k` is clamped to `1..=256`).
///
/// Returns the centroids, ascending and distinct, and for each value the index
/// of its centroid. Clusters left empty are dropped, so fewer than `k`
/// centroids come back when there are fewer distinct values than `k` (then each
/// distinct value is its own centroid, exactly) or when a cluster emptied.
/// No values give no centroids. Deterministic; ties at a midpoint go to the
/// lower centroid. Non-finite values are not expected (model weights are finite).
pub fn kmeans_1d(
    values: &[f32],
    k: usize,
    init: CodebookInit,
    iters: usize,
) -> (Vec<f32>, Vec<u8>) {
    let k = k.clamp(1, MAX_CENTROIDS);
    if values.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let sorted: Vec<f32> = order.iter().map(|&i| values[i]).collect();

    let distinct = distinct_sorted(&sorted);
    let centroids = if distinct.len() <= k {
        distinct
    } else {
        lloyd(&sorted, initial(&sorted, k, init), iters)
    };
    assign(values, &order, &sorted, centroids)
}

/// The distinct values of an ascending slice.
fn distinct_sorted(sorted: &[f32]) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::new();
    for &v in sorted {
        if out.last() != Some(&v) {
            out.push(v);
        }
    }
    out
}

fn initial(sorted: &[f32], k: usize, init: CodebookInit) -> Vec<f64> {
    let n = sorted.len();
    let (lo, hi) = (sorted[0] as f64, sorted[n - 1] as f64);
    match init {
        CodebookInit::Linear if k == 1 => vec![(lo + hi) / 2.0],
        CodebookInit::Linear => (0..k)
            .map(|j| lo + (hi - lo) * j as f64 / (k - 1) as f64)
            .collect(),
        // The middle of each of k equal-mass slices of the CDF.
        CodebookInit::Density => (0..k)
            .map(|j| {
                let q = ((2 * j + 1) * n) / (2 * k);
                sorted[q.min(n - 1)] as f64
            })
            .collect(),
    }
}

/// Lloyd iterations on sorted values; stops early once the runs stop moving.
fn lloyd(sorted: &[f32], mut centroids: Vec<f64>, iters: usize) -> Vec<f32> {
    let mut prefix = Vec::with_capacity(sorted.len() + 1);
    let mut acc = 0.0f64;
    prefix.push(acc);
    for &v in sorted {
        acc += v as f64;
        prefix.push(acc);
    }
    let mut bounds = run_bounds(sorted, &centroids);
    for _ in 0..iters {
        for (j, c) in centroids.iter_mut().enumerate() {
            let (start, end) = (bounds[j], bounds[j + 1]);
            // An empty run keeps its centroid, which stays between its neighbours' means.
            if end > start {
                *c = (prefix[end] - prefix[start]) / (end - start) as f64;
            }
        }
        let next = run_bounds(sorted, &centroids);
        if next == bounds {
            break;
        }
        bounds = next;
    }
    centroids.iter().map(|&c| c as f32).collect()
}

/// Start index of each centroid's run, plus `n` at the end: values up to the
/// midpoint between centroids `j` and `j + 1` belong to `j`.
fn run_bounds(sorted: &[f32], centroids: &[f64]) -> Vec<usize> {
    let mut bounds = Vec::with_capacity(centroids.len() + 1);
    bounds.push(0);
    for pair in centroids.windows(2) {
        let mid = (pair[0] + pair[1]) / 2.0;
        bounds.push(sorted.partition_point(|&v| (v as f64) <= mid));
    }
    bounds.push(sorted.len());
    bounds
}

/// Final assignment in sorted order, dropping centroids no value chose.
fn assign(
    values: &[f32],
    order: &[usize],
    sorted: &[f32],
    mut centroids: Vec<f32>,
) -> (Vec<f32>, Vec<u8>) {
    centroids.sort_by(f32::total_cmp);
    centroids.dedup();
    let wide: Vec<f64> = centroids.iter().map(|&c| c as f64).collect();
    let bounds = run_bounds(sorted, &wide);
    let mut kept = Vec::with_capacity(centroids.len());
    let mut codes = vec![0u8; values.len()];
    for (j, run) in bounds.windows(2).enumerate() {
        if run[1] > run[0] {
            let code = kept.len() as u8;
            kept.push(centroids[j]);
            for &i in &order[run[0]..run[1]] {
                codes[i] = code;
            }
        }
    }
    (kept, codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sse(values: &[f32], centroids: &[f32], codes: &[u8]) -> f64 {
        values
            .iter()
            .zip(codes)
            .map(|(&v, &c)| (v as f64 - centroids[c as usize] as f64).powi(2))
            .sum()
    }

    #[test]
    fn two_obvious_clusters_are_found_from_either_init() {
        let values = [1.0, 1.2, 0.8, 5.0, 5.2, 4.8, 1.0];
        for init in [CodebookInit::Linear, CodebookInit::Density] {
            let (c, codes) = kmeans_1d(&values, 2, init, 20);
            assert_eq!(c.len(), 2, "{init:?}");
            assert!(
                (c[0] - 1.0).abs() < 1e-6 && (c[1] - 5.0).abs() < 1e-6,
                "{c:?}"
            );
            assert_eq!(codes, vec![0, 0, 0, 1, 1, 1, 0]);
        }
    }

    #[test]
    fn linear_and_density_inits_start_where_documented() {
        // Nine values crowded near 0 and one outlier at 10.
        let mut sorted: Vec<f32> = (0..9).map(|i| i as f32 * 0.1).collect();
        sorted.push(10.0);
        let linear = initial(&sorted, 3, CodebookInit::Linear);
        assert_eq!(linear, vec![0.0, 5.0, 10.0]);
        // Quantiles at 1/6, 3/6, 5/6 of 10 values: indices 1, 5, 8.
        let density = initial(&sorted, 3, CodebookInit::Density);
        let expect: Vec<f64> = [0.1f32, 0.5, 0.8].iter().map(|&v| v as f64).collect();
        assert_eq!(density, expect);
        // Linear keeps the outlier exact; density spends its centroids on the crowd.
        let (cl, _) = kmeans_1d(&sorted, 3, CodebookInit::Linear, 0);
        assert!(cl.contains(&10.0), "{cl:?}");
        let (cd, codes) = kmeans_1d(&sorted, 3, CodebookInit::Density, 50);
        assert!(
            sse(&sorted, &cd, &codes)
                <= sse(
                    &sorted,
                    &cl,
                    &kmeans_1d(&sorted, 3, CodebookInit::Linear, 0).1
                ) + 1e-9
        );
    }

    #[test]
    fn iterations_never_increase_the_squared_error() {
        let values: Vec<f32> = (0..500)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .map(|v| v * v * v)
            .collect();
        for init in [CodebookInit::Linear, CodebookInit::Density] {
            let mut last = f64::INFINITY;
            for iters in [0, 1, 2, 5, 20] {
                let (c, codes) = kmeans_1d(&values, 8, init, iters);
                let e = sse(&values, &c, &codes);
                assert!(e <= last + 1e-9, "{init:?} iters {iters}: {e} > {last}");
                last = e;
                assert!(c.windows(2).all(|w| w[0] < w[1]), "ascending {c:?}");
            }
        }
    }

    #[test]
    fn each_value_is_assigned_its_nearest_centroid() {
        let values: Vec<f32> = (0..300)
            .map(|i| ((i * 37) % 101) as f32 * 0.013 - 0.6)
            .collect();
        let (c, codes) = kmeans_1d(&values, 6, CodebookInit::Linear, 30);
        for (&v, &code) in values.iter().zip(&codes) {
            let d = (v - c[code as usize]).abs();
            assert!(
                c.iter().all(|&o| (v - o).abs() >= d - 1e-7),
                "{v} → {}",
                c[code as usize]
            );
        }
    }

    #[test]
    fn fewer_values_than_centroids_equal_values_and_nothing_are_handled() {
        let (c, codes) = kmeans_1d(&[0.3, -0.2, 0.3], 16, CodebookInit::Linear, 10);
        assert_eq!(c, vec![-0.2, 0.3]);
        assert_eq!(codes, vec![1, 0, 1]);
        let (c, codes) = kmeans_1d(&[0.7; 50], 4, CodebookInit::Density, 10);
        assert_eq!(c, vec![0.7]);
        assert_eq!(codes, vec![0; 50]);
        assert_eq!(
            kmeans_1d(&[], 4, CodebookInit::Linear, 10),
            (vec![], vec![])
        );
        // k is clamped to 256 so codes fit a byte.
        let many: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let (c, codes) = kmeans_1d(&many, 10_000, CodebookInit::Linear, 3);
        assert!(c.len() <= MAX_CENTROIDS);
        assert!(codes.iter().all(|&code| (code as usize) < c.len()));
    }

    #[test]
    fn the_result_is_deterministic() {
        let values: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 997) as f32 * 1e-3)
            .collect();
        let a = kmeans_1d(&values, 32, CodebookInit::Density, 25);
        let b = kmeans_1d(&values, 32, CodebookInit::Density, 25);
        assert_eq!(a, b);
    }
}
