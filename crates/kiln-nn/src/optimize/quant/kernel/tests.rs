use ndarray::Array2;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

/// The definition: a plain triple loop in i64, so it cannot wrap where the kernels' i32 would.
fn naive(a: &[u8], m: usize, w: &Array2<i8>) -> Vec<i64> {
    let (k, n) = w.dim();
    let mut c = vec![0i64; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                c[i * n + j] += i64::from(a[i * k + p]) * i64::from(w[[p, j]]);
            }
        }
    }
    c
}

fn random_case(m: usize, k: usize, n: usize, seed: u64) -> (Vec<u8>, Array2<i8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let a = (0..m * k).map(|_| rng.random::<u8>()).collect();
    let w = Array2::from_shape_simple_fn((k, n), || rng.random::<i8>());
    (a, w)
}

/// Runs `isa` with `C` prefilled with garbage, so a kernel that skips an element is caught.
fn run(isa: Isa, a: &[u8], m: usize, packed: &PackedWeights) -> Vec<i32> {
    let mut c = vec![i32::MIN + 12_345; m * packed.n()];
    gemm_u8i8_with(isa, a, m, packed, &mut c);
    c
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (3, 17, 5),
    (33, 65, 31),
    (1, 784, 300),
    (7, 100, 64),
    (1024, 784, 300),
    // Every remainder of the SIMD blockings: rows 1..=7 and 13, panels up to 9, k tails 1..3.
    (13, 3, 16),
    (5, 6, 130),
    (2, 7, 144),
    (6, 9, 47),
    (4, 300, 100),
    (1, 100, 10),
    (1, 32, 1),
    (8, 64, 32),
];

#[test]
fn portable_equals_naive_triple_loop() {
    for (seed, &(m, k, n)) in SHAPES.iter().enumerate() {
        let (a, w) = random_case(m, k, n, seed as u64);
        let packed = PackedWeights::pack(w.view());
        let expected: Vec<i32> = naive(&a, m, &w)
            .into_iter()
            .map(|v| i32::try_from(v).expect("no overflow at these sizes"))
            .collect();
        assert_eq!(run(Isa::Portable, &a, m, &packed), expected, "{m}×{k}×{n}");
    }
}

#[test]
fn every_available_isa_is_bit_identical_to_portable() {
    for (seed, &(m, k, n)) in SHAPES.iter().enumerate() {
        let (a, w) = random_case(m, k, n, 100 + seed as u64);
        let packed = PackedWeights::pack(w.view());
        let reference = run(Isa::Portable, &a, m, &packed);
        for isa in Isa::ALL.into_iter().filter(|&isa| available(isa)) {
            assert_eq!(run(isa, &a, m, &packed), reference, "{isa:?} {m}×{k}×{n}");
        }
    }
}

/// A with runs of zero codes: whole zero k-groups in some rows of a tile but not in others,
/// zero rows, an all-zero stretch across every row and nonzero bytes only in the k tail, so
/// every way a path could skip (or wrongly skip) work on zeros is exercised.
fn sparse_case(m: usize, k: usize, n: usize, seed: u64) -> (Vec<u8>, Array2<i8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut a: Vec<u8> = (0..m * k)
        .map(|i| {
            let (row, col) = (i / k, i % k);
            let blank = (col / 4 + row) % 3 == 0 || row % 5 == 4 || (8..24).contains(&col);
            if blank { 0 } else { rng.random::<u8>() }
        })
        .collect();
    if m > 1 && !k.is_multiple_of(4) {
        // Row 1: zero everywhere but its last (partial) group.
        a[k..2 * k - k % 4].fill(0);
    }
    let w = Array2::from_shape_simple_fn((k, n), || rng.random::<i8>());
    (a, w)
}

#[test]
fn zero_codes_give_the_same_products_on_every_path() {
    let shapes = [
        (1, 784, 300),
        (2, 37, 40),
        (3, 101, 129),
        (7, 300, 100),
        (96, 784, 300),
    ];
    for (seed, &(m, k, n)) in shapes.iter().enumerate() {
        let (a, w) = sparse_case(m, k, n, 300 + seed as u64);
        let zeros = a.iter().filter(|&&v| v == 0).count();
        assert!(zeros > a.len() / 3, "{zeros} of {}", a.len());
        let packed = PackedWeights::pack(w.view());
        let expected: Vec<i32> = naive(&a, m, &w)
            .into_iter()
            .map(|v| i32::try_from(v).expect("no overflow at these sizes"))
            .collect();
        for isa in Isa::ALL.into_iter().filter(|&isa| available(isa)) {
            assert_eq!(run(isa, &a, m, &packed), expected, "{isa:?} {m}×{k}×{n}");
        }
    }
}

#[test]
fn extremes_do_not_saturate() {
    // 255 × −128 everywhere: every output is exactly −32 640·k, which i16 pair sums
    // (vpmaddubsw) would clamp to −32 768 per pair.
    for &(m, k, n) in &[(1, 784, 300), (9, 65, 33), (2, 3, 17)] {
        let a = vec![255u8; m * k];
        let w = Array2::from_elem((k, n), -128i8);
        let packed = PackedWeights::pack(w.view());
        let expected = vec![-32_640 * k as i32; m * n];
        for isa in Isa::ALL.into_iter().filter(|&isa| available(isa)) {
            assert_eq!(run(isa, &a, m, &packed), expected, "{isa:?} {m}×{k}×{n}");
        }
        // And the largest positive product: 255 × 127.
        let w = Array2::from_elem((k, n), 127i8);
        let packed = PackedWeights::pack(w.view());
        let expected = vec![32_385 * k as i32; m * n];
        for isa in Isa::ALL.into_iter().filter(|&isa| available(isa)) {
            assert_eq!(run(isa, &a, m, &packed), expected, "{isa:?} {m}×{k}×{n}");
        }
    }
}

#[test]
fn sums_past_i32_wrap_identically_on_every_path() {
    // k = 65 800 > 65 793: 255 · (−128) · k is below i32::MIN, so the sums wrap; the paths must
    // still agree with each other and with the i64 result reduced mod 2³².
    let (m, k, n) = (2, 65_800, 3);
    let a = vec![255u8; m * k];
    let w = Array2::from_elem((k, n), -128i8);
    let packed = PackedWeights::pack(w.view());
    let expected = vec![(-32_640i64 * k as i64) as i32; m * n];
    for isa in Isa::ALL.into_iter().filter(|&isa| available(isa)) {
        assert_eq!(run(isa, &a, m, &packed), expected, "{isa:?}");
    }
}

#[test]
fn col_sums_by_hand() {
    // W (3×2) = [[1, −2], [−128, 5], [127, 7]]: column sums 0 and 10.
    let w = ndarray::array![[1i8, -2], [-128, 5], [127, 7]];
    let packed = PackedWeights::pack(w.view());
    assert_eq!((packed.k(), packed.n()), (3, 2));
    assert_eq!(packed.col_sums(), &[0, 10]);
    // Any memory layout packs the same: the transpose of a stored 2×3 array.
    let stored = ndarray::array![[1i8, -128, 127], [-2, 5, 7]];
    assert_eq!(PackedWeights::pack(stored.t()), packed);
}

#[test]
fn small_product_by_hand() {
    // A (2×3) = [[1, 2, 3], [255, 0, 1]], W as above:
    // row 0: [1 − 256 + 381, −2 + 10 + 21] = [126, 29]; row 1: [255 + 127, −510 + 7] = [382, −503].
    let w = ndarray::array![[1i8, -2], [-128, 5], [127, 7]];
    let packed = PackedWeights::pack(w.view());
    let a = [1u8, 2, 3, 255, 0, 1];
    for isa in Isa::ALL.into_iter().filter(|&isa| available(isa)) {
        assert_eq!(
            run(isa, &a, 2, &packed),
            vec![126, 29, 382, -503],
            "{isa:?}"
        );
    }
}

#[test]
fn zero_k_gives_zeros_and_zero_n_or_m_writes_nothing() {
    let packed = PackedWeights::pack(Array2::<i8>::zeros((0, 5)).view());
    for isa in Isa::ALL {
        assert_eq!(run(isa, &[], 2, &packed), vec![0; 10], "{isa:?}");
    }
    let packed = PackedWeights::pack(Array2::<i8>::zeros((4, 0)).view());
    let mut c: Vec<i32> = Vec::new();
    gemm_u8i8(&[1, 2, 3, 4], 1, &packed, &mut c);
    let packed = PackedWeights::pack(Array2::<i8>::ones((4, 2)).view());
    gemm_u8i8(&[], 0, &packed, &mut c);
    assert!(c.is_empty());
}

#[test]
fn portable_is_always_available_and_detected_is_available() {
    assert!(available(Isa::Portable));
    assert!(available(detected()));
    // Nothing better than what was detected is available.
    let rank = |isa: Isa| Isa::ALL.iter().position(|&x| x == isa);
    for isa in Isa::ALL.into_iter().filter(|&isa| available(isa)) {
        assert!(
            rank(isa) <= rank(detected()),
            "{isa:?} beats {:?}",
            detected()
        );
    }
}

#[test]
fn names_match_serde() {
    for isa in Isa::ALL {
        let json = serde_json::to_string(&isa).expect("serializes");
        assert_eq!(json, format!("\"{}\"", isa.name()));
    }
}

#[test]
fn rows_that_fit_clamps_to_the_shorter_buffer() {
    assert_eq!(rows_that_fit(4, 12, 3, 8, 2), 4);
    assert_eq!(rows_that_fit(4, 11, 3, 8, 2), 3);
    assert_eq!(rows_that_fit(4, 12, 3, 5, 2), 2);
    assert_eq!(rows_that_fit(4, 0, 0, 8, 2), 4);
    assert_eq!(rows_that_fit(4, 12, 3, 0, 0), 4);
}

/// Short buffers must not be read or written past their ends: in debug builds the contract is
/// asserted, in release the product covers only the rows that fit.
#[test]
#[cfg_attr(debug_assertions, should_panic(expected = "A must be m × k"))]
fn short_buffers_are_clamped_not_overrun() {
    let (a, w) = random_case(5, 33, 40, 9);
    let packed = PackedWeights::pack(w.view());
    let full = run(Isa::Portable, &a, 5, &packed);
    for isa in Isa::ALL {
        // A has 3 rows and a half, C room for 4: rows 0..3 computed, row 3 untouched.
        let mut c = vec![7i32; 4 * 40];
        gemm_u8i8_with(isa, &a[..3 * 33 + 16], 5, &packed, &mut c);
        assert_eq!(&c[..3 * 40], &full[..3 * 40], "{isa:?}");
        assert!(c[3 * 40..].iter().all(|&v| v == 7), "{isa:?}");
    }
}

/// The ISA entry points re-clamp on their own (no debug assertion there), so this runs in every
/// build: short buffers give the rows that fit, nothing past them is written, and each entry
/// point reports whether it ran (it must, where the CPU has its features).
#[cfg(target_arch = "x86_64")]
#[test]
fn isa_entry_points_run_when_available_and_clamp_short_buffers() {
    type Entry = fn(&[u8], usize, &PackedWeights, &mut [i32]) -> bool;
    let entries: [(Isa, Entry); 2] = [(Isa::Avx2, avx2::gemm), (Isa::Avx512Vnni, vnni::gemm)];
    let (a, w) = random_case(9, 35, 50, 11);
    let packed = PackedWeights::pack(w.view());
    let full = run(Isa::Portable, &a, 9, &packed);
    for (isa, entry) in entries {
        // A has 7 rows and a part, C room for 8: rows 0..7 computed, row 7 untouched.
        let mut c = vec![7i32; 8 * 50];
        let ran = entry(&a[..7 * 35 + 20], 9, &packed, &mut c);
        assert_eq!(ran, available(isa), "{isa:?}");
        if ran {
            assert_eq!(&c[..7 * 50], &full[..7 * 50], "{isa:?}");
            assert!(c[7 * 50..].iter().all(|&v| v == 7), "{isa:?}");
        } else {
            assert!(c.iter().all(|&v| v == 7), "{isa:?}");
        }
    }
}
