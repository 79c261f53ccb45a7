//! Matrix-product paths compared at the shapes kiln trains and serves, single-threaded, f32.
//!
//! `cargo bench --bench matmul`. Each group is one shape `C (m×n) = A (m×k) · B (k×n)`; its
//! throughput is counted in FLOPs (2·m·k·n per product), so criterion's "elem/s" is FLOP/s.
//!
//! Paths:
//! - `kiln`: kiln's path, `kiln_nn::kernels::gemm` (no packing; `matmul_bt` for `A·Bᵀ`), on one
//!   thread (`nn::kernels::parallel::serial`); `kiln_avx2` the same forced onto its AVX2 + FMA path
//!   (what CPUs without AVX-512 run); `kiln_cores` unrestricted, so products of 16 MFLOPs
//!   and more are split over all cores;
//! - `ndarray`: kiln's path before it, `ndarray::linalg::general_mat_mul` into a preallocated
//!   output (matrixmultiply with its `avx512` feature, chosen at run time; no threading feature);
//! - `gemm`: the `gemm` crate with its `x86-v4` (AVX-512) kernels, `Parallelism::None`;
//! - `naive`: a plain i-k-j loop, the slow reference, at the two smallest shapes only.
//!
//! Before any timing, every shape's `ndarray` and `gemm` results (and `naive`'s where it runs)
//! are checked to agree to 1e-3 relative, so a wrong call cannot report a fast wrong number.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_nn::kernels::gemm::{self as kiln_gemm, Isa};
use kiln_nn::kernels::parallel::serial;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Shape {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    /// `A` is the transpose of a stored `k×m` array (the weight gradient `Xᵀ·dZ`), as
    /// `Dense::backward` passes `x.t()`.
    a_transposed: bool,
    /// `B` is the transpose of a stored `n×k` array (the input gradient `dZ·Wᵀ`).
    b_transposed: bool,
    /// Also time the naive loop here.
    naive: bool,
}

const SHAPES: &[Shape] = &[
    // The distillation teacher's second layer (1200→1200) training at batch 32: forward,
    // weight gradient and input gradient; and the 784-64-10 student's first layer.
    Shape {
        name: "teacher_l2_32x1200x1200",
        m: 32,
        k: 1200,
        n: 1200,
        a_transposed: false,
        b_transposed: false,
        naive: false,
    },
    Shape {
        name: "teacher_dW2_1200x32x1200_At",
        m: 1200,
        k: 32,
        n: 1200,
        a_transposed: true,
        b_transposed: false,
        naive: false,
    },
    Shape {
        name: "teacher_dx2_32x1200x1200_Bt",
        m: 32,
        k: 1200,
        n: 1200,
        a_transposed: false,
        b_transposed: true,
        naive: false,
    },
    Shape {
        name: "student_l1_32x784x64",
        m: 32,
        k: 784,
        n: 64,
        a_transposed: false,
        b_transposed: false,
        naive: false,
    },
    // LeNet-300-100 training at batch 128.
    Shape {
        name: "lenet_l1_128x784x300",
        m: 128,
        k: 784,
        n: 300,
        a_transposed: false,
        b_transposed: false,
        naive: false,
    },
    Shape {
        name: "lenet_l2_128x300x100",
        m: 128,
        k: 300,
        n: 100,
        a_transposed: false,
        b_transposed: false,
        naive: true,
    },
    Shape {
        name: "lenet_dW1_784x128x300_At",
        m: 784,
        k: 128,
        n: 300,
        a_transposed: true,
        b_transposed: false,
        naive: false,
    },
    // Seed model (100-64-32-1), first layer, at batch 32 and 1024.
    Shape {
        name: "seed_l1_32x100x64",
        m: 32,
        k: 100,
        n: 64,
        a_transposed: false,
        b_transposed: false,
        naive: true,
    },
    Shape {
        name: "seed_l1_1024x100x64",
        m: 1024,
        k: 100,
        n: 64,
        a_transposed: false,
        b_transposed: false,
        naive: false,
    },
    // The reference shape of shared/DEPENDENCIES.md.
    Shape {
        name: "ref_256x784x300",
        m: 256,
        k: 784,
        n: 300,
        a_transposed: false,
        b_transposed: false,
        naive: false,
    },
];

fn random(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.random_range(-1.0f32..1.0))
}

/// Path (a): kiln's.
fn ndarray_mm(a: &ArrayView2<f32>, b: &ArrayView2<f32>, c: &mut Array2<f32>) {
    general_mat_mul(1.0, a, b, 0.0, c);
}

/// Path (b): `gemm`, single-threaded. Strides come from the views, so a transposed `A` is read
/// in place like ndarray reads it.
fn gemm_mm(a: &ArrayView2<f32>, b: &ArrayView2<f32>, c: &mut ArrayViewMut2<f32>) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2);
    assert_eq!(c.dim(), (m, n));
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the pointers and strides describe the three live views exactly (dimensions checked
    // above); `c` is borrowed mutably and does not alias `a` or `b`. With `read_dst == false`
    // gemm computes `dst = beta · lhs · rhs` (its `alpha` scales the old `dst`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Path (c): plain i-k-j loop over contiguous row-major `A`, `B`, `C`.
fn naive_mm(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    c.fill(0.0);
    for i in 0..m {
        let c_row = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let aip = a[i * k + p];
            let b_row = &b[p * n..(p + 1) * n];
            for (cij, &bpj) in c_row.iter_mut().zip(b_row) {
                *cij += aip * bpj;
            }
        }
    }
}

/// Largest difference relative to the largest magnitude of `reference`.
fn relative_error(reference: &Array2<f32>, other: &Array2<f32>) -> f32 {
    let scale = reference.iter().fold(0.0f32, |acc, x| acc.max(x.abs()));
    assert!(scale > 0.0, "reference product is all zeros");
    let diff = reference
        .iter()
        .zip(other)
        .fold(0.0f32, |acc, (x, y)| acc.max((x - y).abs()));
    diff / scale
}

struct Operands {
    /// Stored `A`: `m×k`, or `k×m` when the shape reads its transpose.
    a_stored: Array2<f32>,
    /// Stored `B`: `k×n`, or `n×k` when the shape reads its transpose.
    b_stored: Array2<f32>,
}

impl Operands {
    fn new(shape: &Shape, rng: &mut ChaCha8Rng) -> Self {
        let a_stored = if shape.a_transposed {
            random(shape.k, shape.m, rng)
        } else {
            random(shape.m, shape.k, rng)
        };
        let b_stored = if shape.b_transposed {
            random(shape.n, shape.k, rng)
        } else {
            random(shape.k, shape.n, rng)
        };
        Self { a_stored, b_stored }
    }

    fn b(&self, shape: &Shape) -> ArrayView2<'_, f32> {
        if shape.b_transposed {
            self.b_stored.t()
        } else {
            self.b_stored.view()
        }
    }

    /// Path (kiln): `matmul`, or `matmul_bt` on the stored `B` when the shape reads `Bᵀ`.
    fn kiln_mm(&self, shape: &Shape, isa: Isa, c: ArrayViewMut2<f32>) {
        if shape.b_transposed {
            kiln_gemm::matmul_bt_on(isa, self.a(shape), self.b_stored.view(), c);
        } else {
            kiln_gemm::matmul_on(isa, self.a(shape), self.b_stored.view(), c);
        }
    }

    fn a(&self, shape: &Shape) -> ArrayView2<'_, f32> {
        if shape.a_transposed {
            self.a_stored.t()
        } else {
            self.a_stored.view()
        }
    }
}

/// Runs before any timing: the paths must compute the same product.
fn check_agreement(shape: &Shape, ops: &Operands) {
    let a = ops.a(shape);
    let b = ops.b(shape);
    let mut c_nd = Array2::<f32>::zeros((shape.m, shape.n));
    ndarray_mm(&a, &b, &mut c_nd);
    let mut c_kiln = Array2::<f32>::from_elem((shape.m, shape.n), f32::NAN);
    ops.kiln_mm(shape, kiln_gemm::best_isa(), c_kiln.view_mut());
    let err = relative_error(&c_nd, &c_kiln);
    assert!(
        err <= 1e-3,
        "{}: kiln differs from ndarray by {err:e} relative",
        shape.name
    );
    // Start gemm's output from garbage, so a call that failed to overwrite it is caught.
    let mut c_gemm = Array2::<f32>::from_elem((shape.m, shape.n), f32::NAN);
    gemm_mm(&a, &b, &mut c_gemm.view_mut());
    let err = relative_error(&c_nd, &c_gemm);
    assert!(
        err <= 1e-3,
        "{}: gemm differs from ndarray by {err:e} relative",
        shape.name
    );
    if shape.naive {
        let a_std = a.as_standard_layout();
        let mut c_naive = Array2::<f32>::from_elem((shape.m, shape.n), f32::NAN);
        naive_mm(
            a_std.as_slice().expect("standard layout"),
            ops.b_stored.as_slice().expect("standard layout"),
            c_naive.as_slice_mut().expect("standard layout"),
            shape.m,
            shape.k,
            shape.n,
        );
        let err = relative_error(&c_nd, &c_naive);
        assert!(
            err <= 1e-3,
            "{}: naive differs from ndarray by {err:e} relative",
            shape.name
        );
    }
}

fn bench_matmul(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let operands: Vec<Operands> = SHAPES.iter().map(|s| Operands::new(s, &mut rng)).collect();
    for (shape, ops) in SHAPES.iter().zip(&operands) {
        check_agreement(shape, ops);
    }

    for (shape, ops) in SHAPES.iter().zip(&operands) {
        let (m, k, n) = (shape.m, shape.k, shape.n);
        let mut group = c.benchmark_group("matmul");
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20)
            // FLOPs: one multiply and one add per (i, p, j).
            .throughput(Throughput::Elements((2 * m * k * n) as u64));

        let a = ops.a(shape);
        let b = ops.b(shape);

        let mut out = Array2::<f32>::zeros((m, n));
        let mut paths = vec![("kiln", kiln_gemm::best_isa(), true)];
        if Isa::Avx2Fma.available() {
            paths.push(("kiln_avx2", Isa::Avx2Fma, true));
        }
        if 2 * m * n * k >= 16_000_000 {
            paths.push(("kiln_cores", kiln_gemm::best_isa(), false));
        }
        for (name, isa, one_thread) in paths {
            group.bench_function(BenchmarkId::new(name, shape.name), |bench| {
                bench.iter(|| {
                    if one_thread {
                        serial(|| ops.kiln_mm(shape, isa, out.view_mut()));
                    } else {
                        ops.kiln_mm(shape, isa, out.view_mut());
                    }
                    black_box(&out);
                })
            });
        }

        let mut out = Array2::<f32>::zeros((m, n));
        group.bench_function(BenchmarkId::new("ndarray", shape.name), |bench| {
            bench.iter(|| {
                ndarray_mm(&black_box(a), &black_box(b), &mut out);
                black_box(&out);
            })
        });

        let mut out = Array2::<f32>::zeros((m, n));
        group.bench_function(BenchmarkId::new("gemm", shape.name), |bench| {
            bench.iter(|| {
                gemm_mm(&black_box(a), &black_box(b), &mut out.view_mut());
                black_box(&out);
            })
        });

        if shape.naive {
            let a_std = a.as_standard_layout().into_owned();
            let a_slice = a_std.as_slice().expect("standard layout");
            let b_slice = ops.b_stored.as_slice().expect("standard layout");
            let mut out = vec![0.0f32; m * n];
            group.bench_function(BenchmarkId::new("naive", shape.name), |bench| {
                bench.iter(|| {
                    naive_mm(black_box(a_slice), black_box(b_slice), &mut out, m, k, n);
                    black_box(&out);
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_matmul);
criterion_main!(benches);
