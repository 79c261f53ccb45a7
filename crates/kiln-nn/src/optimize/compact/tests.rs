//! Compaction tests: every exact transformation leaves predictions unchanged,
//! and removes or folds exactly what was planted.

use ndarray::{Array2, ArrayView2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::svd::svd;
use super::*;
use crate::layers::Layer;
use crate::layers::activation::{Activation, sigmoid};
use crate::model::Sequential;
use crate::spec::Architecture;

fn arch(json: &str) -> Architecture {
    serde_json::from_str(json).expect("architecture parses")
}

fn dense_mut(model: &mut Sequential, layer: usize) -> &mut crate::layers::dense::Dense {
    model.layers_mut()[layer]
        .as_dense_mut()
        .expect("dense layer")
}

fn bias_mut(model: &mut Sequential, layer: usize) -> ndarray::ArrayViewMut2<'_, f32> {
    dense_mut(model, layer)
        .bias
        .as_mut()
        .expect("bias")
        .matrix_mut()
}

fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0f32..1.0))
}

fn max_diff(a: ArrayView2<f32>, b: ArrayView2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// 3 inputs → 6 relu → dropout → 5 sigmoid → 2 softmax, with random non-zero biases.
fn dead_model() -> Sequential {
    let a = arch(
        r#"{"input_dim": 3, "layers": [
            {"type": "dense", "units": 6, "activation": "relu"},
            {"type": "dropout", "rate": 0.3},
            {"type": "dense", "units": 5, "activation": "sigmoid"},
            {"type": "dense", "units": 2, "activation": "softmax"}]}"#,
    );
    let mut m = Sequential::new(&a, 11);
    for layer in [0, 2, 3] {
        let units = dense_mut(&mut m, layer).units();
        bias_mut(&mut m, layer).assign(&random(1, units, layer as u64 + 40));
    }
    // Non-negative weights keep the other ReLU units alive; units 1 and 4 never fire
    // on non-negative input.
    let d = dense_mut(&mut m, 0);
    d.weight.matrix_mut().mapv_inplace(f32::abs);
    d.weight
        .matrix_mut()
        .column_mut(1)
        .assign(&ndarray::array![-0.5, -0.2, -1.0]);
    d.weight
        .matrix_mut()
        .column_mut(4)
        .assign(&ndarray::array![-0.1, -0.7, -0.3]);
    bias_mut(&mut m, 0)[(0, 1)] = -0.05;
    bias_mut(&mut m, 0)[(0, 4)] = -1.5;
    // Sigmoid unit 3 has no incoming weights: it outputs sigmoid(b) everywhere.
    dense_mut(&mut m, 2)
        .weight
        .matrix_mut()
        .column_mut(3)
        .fill(0.0);
    bias_mut(&mut m, 2)[(0, 3)] = 0.8;
    m
}

/// Non-negative inputs; more rows than one activation chunk.
fn non_negative(rows: usize) -> Array2<f32> {
    random(rows, 3, 5).mapv(f32::abs)
}

#[test]
fn dead_relu_and_constant_sigmoid_units_go_and_outputs_stay() {
    let model = dead_model();
    let x = non_negative(1500);
    let (small, actions) = remove_dead_units(&model, x.view(), 0.0).expect("compacts");
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(
        (actions[0].kind, actions[0].layer, actions[0].units.clone()),
        (ActionKind::DeadUnits, 0, vec![1, 4])
    );
    assert_eq!((actions[1].layer, actions[1].units.clone()), (2, vec![3]));
    assert!(actions.iter().all(|a| a.exact));
    // 3·6+6 + 6·5+5 + 5·2+2 = 71 → 3·4+4 + 4·5+5 + 5·2+2 = 53 → 3·4+4 + 4·4+4 + 4·2+2 = 46.
    assert_eq!(
        (actions[0].params_before, actions[0].params_after),
        (71, 53)
    );
    assert_eq!(
        (actions[1].params_before, actions[1].params_after),
        (53, 46)
    );
    assert_eq!(small.param_count(), 46);
    assert_eq!(small.architecture().layers.len(), 4);
    let diff = max_diff(
        model.predict(x.view()).view(),
        small.predict(x.view()).view(),
    );
    assert!(diff < 1e-6, "{diff}");
    // The constant sigmoid's output now sits in the softmax layer's bias.
    let expected = model.layers()[3]
        .as_dense()
        .expect("dense")
        .bias
        .as_ref()
        .expect("bias")
        .matrix()[(0, 0)]
        + sigmoid(0.8) * model.layers()[3].as_dense().expect("dense").weight.matrix()[(3, 0)];
    let got = small.layers()[3]
        .as_dense()
        .expect("dense")
        .bias
        .as_ref()
        .expect("bias")
        .matrix()[(0, 0)];
    assert!((expected - got).abs() < 1e-6, "{expected} vs {got}");
}

#[test]
fn a_layer_of_only_dead_units_keeps_its_most_varying_one() {
    let mut model = dead_model();
    // Every ReLU unit dead except unit 2, which barely varies; tolerance swallows it too.
    {
        let d = dense_mut(&mut model, 0);
        d.weight.matrix_mut().fill(-1.0);
        d.weight
            .matrix_mut()
            .column_mut(2)
            .assign(&ndarray::array![1e-4, 0.0, 0.0]);
    }
    bias_mut(&mut model, 0).fill(-0.1);
    bias_mut(&mut model, 0)[(0, 2)] = 0.5;
    let x = non_negative(64);
    let (small, actions) = remove_dead_units(&model, x.view(), 1e-2).expect("compacts");
    assert_eq!(actions[0].units, vec![0, 1, 3, 4, 5]);
    assert!(actions[0].exact, "the removed units are exactly zero");
    assert_eq!(small.layers()[0].as_dense().expect("dense").units(), 1);
    let diff = max_diff(
        model.predict(x.view()).view(),
        small.predict(x.view()).view(),
    );
    assert!(diff < 1e-6, "{diff}");
}

#[test]
fn a_tolerance_removes_almost_constant_units_and_says_it_is_not_exact() {
    let mut model = dead_model();
    // Sigmoid unit 0 varies by a tiny amount: 1e-4 · x₀-ish through the ReLU layer.
    dense_mut(&mut model, 2)
        .weight
        .matrix_mut()
        .column_mut(0)
        .fill(1e-5);
    let x = non_negative(100);
    let (_, strict) = remove_dead_units(&model, x.view(), 0.0).expect("compacts");
    assert_eq!(strict[1].units, vec![3]);
    let (loose, actions) = remove_dead_units(&model, x.view(), 1e-3).expect("compacts");
    assert_eq!(actions[1].units, vec![0, 3]);
    assert!(!actions[1].exact);
    let diff = max_diff(
        model.predict(x.view()).view(),
        loose.predict(x.view()).view(),
    );
    assert!(diff > 0.0 && diff < 1e-4, "{diff}");
}

#[test]
fn dead_unit_removal_refuses_bad_input() {
    let model = dead_model();
    assert!(matches!(
        remove_dead_units(&model, Array2::zeros((4, 2)).view(), 0.0),
        Err(CompactError::Input(_))
    ));
    assert_eq!(
        remove_dead_units(&model, Array2::zeros((0, 3)).view(), 0.0).unwrap_err(),
        CompactError::NoRows
    );
    assert_eq!(
        remove_dead_units(&model, Array2::zeros((4, 3)).view(), -1.0).unwrap_err(),
        CompactError::Tolerance(-1.0)
    );
}

/// 4 inputs → 6 tanh → 5 relu → 3 linear, random biases.
fn merge_model() -> Sequential {
    let a = arch(
        r#"{"input_dim": 4, "layers": [
            {"type": "dense", "units": 6, "activation": "tanh"},
            {"type": "dense", "units": 5, "activation": "relu"},
            {"type": "dense", "units": 3, "activation": "linear"}]}"#,
    );
    let mut m = Sequential::new(&a, 3);
    for layer in 0..3 {
        let units = dense_mut(&mut m, layer).units();
        bias_mut(&mut m, layer).assign(&random(1, units, layer as u64 + 20));
    }
    m
}

/// Makes unit `to` of `layer` compute `scale ×` unit `from`'s pre-activation.
fn copy_unit(m: &mut Sequential, layer: usize, from: usize, to: usize, scale: f32) {
    let d = dense_mut(m, layer);
    let col = d.weight.matrix().column(from).mapv(|v| v * scale);
    d.weight.matrix_mut().column_mut(to).assign(&col);
    let mut b = bias_mut(m, layer);
    b[(0, to)] = scale * b[(0, from)];
}

#[test]
fn duplicate_and_scaled_units_merge_and_outputs_stay() {
    let mut model = merge_model();
    copy_unit(&mut model, 0, 0, 3, 1.0);
    copy_unit(&mut model, 0, 0, 5, 1.0);
    // tanh is not homogeneous: a scaled copy must stay.
    copy_unit(&mut model, 0, 1, 2, 2.0);
    // relu(2z) = 2·relu(z): this one merges.
    copy_unit(&mut model, 1, 1, 4, 2.0);
    let x = random(50, 4, 8);
    let (small, actions) = merge_duplicate_units(&model, 0.0).expect("merges");
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(
        (actions[0].kind, actions[0].layer, actions[0].units.clone()),
        (ActionKind::MergedUnits, 0, vec![3, 5])
    );
    assert_eq!((actions[1].layer, actions[1].units.clone()), (1, vec![4]));
    assert!(actions.iter().all(|a| a.exact));
    // 4·6+6 + 6·5+5 + 5·3+3 = 83 → 4·4+4 + 4·5+5 + 5·3+3 = 63 → 4·4+4 + 4·4+4 + 4·3+3 = 55.
    assert_eq!(
        (actions[0].params_before, actions[0].params_after),
        (83, 63)
    );
    assert_eq!(small.param_count(), 55);
    let diff = max_diff(
        model.predict(x.view()).view(),
        small.predict(x.view()).view(),
    );
    assert!(diff < 1e-5, "{diff}");
}

#[test]
fn near_duplicates_merge_only_within_the_tolerance() {
    let mut model = merge_model();
    copy_unit(&mut model, 0, 2, 4, 1.0);
    dense_mut(&mut model, 0).weight.matrix_mut()[(1, 4)] += 1e-3;
    let (same, none) = merge_duplicate_units(&model, 0.0).expect("runs");
    assert!(none.is_empty());
    assert_eq!(same, model);
    let (_, actions) = merge_duplicate_units(&model, 1e-2).expect("merges");
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].units, vec![4]);
    assert!(!actions[0].exact);
    assert!(actions[0].detail.contains("4→2"), "{}", actions[0].detail);
}

/// 3 → 5 linear (bias?) → dropout → 4 relu.
fn fold_model(first_bias: bool) -> Sequential {
    let a = arch(&format!(
        r#"{{"input_dim": 3, "layers": [
            {{"type": "dense", "units": 5, "activation": "linear", "use_bias": {first_bias}}},
            {{"type": "dropout", "rate": 0.5}},
            {{"type": "dense", "units": 4, "activation": "relu"}}]}}"#
    ));
    let mut m = Sequential::new(&a, 9);
    bias_mut(&mut m, 2).assign(&random(1, 4, 1));
    if first_bias {
        bias_mut(&mut m, 0).assign(&random(1, 5, 2));
    }
    m
}

/// `x·W + b` by hand, in f64.
fn product(a: &ArrayView2<f32>, b: &ArrayView2<f32>) -> Array2<f64> {
    Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
        (0..a.ncols())
            .map(|k| f64::from(a[(i, k)]) * f64::from(b[(k, j)]))
            .sum()
    })
}

#[test]
fn folding_two_linear_layers_gives_their_product() {
    for first_bias in [true, false] {
        let model = fold_model(first_bias);
        let (folded, actions) = fold_linear_layers(&model).expect("folds");
        assert_eq!(actions.len(), 1);
        let a = &actions[0];
        assert_eq!(
            (a.kind, a.layer, a.exact),
            (ActionKind::FoldedLayers, 0, true)
        );
        assert_eq!(folded.layers().len(), 1, "the dropout goes too");
        let d1 = model.layers()[0].as_dense().expect("dense");
        let d2 = model.layers()[2].as_dense().expect("dense");
        let f = folded.layers()[0].as_dense().expect("dense");
        assert_eq!(f.activation, Activation::Relu);
        let w = product(&d1.weight.matrix(), &d2.weight.matrix());
        let mut b = d2.bias.as_ref().expect("bias").matrix().mapv(f64::from);
        if let Some(b1) = &d1.bias {
            b = b + product(&b1.matrix(), &d2.weight.matrix());
        }
        for (got, want) in f.weight.matrix().iter().zip(w.iter()) {
            assert!((f64::from(*got) - want).abs() < 1e-6, "{got} vs {want}");
        }
        for (got, want) in f.bias.as_ref().expect("bias").matrix().iter().zip(b.iter()) {
            assert!((f64::from(*got) - want).abs() < 1e-6, "{got} vs {want}");
        }
        // 3·5 (+5) + 5·4+4 → 3·4+4.
        assert_eq!(a.params_before, if first_bias { 44 } else { 39 });
        assert_eq!(a.params_after, 16);
        let x = random(20, 3, 4);
        let diff = max_diff(
            model.predict(x.view()).view(),
            folded.predict(x.view()).view(),
        );
        assert!(diff < 1e-5, "{diff}");
    }
}

#[test]
fn chains_of_linear_layers_fold_repeatedly_and_bottlenecks_stay() {
    let a = arch(
        r#"{"input_dim": 6, "layers": [
            {"type": "dense", "units": 6, "activation": "linear", "use_bias": false},
            {"type": "dense", "units": 6, "activation": "linear"},
            {"type": "dense", "units": 5, "activation": "tanh"},
            {"type": "dense", "units": 1, "activation": "linear"},
            {"type": "dense", "units": 5, "activation": "sigmoid"}]}"#,
    );
    let model = Sequential::new(&a, 2);
    let (folded, actions) = fold_linear_layers(&model).expect("folds");
    // Layers 0, 1, 2 become one; the 5→1→5 bottleneck is smaller than a 5×5 layer and stays.
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(actions.iter().all(|a| a.layer == 0));
    assert_eq!(folded.layers().len(), 3);
    assert_eq!(
        folded.layers()[0].as_dense().expect("dense").activation,
        Activation::Tanh
    );
    let x = random(10, 6, 3);
    let diff = max_diff(
        model.predict(x.view()).view(),
        folded.predict(x.view()).view(),
    );
    assert!(diff < 1e-5, "{diff}");
}

fn check_svd(w: &Array2<f32>) {
    check_decomposition(w, &svd(w.view()));
}

/// `U·diag(s)·Vᵀ = W`, `U` and `V` orthonormal, `s` descending with `Σ s² = ‖W‖²_F`.
fn check_decomposition(w: &Array2<f32>, d: &super::svd::Svd) {
    let (m, n) = w.dim();
    let k = m.min(n);
    assert_eq!((d.u.dim(), d.s.len(), d.vt.dim()), ((m, k), k, (k, n)));
    assert!(d.s.windows(2).all(|p| p[0] >= p[1]) && d.s[k - 1] >= 0.0);
    let us = Array2::from_shape_fn((m, k), |(i, r)| d.u[(i, r)] * d.s[r]);
    let back = us.dot(&d.vt);
    for (a, b) in back.iter().zip(w.iter()) {
        assert!((a - f64::from(*b)).abs() < 1e-5, "{a} vs {b}");
    }
    for (g, what) in [(d.u.t().dot(&d.u), "UᵀU"), (d.vt.dot(&d.vt.t()), "VᵀV")] {
        for ((i, j), v) in g.indexed_iter() {
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((v - want).abs() < 1e-10, "{what}[{i},{j}] = {v}");
        }
    }
    let energy: f64 = w.iter().map(|v| f64::from(*v).powi(2)).sum();
    let s2: f64 = d.s.iter().map(|s| s * s).sum();
    assert!((energy - s2).abs() < 1e-10 * energy.max(1.0));
}

#[test]
fn svd_reconstructs_tall_and_wide_random_matrices() {
    check_svd(&random(37, 23, 1));
    check_svd(&random(23, 37, 2));
    check_svd(&random(1, 5, 3));
    check_svd(&random(9, 9, 4));
}

#[test]
fn svd_finds_known_singular_values() {
    let diag = ndarray::array![
        [3.0f32, 0.0, 0.0],
        [0.0, -2.0, 0.0],
        [0.0, 0.0, 0.5],
        [0.0, 0.0, 0.0]
    ];
    check_svd(&diag);
    let s = svd(diag.view()).s;
    for (got, want) in s.iter().zip([3.0, 2.0, 0.5]) {
        assert!((got - want).abs() < 1e-12 * want, "{got} vs {want}");
    }
    // 5·u₁v₁ᵀ + 2·u₂v₂ᵀ with u₁ = (1,1,1,1)/2, u₂ = (1,−1,1,−1)/2, v₁ = e₁, v₂ = e₃.
    let rank2 = ndarray::array![
        [2.5f32, 0.0, 1.0],
        [2.5, 0.0, -1.0],
        [2.5, 0.0, 1.0],
        [2.5, 0.0, -1.0]
    ];
    check_svd(&rank2);
    check_svd(&rank2.t().to_owned());
    let s = svd(rank2.view()).s;
    assert!((s[0] - 5.0).abs() < 1e-12 && (s[1] - 2.0).abs() < 1e-12 && s[2].abs() < 1e-12);
    // H·diag(4, 3, 1, 0.25)·Hᵀ with H the orthogonal 4×4 Hadamard/2: every entry exact in f32.
    let h = ndarray::array![
        [0.5f32, 0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5, -0.5],
        [0.5, 0.5, -0.5, -0.5],
        [0.5, -0.5, -0.5, 0.5]
    ];
    let sigma = [4.0f32, 3.0, 1.0, 0.25];
    let square = Array2::from_shape_fn((4, 4), |(i, j)| {
        (0..4)
            .map(|k| h[(i, k)] * sigma[k] * h[(j, k)])
            .sum::<f32>()
    });
    // The same with two zero rows in between: a tall matrix, same singular values.
    let mut tall = Array2::zeros((6, 4));
    tall.slice_mut(ndarray::s![..2, ..])
        .assign(&square.slice(ndarray::s![..2, ..]));
    tall.slice_mut(ndarray::s![4.., ..])
        .assign(&square.slice(ndarray::s![2.., ..]));
    for w in [square, tall] {
        check_svd(&w);
        let s = svd(w.view()).s;
        for (got, want) in s.iter().zip(sigma) {
            let want = f64::from(want);
            assert!((got - want).abs() < 1e-12 * want, "{got} vs {want}");
        }
    }
    // All zeros: singular vectors still orthonormal.
    check_svd(&Array2::zeros((4, 3)));
}

#[test]
fn svd_of_a_784_by_300_matrix_prints_its_time() {
    let w = random(784, 300, 7);
    let start = std::time::Instant::now();
    let d = svd(w.view());
    eprintln!("svd 784×300: {:?}, s₀ = {}", start.elapsed(), d.s[0]);
    check_decomposition(&w, &d);
}

#[test]
fn rank_for_energy_on_a_hand_example() {
    let s = [3.0, 2.0, 1.0]; // squares 9, 4, 1 of 14
    assert_eq!(rank_for_energy(&s, 0.0), 1);
    assert_eq!(rank_for_energy(&s, 0.5), 1); // 9 ≥ 7
    assert_eq!(rank_for_energy(&s, 0.9), 2); // 13 ≥ 12.6
    assert_eq!(rank_for_energy(&s, 0.95), 3); // 13 < 13.3
    assert_eq!(rank_for_energy(&s, 1.0), 3);
    assert_eq!(rank_for_energy(&[3.0, 2.0, 0.0], 1.0), 2);
    assert_eq!(rank_for_energy(&[], 0.9), 1);
    assert_eq!(max_useful_rank(784, 300), 216); // 216·1084 < 235200 ≤ 217·1084
    assert_eq!(max_useful_rank(2, 2), 0);
}

/// 8 → 12 relu → dropout → 10 linear.
fn lowrank_model() -> Sequential {
    let a = arch(
        r#"{"input_dim": 8, "layers": [
            {"type": "dense", "units": 12, "activation": "relu"},
            {"type": "dropout", "rate": 0.1},
            {"type": "dense", "units": 10, "activation": "linear"}]}"#,
    );
    let mut m = Sequential::new(&a, 5);
    bias_mut(&mut m, 0).assign(&random(1, 12, 6));
    bias_mut(&mut m, 2).assign(&random(1, 10, 7));
    m
}

#[test]
fn factorizing_at_full_rank_keeps_predictions() {
    let model = lowrank_model();
    let x = random(30, 8, 9);
    let (f, action) = factorize(&model, 0, 8).expect("factorizes");
    assert_eq!(
        (action.kind, action.layer, action.exact),
        (ActionKind::LowRank, 0, true)
    );
    assert_eq!(f.layers().len(), 4);
    let a = f.layers()[0].as_dense().expect("dense");
    let b = f.layers()[1].as_dense().expect("dense");
    assert_eq!(
        (a.activation, a.bias.is_none(), a.weight.matrix().dim()),
        (Activation::Linear, true, (8, 8))
    );
    assert_eq!(
        (b.activation, b.weight.matrix().dim()),
        (Activation::Relu, (8, 12))
    );
    assert!(
        matches!(f.layers()[2], Layer::Dropout(_)),
        "later layers move up by one"
    );
    // 8·12+12 + 12·10+10 = 238 → 8·8 + 8·12+12 + 130 = 302.
    assert_eq!((action.params_before, action.params_after), (238, 302));
    let diff = max_diff(model.predict(x.view()).view(), f.predict(x.view()).view());
    assert!(diff < 1e-5, "{diff}");
    // A rank above min(in, out) is clamped.
    let (g, _) = factorize(&model, 2, 50).expect("factorizes");
    assert_eq!(g.layers()[2].as_dense().expect("dense").units(), 10);
}

#[test]
fn low_rank_prediction_error_falls_as_the_rank_grows() {
    let model = lowrank_model();
    let x = random(40, 8, 10);
    let want = model.predict(x.view());
    let s = singular_values(&model, 2).expect("dense");
    assert_eq!(s.len(), 10);
    let mut last = f32::INFINITY;
    for rank in 1..=10 {
        let (f, action) = factorize(&model, 2, rank).expect("factorizes");
        let err: f32 = (&f.predict(x.view()) - &want).mapv(|v| v * v).sum();
        assert!(err < last || err < 1e-8, "rank {rank}: {err} ≥ {last}");
        assert_eq!(action.exact, rank == 10, "rank {rank}");
        assert_eq!(
            action.params_after,
            238 - 130 + (12 * rank + rank * 10 + 10) as u64
        );
        last = err;
    }
    assert!(last < 1e-8, "{last}");
}

#[test]
fn factorizing_needs_a_dense_layer_and_a_rank() {
    let model = lowrank_model();
    assert_eq!(
        factorize(&model, 1, 2).unwrap_err(),
        CompactError::NotDense(1)
    );
    assert_eq!(
        factorize(&model, 3, 2).unwrap_err(),
        CompactError::LayerOutOfRange {
            layer: 3,
            layers: 3
        }
    );
    assert_eq!(factorize(&model, 0, 0).unwrap_err(), CompactError::ZeroRank);
    assert_eq!(
        singular_values(&model, 7).unwrap_err(),
        CompactError::LayerOutOfRange {
            layer: 7,
            layers: 3
        }
    );
}

#[test]
fn actions_serialise_with_snake_case_kinds() {
    let model = lowrank_model();
    let (_, action) = factorize(&model, 0, 2).expect("factorizes");
    let json = serde_json::to_value(&action).expect("serialises");
    assert_eq!(json["kind"], "low_rank");
    assert_eq!(json["params_before"], 238);
}
