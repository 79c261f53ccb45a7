//! Synthetic classification datasets: a simplified port of scikit-learn's
//! [`make_classification`](https://scikit-learn.org/stable/modules/generated/sklearn.datasets.make_classification.html).
//!
//! Used by `kiln gen-data`, the benchmarks and the tests, so that the README's
//! quickstart and the figures in the issues run on the same kind of data the
//! reference figures (Keras, PyTorch, scikit-learn) were measured on.
//!
//! The recipe, as in scikit-learn with `n_clusters_per_class=1`,
//! `hypercube=True`, `shift=0`, `scale=1`:
//!
//! 1. Each class gets a distinct vertex of the `informative`-dimensional
//!    hypercube `{-class_sep, +class_sep}^informative` as its centroid.
//! 2. Each class's rows on the informative features are standard normal
//!    samples multiplied by a random matrix with entries in `[-1, 1)` (a random
//!    covariance, drawn per class) and moved to the class centroid. Classes get
//!    `rows / classes` rows each; the first `rows % classes` classes one more.
//! 3. Up to [`REDUNDANT`] redundant features are random linear combinations of
//!    the informative ones; the remaining features are standard normal noise.
//! 4. A fraction `flip_y` of the rows get a label drawn uniformly from all
//!    classes (so about `flip_y * (classes - 1) / classes` really change).
//! 5. The rows are shuffled.
//!
//! Unlike scikit-learn the columns are *not* shuffled: the informative
//! features are always `x0 .. x{informative-1}`, followed by the redundant
//! ones and then the noise. A network does not care about column order, and
//! knowing where the signal lives makes the data easier to reason about.
//!
//! **Seeds.** The *problem* — the centroids, the per-class covariance matrices
//! and the redundant mixing — is drawn from a fixed seed ([`PROBLEM_SEED`]) and
//! depends only on `features`, `informative`, `classes` and `class_sep`. The
//! *rows* (gaussian samples, noise, label flips, shuffle) are drawn from
//! `seed`. So two specs that differ only in `seed` (and `rows`) are independent
//! samples of one problem: `--seed 42` for training and `--seed 7` for a
//! held-out test set, as the quickstart does, measure generalization. (In
//! scikit-learn `random_state` decides both, so a test set must be split off
//! one call's output.) Both generators are `ChaCha8Rng`, so the same spec gives
//! the same dataset on every machine.

use std::collections::HashSet;
use std::io::{BufWriter, Write};

use ndarray::{Array1, Array2, Axis, s};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::data::{Dataset, Task};
use crate::validation::{Checker, Invalid};

/// Redundant features (linear combinations of the informative ones), as
/// scikit-learn's default `n_redundant=2`; fewer when there is no room.
pub const REDUNDANT: usize = 2;

/// Seed of the problem (centroids, covariances, redundant mixing); see the module docs.
pub const PROBLEM_SEED: u64 = 0x6b69_6c6e; // "kiln"

/// Largest dataset (`rows * features` values) generated in memory: 2^28 `f32`s, 1 GiB.
pub const MAX_CELLS: usize = 1 << 28;

/// Most classes: labels are stored as `f32` and must stay exact.
pub const MAX_CLASSES: usize = 1 << 24;

/// What to generate. Field names match `kiln gen-data`'s flags.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationSpec {
    /// Number of rows (samples).
    pub rows: usize,
    /// Total number of features: informative + redundant + noise.
    pub features: usize,
    /// Features that carry the class signal.
    pub informative: usize,
    /// Number of classes; 2 gives a binary dataset.
    pub classes: usize,
    /// Half the distance between class centroids along each hypercube axis.
    pub class_sep: f32,
    /// Fraction of rows whose label is replaced by a uniformly random class.
    pub flip_y: f32,
    /// Seed of the rows: different seeds give independent samples of the same problem.
    pub seed: u64,
}

impl Default for ClassificationSpec {
    /// The data of the reference figures: 16,000 rows, 100 features, 10 informative, binary.
    fn default() -> Self {
        Self {
            rows: 16_000,
            features: 100,
            informative: 10,
            classes: 2,
            class_sep: 1.0,
            flip_y: 0.01,
            seed: 42,
        }
    }
}

impl ClassificationSpec {
    /// Checks every field; errors name the field (`rows`, `informative`, …).
    pub fn check(&self) -> Result<(), Invalid> {
        let mut c = Checker::new();
        c.require(self.rows >= 1, "rows", "must be at least 1");
        c.require(self.features >= 1, "features", "must be at least 1");
        c.require(self.informative >= 1, "informative", "must be at least 1");
        c.require(
            self.informative <= self.features,
            "informative",
            format!(
                "must not exceed features ({}), got {}",
                self.features, self.informative
            ),
        );
        c.require(self.classes >= 2, "classes", "must be at least 2");
        c.require(
            self.classes <= MAX_CLASSES,
            "classes",
            format!("must be at most {MAX_CLASSES}"),
        );
        // 2^informative hypercube vertices must be enough for one per class.
        let vertices_suffice = u32::try_from(self.informative)
            .ok()
            .and_then(|bits| 1usize.checked_shl(bits))
            .is_none_or(|vertices| vertices >= self.classes);
        c.require(
            self.informative == 0 || vertices_suffice,
            "informative",
            format!(
                "2^informative must be at least classes ({}): each class needs its own hypercube vertex",
                self.classes
            ),
        );
        c.require(
            self.classes < 2 || self.rows >= self.classes,
            "rows",
            format!(
                "must be at least classes ({}) so that every class has a row",
                self.classes
            ),
        );
        match self.rows.checked_mul(self.features) {
            Some(cells) if cells <= MAX_CELLS => {}
            _ => c.push(
                "rows",
                format!(
                    "rows × features must be at most {MAX_CELLS} values, got {} × {}",
                    self.rows, self.features
                ),
            ),
        }
        c.require(
            self.class_sep.is_finite() && self.class_sep >= 0.0,
            "class_sep",
            "must be a finite number ≥ 0",
        );
        c.require(
            self.flip_y.is_finite() && (0.0..=1.0).contains(&self.flip_y),
            "flip_y",
            "must be a number in [0, 1]",
        );
        c.finish(())
    }

    /// Redundant features actually generated.
    pub fn redundant(&self) -> usize {
        REDUNDANT.min(self.features.saturating_sub(self.informative))
    }
}

/// Generates a dataset as described in the module documentation.
///
/// The task is [`Task::Binary`] for two classes and [`Task::Multiclass`]
/// otherwise; labels are class indices `0..classes` stored as `f32`.
pub fn make_classification(spec: &ClassificationSpec) -> Result<Dataset, Invalid> {
    spec.check()?;
    let ClassificationSpec {
        rows,
        features,
        informative,
        classes,
        class_sep,
        flip_y,
        seed,
    } = *spec;
    let redundant = spec.redundant();

    // The problem: the same for every `seed`.
    let mut problem = ChaCha8Rng::seed_from_u64(PROBLEM_SEED);
    let centroids = hypercube_vertices(classes, informative, &mut problem)
        .mapv(|bit| if bit { class_sep } else { -class_sep });
    let covariances: Vec<Array2<f32>> = (0..classes)
        .map(|_| uniform_matrix(informative, informative, &mut problem))
        .collect();
    let mix = uniform_matrix(informative, redundant, &mut problem);

    // The rows.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let mut x = Array2::<f32>::zeros((rows, features));
    let mut y = Array1::<f32>::zeros(rows);

    // Informative features: one gaussian cluster per class, rows in class order.
    let mut start = 0;
    for (class, cov) in covariances.iter().enumerate() {
        let count = rows / classes + usize::from(class < rows % classes);
        let end = start + count;
        let z = normal_matrix(count, informative, &mut rng);
        let mut cluster = z.dot(cov);
        cluster += &centroids.row(class);
        x.slice_mut(s![start..end, ..informative]).assign(&cluster);
        y.slice_mut(s![start..end]).fill(class as f32);
        start = end;
    }

    // Redundant features: random linear combinations of the informative ones.
    if redundant > 0 {
        let combos = x.slice(s![.., ..informative]).dot(&mix);
        x.slice_mut(s![.., informative..informative + redundant])
            .assign(&combos);
    }

    // The rest: noise.
    let noise_from = informative + redundant;
    if noise_from < features {
        let noise = normal_matrix(rows, features - noise_from, &mut rng);
        x.slice_mut(s![.., noise_from..]).assign(&noise);
    }

    // Label noise: a fraction flip_y of rows get a uniformly random class.
    if flip_y > 0.0 {
        for label in y.iter_mut() {
            if rng.random::<f32>() < flip_y {
                *label = rng.random_range(0..classes) as f32;
            }
        }
    }

    // Shuffle rows (Fisher–Yates over an index permutation).
    let mut order: Vec<usize> = (0..rows).collect();
    for i in (1..rows).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    let x = x.select(Axis(0), &order);
    let y = y.select(Axis(0), &order);

    Ok(Dataset {
        x,
        y,
        task: if classes == 2 {
            Task::Binary
        } else {
            Task::Multiclass
        },
        classes,
        input_shape: None,
    })
}

/// Writes `ds` as CSV with header `x0,…,x{n-1},label`.
///
/// Labels are integers for binary and multiclass datasets and real numbers for
/// regression; features use Rust's shortest round-trip formatting, so reading
/// the file back gives the same `f32` values.
pub fn write_csv<W: Write>(ds: &Dataset, w: W) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 16, w);
    for j in 0..ds.features() {
        write!(w, "x{j},")?;
    }
    writeln!(w, "label")?;
    let integer_labels = matches!(ds.task, Task::Binary | Task::Multiclass);
    for (row, label) in ds.x.rows().into_iter().zip(ds.y.iter()) {
        for v in row {
            write!(w, "{v},")?;
        }
        if integer_labels {
            writeln!(w, "{}", *label as i64)?;
        } else {
            writeln!(w, "{label}")?;
        }
    }
    w.flush()
}

/// `n` distinct random vertices of the `dim`-dimensional unit hypercube, one per row.
/// The caller guarantees `2^dim >= n`.
/// A tiny image task for convolutional tests: 8×8 one-channel images (flat rows of
/// `[1, 8, 8]`) holding one bar of ones, vertical (class 0) or horizontal (class 1),
/// at a random place, in noise. A dense network has to learn every position; a
/// convolution learns the bar once.
pub fn bars(n: usize, seed: u64) -> (Array2<f32>, Array1<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array2::from_shape_fn((n, 64), |_| rng.random::<f32>() * 0.3);
    let mut y = Array1::zeros(n);
    for i in 0..n {
        let horizontal = rng.random::<bool>();
        let at = rng.random_range(1..7);
        for k in 0..8 {
            let (r, c) = if horizontal { (at, k) } else { (k, at) };
            x[(i, r * 8 + c)] = 1.0;
        }
        y[i] = f32::from(u8::from(horizontal));
    }
    (x, y)
}

fn hypercube_vertices(n: usize, dim: usize, rng: &mut ChaCha8Rng) -> Array2<bool> {
    let mut seen: HashSet<Vec<bool>> = HashSet::with_capacity(n);
    let mut out = Array2::from_elem((n, dim), false);
    let mut row = 0;
    while row < n {
        let v: Vec<bool> = (0..dim).map(|_| rng.random::<bool>()).collect();
        if seen.insert(v.clone()) {
            out.row_mut(row).iter_mut().zip(v).for_each(|(o, b)| *o = b);
            row += 1;
        }
    }
    out
}

fn normal_matrix(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || StandardNormal.sample(rng))
}

/// Entries uniform in `[-1, 1)`, as scikit-learn's `2 * rand - 1`.
fn uniform_matrix(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || 2.0 * rng.random::<f32>() - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> ClassificationSpec {
        ClassificationSpec {
            rows: 2_000,
            features: 20,
            informative: 5,
            seed,
            ..ClassificationSpec::default()
        }
    }

    fn fields(err: &Invalid) -> Vec<&str> {
        err.0.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn the_default_spec_is_the_reference_data() {
        let ds = make_classification(&ClassificationSpec::default()).expect("valid");
        assert_eq!(ds.x.dim(), (16_000, 100));
        assert_eq!(ds.y.len(), 16_000);
        assert_eq!(ds.task, Task::Binary);
        assert_eq!(ds.classes, 2);
        assert!(ds.x.iter().all(|v| v.is_finite()));
        assert!(ds.y.iter().all(|&l| l == 0.0 || l == 1.0));
    }

    #[test]
    fn multiclass_labels_are_integers_in_range_and_balanced() {
        let spec = ClassificationSpec {
            rows: 3_001,
            features: 8,
            informative: 3,
            classes: 5,
            flip_y: 0.0,
            seed: 3,
            ..ClassificationSpec::default()
        };
        let ds = make_classification(&spec).expect("valid");
        assert_eq!(ds.task, Task::Multiclass);
        assert_eq!(ds.classes, 5);
        assert_eq!(ds.x.dim(), (3_001, 8));
        let mut counts = [0usize; 5];
        for &l in &ds.y {
            assert_eq!(l.fract(), 0.0, "label {l} is not an integer");
            assert!((0.0..5.0).contains(&l), "label {l} out of range");
            counts[l as usize] += 1;
        }
        // Without label noise the split is exact: 601 for the first class, 600 for the others.
        assert_eq!(counts, [601, 600, 600, 600, 600]);
    }

    #[test]
    fn classes_stay_balanced_with_label_noise() {
        let spec = ClassificationSpec {
            flip_y: 0.1,
            ..small(11)
        };
        let ds = make_classification(&spec).expect("valid");
        let ones = ds.y.iter().filter(|&&l| l == 1.0).count();
        let share = ones as f64 / ds.rows() as f64;
        assert!((share - 0.5).abs() < 0.03, "class 1 share {share}");
    }

    #[test]
    fn flip_y_changes_about_the_expected_fraction_of_labels() {
        let clean = make_classification(&ClassificationSpec {
            flip_y: 0.0,
            ..small(5)
        })
        .expect("valid");
        let noisy = make_classification(&ClassificationSpec {
            flip_y: 0.2,
            ..small(5)
        })
        .expect("valid");
        // Same seed: the features are drawn before the label noise, so they are
        // identical, but the shuffle that follows differs. Match rows by content
        // (the bits of the row sum) rather than by position.
        assert_eq!(clean.rows(), noisy.rows());
        let key = |ds: &Dataset| {
            let mut v: Vec<(u32, f32)> =
                ds.x.rows()
                    .into_iter()
                    .zip(ds.y.iter())
                    .map(|(r, &l)| (r.sum().to_bits(), l))
                    .collect();
            v.sort_by_key(|p| p.0);
            v
        };
        let (a, b) = (key(&clean), key(&noisy));
        assert!(a.iter().zip(&b).all(|(p, q)| p.0 == q.0), "features differ");
        let changed = a.iter().zip(&b).filter(|(p, q)| p.1 != q.1).count();
        let frac = changed as f64 / a.len() as f64;
        // Expected 0.2 × (1 − 1/2) = 0.1.
        assert!((0.06..0.14).contains(&frac), "changed fraction {frac}");
    }

    #[test]
    fn the_same_seed_gives_the_same_data_and_another_seed_does_not() {
        let a = make_classification(&small(42)).expect("valid");
        let b = make_classification(&small(42)).expect("valid");
        let c = make_classification(&small(7)).expect("valid");
        assert_eq!(a, b);
        assert_ne!(a.x, c.x);
        assert_ne!(a.y, c.y);
    }

    #[test]
    fn class_means_differ_by_twice_class_sep_on_informative_axes() {
        for class_sep in [1.0f32, 2.5] {
            let spec = ClassificationSpec {
                rows: 20_000,
                features: 12,
                informative: 4,
                class_sep,
                flip_y: 0.0,
                seed: 9,
                ..ClassificationSpec::default()
            };
            let ds = make_classification(&spec).expect("valid");
            let mean_of = |class: f32| {
                let idx: Vec<usize> = (0..ds.rows()).filter(|&i| ds.y[i] == class).collect();
                ds.x.select(Axis(0), &idx)
                    .mean_axis(Axis(0))
                    .expect("class has rows")
            };
            let (m0, m1) = (mean_of(0.0), mean_of(1.0));
            let mut differing = 0;
            for j in 0..spec.informative {
                let d = (m1[j] - m0[j]).abs();
                // Centroids are ±class_sep: the means agree or differ by 2·class_sep.
                let near_zero = d < 0.15;
                let near_two_sep = (d - 2.0 * class_sep).abs() < 0.15;
                assert!(
                    near_zero || near_two_sep,
                    "feature {j}: |Δmean| = {d}, class_sep {class_sep}"
                );
                differing += usize::from(near_two_sep);
            }
            assert!(differing >= 1, "distinct vertices differ on some axis");
            // Noise features carry no signal.
            for j in (spec.informative + REDUNDANT)..spec.features {
                let d = (m1[j] - m0[j]).abs();
                assert!(d < 0.1, "noise feature {j}: |Δmean| = {d}");
            }
        }
    }

    #[test]
    fn a_linear_classifier_separates_the_classes() {
        let ds = make_classification(&ClassificationSpec {
            rows: 4_000,
            flip_y: 0.0,
            ..small(42)
        })
        .expect("valid");
        let accuracy = logistic_accuracy(&ds, &fit_logistic(&ds));
        assert!(accuracy > 0.7, "linear accuracy {accuracy}");
    }

    /// Fits full-batch logistic regression on standardized features; returns (mean, std, w, b).
    fn fit_logistic(ds: &Dataset) -> (Array1<f32>, Array1<f32>, Array1<f32>, f32) {
        let mean = ds.x.mean_axis(Axis(0)).expect("rows");
        let std = ds.x.std_axis(Axis(0), 0.0).mapv(|s| s.max(1e-6));
        let x = (&ds.x - &mean) / &std;
        let n = x.nrows() as f32;
        let mut w = Array1::<f32>::zeros(x.ncols());
        let mut b = 0.0f32;
        for _ in 0..300 {
            let p = (x.dot(&w) + b).mapv(|z| 1.0 / (1.0 + (-z).exp()));
            let err = &p - &ds.y;
            w -= &(x.t().dot(&err) * (0.5 / n));
            b -= 0.5 * err.sum() / n;
        }
        (mean, std, w, b)
    }

    fn logistic_accuracy(ds: &Dataset, fit: &(Array1<f32>, Array1<f32>, Array1<f32>, f32)) -> f64 {
        let (mean, std, w, b) = fit;
        let x = (&ds.x - mean) / std;
        let correct = x
            .dot(w)
            .iter()
            .zip(&ds.y)
            .filter(|&(&z, &l)| (z + b > 0.0) == (l == 1.0))
            .count();
        correct as f64 / ds.rows() as f64
    }

    #[test]
    fn another_seed_is_a_held_out_sample_of_the_same_problem() {
        let train = make_classification(&ClassificationSpec {
            rows: 4_000,
            ..small(42)
        })
        .expect("valid");
        let test = make_classification(&ClassificationSpec {
            rows: 1_000,
            ..small(7)
        })
        .expect("valid");
        let fit = fit_logistic(&train);
        let (on_train, on_test) = (
            logistic_accuracy(&train, &fit),
            logistic_accuracy(&test, &fit),
        );
        assert!(on_test > 0.7, "held-out accuracy {on_test}");
        assert!(
            (on_train - on_test).abs() < 0.05,
            "train {on_train} vs test {on_test}"
        );
    }

    #[test]
    fn informative_equal_to_features_leaves_no_room_for_redundant_or_noise() {
        let spec = ClassificationSpec {
            rows: 10,
            features: 3,
            informative: 3,
            ..ClassificationSpec::default()
        };
        assert_eq!(spec.redundant(), 0);
        let ds = make_classification(&spec).expect("valid");
        assert_eq!(ds.x.dim(), (10, 3));
        let one_feature = ClassificationSpec {
            rows: 2,
            features: 1,
            informative: 1,
            ..ClassificationSpec::default()
        };
        let ds = make_classification(&one_feature).expect("two vertices for two classes");
        let mut labels: Vec<f32> = ds.y.to_vec();
        labels.sort_by(f32::total_cmp);
        assert_eq!(labels.len(), 2);
    }

    #[test]
    fn bad_specs_name_their_fields() {
        let cases: Vec<(ClassificationSpec, &str)> = vec![
            (
                ClassificationSpec {
                    rows: 0,
                    ..ClassificationSpec::default()
                },
                "rows",
            ),
            (
                ClassificationSpec {
                    features: 0,
                    informative: 0,
                    ..ClassificationSpec::default()
                },
                "features",
            ),
            (
                ClassificationSpec {
                    informative: 0,
                    ..ClassificationSpec::default()
                },
                "informative",
            ),
            (
                ClassificationSpec {
                    informative: 101,
                    ..ClassificationSpec::default()
                },
                "informative",
            ),
            (
                ClassificationSpec {
                    classes: 1,
                    ..ClassificationSpec::default()
                },
                "classes",
            ),
            (
                ClassificationSpec {
                    informative: 2,
                    classes: 5,
                    ..ClassificationSpec::default()
                },
                "informative",
            ),
            (
                ClassificationSpec {
                    rows: 3,
                    informative: 3,
                    classes: 4,
                    ..ClassificationSpec::default()
                },
                "rows",
            ),
            (
                ClassificationSpec {
                    rows: usize::MAX,
                    ..ClassificationSpec::default()
                },
                "rows",
            ),
            (
                ClassificationSpec {
                    class_sep: f32::NAN,
                    ..ClassificationSpec::default()
                },
                "class_sep",
            ),
            (
                ClassificationSpec {
                    class_sep: -1.0,
                    ..ClassificationSpec::default()
                },
                "class_sep",
            ),
            (
                ClassificationSpec {
                    flip_y: 1.5,
                    ..ClassificationSpec::default()
                },
                "flip_y",
            ),
            (
                ClassificationSpec {
                    flip_y: f32::INFINITY,
                    ..ClassificationSpec::default()
                },
                "flip_y",
            ),
        ];
        for (spec, field) in cases {
            let err = make_classification(&spec).expect_err("must be rejected");
            assert!(
                fields(&err).contains(&field),
                "{spec:?}: expected an error on {field}, got {err}"
            );
        }
        // A huge informative count is fine for the vertex check (no overflow).
        let wide = ClassificationSpec {
            rows: 4,
            features: 200,
            informative: 200,
            ..ClassificationSpec::default()
        };
        assert!(wide.check().is_ok());
    }

    #[test]
    fn csv_has_a_header_and_integer_labels() {
        let ds = make_classification(&ClassificationSpec {
            rows: 5,
            features: 3,
            informative: 2,
            ..ClassificationSpec::default()
        })
        .expect("valid");
        let mut out = Vec::new();
        write_csv(&ds, &mut out).expect("writes to memory");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "x0,x1,x2,label");
        assert_eq!(lines.len(), 6);
        for (i, line) in lines[1..].iter().enumerate() {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), 4);
            for (j, cell) in cells[..3].iter().enumerate() {
                let v: f32 = cell.parse().expect("a number");
                assert_eq!(v, ds.x[[i, j]], "round trip of x[{i}][{j}]");
            }
            assert!(cells[3] == "0" || cells[3] == "1", "label {}", cells[3]);
        }
    }
}
