use ndarray::{Array2, ArrayView2, array, s};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::Sequential;
use crate::spec::Architecture;

/// A `[rows, cols]` matrix whose entries are non-zero with probability `density`
/// (magnitudes in [0.5, 1.5], random signs, so kept entries are never zero).
fn random_sparse(rows: usize, cols: usize, density: f64, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, cols), || {
        let keep = rng.random::<f64>() < density;
        let v = rng.random::<f32>() + 0.5;
        let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
        if keep { sign * v } else { 0.0 }
    })
}

/// `|a - b| ≤ 1e-5 · (|x|·|W| + |bias|)` element-wise: relative to the size of the
/// terms summed, the scale of float rounding (a plain relative error is meaningless
/// for outputs that cancel to near zero).
fn assert_close(got: ArrayView2<f32>, want: ArrayView2<f32>, scale: ArrayView2<f32>, what: &str) {
    assert_eq!(got.dim(), want.dim(), "{what}: shape");
    for ((i, g), (w, s)) in got.indexed_iter().zip(want.iter().zip(scale.iter())) {
        let tol = 1e-5 * s.max(1e-6);
        assert!(
            (g - w).abs() <= tol,
            "{what} at {i:?}: {g} vs {w} (tolerance {tol})"
        );
    }
}

#[test]
fn a_small_matrix_is_stored_and_multiplied_as_worked_out_by_hand() {
    let w = array![[0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, -3.0]];
    let c = Csr::from_dense(w.view()).expect("fits");
    assert_eq!((c.rows(), c.cols(), c.nnz()), (3, 3, 3));
    assert!((c.density() - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(c.indices(), &Indices::U16(vec![1, 0, 2]));
    assert_eq!(c.to_dense(), w);
    // z_j = Σ_k x_k W_kj: [2·1, 1·2, 2·(-3)], then + bias.
    let x = array![[1.0, 5.0, 2.0]];
    let mut z = Array2::zeros((1, 3));
    c.matmul_into(x.view(), z.view_mut());
    assert_eq!(z, array![[2.0, 2.0, -6.0]]);
    c.linear_into(x.view(), Some(&[0.5, -1.0, 0.0]), z.view_mut());
    assert_eq!(z, array![[2.5, 1.0, -6.0]]);
}

#[test]
fn the_csr_product_equals_the_dense_one_for_awkward_shapes_densities_and_batches() {
    let mut seed = 0;
    for (rows, cols) in [(1, 1), (3, 17), (33, 65), (784, 300)] {
        for density in [0.0, 0.05, 0.5, 1.0] {
            seed += 1;
            let w = random_sparse(rows, cols, density, seed);
            let c = Csr::from_dense(w.view()).expect("fits");
            assert_eq!(c.to_dense(), w, "round trip {rows}x{cols} at {density}");
            let nonzeros = w.iter().filter(|v| **v != 0.0).count();
            assert_eq!(c.nnz(), nonzeros);
            let bias: Vec<f32> = (0..cols).map(|j| j as f32 * 0.01 - 0.1).collect();
            // 1 and 3 rows: the row kernel; 8: one block; 21: two blocks and a remainder.
            for batch in [1, 3, 8, 21] {
                // Inputs with about a third exact zeros, like ReLU outputs.
                let x = random_sparse(batch, rows, 0.7, seed * 100 + batch as u64);
                let scale = x.mapv(f32::abs).dot(&w.mapv(f32::abs));
                let mut z = Array2::from_elem((batch, cols), f32::NAN);
                c.matmul_into(x.view(), z.view_mut());
                let what = format!("{rows}x{cols} density {density} batch {batch}");
                assert_close(z.view(), x.dot(&w).view(), scale.view(), &what);
                c.linear_into(x.view(), Some(&bias), z.view_mut());
                let want = x.dot(&w) + ndarray::aview1(&bias);
                let scale = scale + ndarray::aview1(&bias).mapv(f32::abs);
                assert_close(
                    z.view(),
                    want.view(),
                    scale.view(),
                    &format!("{what} + bias"),
                );
            }
        }
    }
}

#[test]
fn empty_rows_columns_and_matrices_give_zeros_or_the_bias() {
    // Row 1 and column 2 hold nothing.
    let w = array![
        [1.0, 0.0, 0.0, 2.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 3.0, 0.0, 0.0]
    ];
    let c = Csr::from_dense(w.view()).expect("fits");
    let x = Array2::from_shape_fn((9, 3), |(i, k)| (i * 3 + k) as f32 - 4.0);
    let mut z = Array2::zeros((9, 4));
    c.matmul_into(x.view(), z.view_mut());
    assert_eq!(z, x.dot(&w));
    assert!(z.column(2).iter().all(|&v| v == 0.0));

    for (rows, cols) in [(0, 5), (5, 0), (0, 0)] {
        let c = Csr::from_dense(Array2::<f32>::zeros((rows, cols)).view()).expect("fits");
        assert_eq!((c.nnz(), c.density()), (0, 0.0));
        assert_eq!(c.to_dense().dim(), (rows, cols));
        for batch in [0, 1, 9] {
            let x = Array2::ones((batch, rows));
            let mut z = Array2::from_elem((batch, cols), f32::NAN);
            let bias = vec![0.25; cols];
            c.linear_into(x.view(), Some(&bias), z.view_mut());
            assert!(z.iter().all(|&v| v == 0.25), "{rows}x{cols} batch {batch}");
        }
    }
}

#[test]
fn column_indices_widen_to_u32_only_past_65536_columns() {
    for (cols, wide) in [(65_536, false), (70_000, true)] {
        let mut w = Array2::zeros((2, cols));
        w[(0, cols - 1)] = 2.0;
        w[(1, 3)] = -1.0;
        w[(1, cols - 2)] = 0.5;
        let c = Csr::from_dense(w.view()).expect("fits");
        assert_eq!(
            matches!(c.indices(), Indices::U32(_)),
            wide,
            "{cols} columns"
        );
        let x = array![[3.0, 2.0]];
        let mut z = Array2::zeros((1, cols));
        c.matmul_into(x.view(), z.view_mut());
        assert_eq!(z[(0, cols - 1)], 6.0);
        assert_eq!(z[(0, 3)], -2.0);
        assert_eq!(z[(0, cols - 2)], 1.0);
        assert_eq!(z.iter().filter(|v| **v != 0.0).count(), 3);
    }
}

#[test]
fn strided_inputs_and_outputs_give_the_same_product() {
    let w = random_sparse(7, 5, 0.4, 9);
    let c = Csr::from_dense(w.view()).expect("fits");
    // x is a transposed view, z every other column of a wider array.
    let xt = random_sparse(7, 11, 0.8, 10);
    let x = xt.t();
    let mut wide = Array2::from_elem((11, 10), f32::NAN);
    c.matmul_into(x, wide.slice_mut(s![.., ..;2]));
    let scale = x.mapv(f32::abs).dot(&w.mapv(f32::abs));
    assert_close(
        wide.slice(s![.., ..;2]),
        x.dot(&w).view(),
        scale.view(),
        "strided",
    );
    assert!(wide.slice(s![.., 1..;2]).iter().all(|v| v.is_nan()));
}

fn arch(json: serde_json::Value) -> Architecture {
    serde_json::from_value(json).expect("architecture")
}

/// 20 → 16 relu → dropout → 12 relu (no bias) → 5 softmax, layer 0 pruned to 10 %
/// and layer 2 to 40 % by magnitude, the head left dense.
fn pruned_model() -> Sequential {
    let a = arch(serde_json::json!({"input_dim": 20, "layers": [
        {"type": "dense", "units": 16, "activation": "relu"},
        {"type": "dropout", "rate": 0.3},
        {"type": "dense", "units": 12, "activation": "relu", "use_bias": false},
        {"type": "dense", "units": 5, "activation": "softmax"}]}));
    let mut model = Sequential::new(&a, 3);
    for (i, keep) in [(0, 0.1), (2, 0.4)] {
        let d = model.layers_mut()[i].as_dense_mut().expect("dense");
        let mut mags: Vec<f32> = d.weight.matrix().iter().map(|v| v.abs()).collect();
        mags.sort_by(|a, b| b.total_cmp(a));
        let kept = (mags.len() as f64 * keep).round() as usize;
        let threshold = mags[kept - 1];
        d.weight
            .matrix_mut()
            .mapv_inplace(|v| if v.abs() >= threshold { v } else { 0.0 });
        if let Some(b) = &mut d.bias {
            b.matrix_mut()
                .iter_mut()
                .enumerate()
                .for_each(|(j, v)| *v = j as f32 * 0.05 - 0.3);
        }
    }
    model
}

#[test]
fn every_plan_predicts_what_the_sequential_predicts() {
    let model = pruned_model();
    let densities: Vec<f64> = vec![32.0 / 320.0, 77.0 / 192.0, 1.0];
    let plans = [
        (Choice::Dense, compile_with(&model, Choice::Dense)),
        (Choice::Sparse, compile_with(&model, Choice::Sparse)),
        (Choice::Measure, compile(&model)),
        (
            Choice::Measure,
            compile_on(&model, Array2::zeros((3, 20)).view()),
        ),
    ];
    for (choice, plan) in &plans {
        let kernels = plan.kernels();
        assert_eq!(
            kernels.iter().map(|k| k.layer).collect::<Vec<_>>(),
            [0, 2, 3]
        );
        for (k, want) in kernels.iter().zip(&densities) {
            assert!((k.density - want).abs() < 1e-9, "{k:?} vs {want}");
        }
        for k in &kernels {
            let expected = match choice {
                Choice::Dense => Some("dense"),
                Choice::Sparse => Some("csr"),
                // Clearly dense layers are not measured.
                Choice::Measure if k.density > 0.5 => Some("dense"),
                Choice::Measure => None,
            };
            if let Some(name) = expected {
                assert_eq!((k.batch1, k.batched), (name, name), "{choice:?} {k:?}");
            }
        }
        for batch in [0, 1, 3, 4, 5, 17, 40] {
            let x = random_sparse(batch, 20, 0.8, batch as u64);
            let want = model.predict(x.view());
            let got = plan.predict(x.view());
            assert_eq!(got.dim(), (batch, 5));
            for (g, w) in got.iter().zip(want.iter()) {
                assert!(
                    (g - w).abs() <= 1e-5,
                    "{choice:?} batch {batch}: {g} vs {w}"
                );
            }
            let chunks = plan.predict_batched(x.view(), 6);
            for (g, w) in chunks.iter().zip(got.iter()) {
                assert!((g - w).abs() <= 1e-6, "{choice:?} batch {batch} in chunks");
            }
        }
    }
}

#[test]
fn a_network_without_dense_layers_passes_its_input_through() {
    let model = Sequential::new(
        &arch(serde_json::json!({"input_dim": 3, "layers": [{"type": "dropout", "rate": 0.5}]})),
        1,
    );
    let plan = compile(&model);
    assert!(plan.kernels().is_empty());
    let x = array![[1.0, -2.0, 3.0]];
    assert_eq!(plan.predict(x.view()), x);
}

#[test]
fn the_compiled_model_owns_its_data_and_crosses_threads() {
    fn shareable<T: Send + Sync + 'static>(_: &T) {}
    let plan = compile_with(&pruned_model(), Choice::Sparse);
    shareable(&plan);
    let x = Array2::ones((2, 20));
    let want = plan.predict(x.view());
    let got = std::thread::spawn(move || plan.predict(x.view()))
        .join()
        .expect("thread");
    assert_eq!(got, want);
}

#[test]
fn layer_kernels_serialise_for_job_reports() {
    let k = LayerKernel {
        layer: 2,
        density: 0.25,
        batch1: "csr",
        batched: "dense",
    };
    assert_eq!(
        serde_json::to_value(&k).expect("serialises"),
        serde_json::json!({"layer": 2, "density": 0.25, "batch1": "csr", "batched": "dense"})
    );
}
