//! AVX2 + FMA tiles: 6 rows × up to 16 columns (2 ymm) of `C` in 12 of the 16
//! registers; the last partial vector goes through `vmaskmovps`.

use std::arch::x86_64::*;

use super::{Operands, Tile, for_each_tile};

/// Columns per tile.
const NR: usize = 16;

/// # Safety
/// The CPU must support AVX2 and FMA, and `o` must describe live arrays of the stated
/// shapes (`C` not aliased), as [`super::matmul_on`] ensures.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn matmul(o: &Operands) {
    for_each_tile(o.m, o.n, o.k, NR, |t| {
        // SAFETY: the tile lies inside the operands (for_each_tile), the rest as above.
        unsafe {
            match (t.rows, t.cols > 8) {
                (1, false) => tile::<1, 1>(o, &t),
                (2, false) => tile::<2, 1>(o, &t),
                (3, false) => tile::<3, 1>(o, &t),
                (4, false) => tile::<4, 1>(o, &t),
                (5, false) => tile::<5, 1>(o, &t),
                (_, false) => tile::<6, 1>(o, &t),
                (1, true) => tile::<1, 2>(o, &t),
                (2, true) => tile::<2, 2>(o, &t),
                (3, true) => tile::<3, 2>(o, &t),
                (4, true) => tile::<4, 2>(o, &t),
                (5, true) => tile::<5, 2>(o, &t),
                (_, true) => tile::<6, 2>(o, &t),
            }
        }
    });
}

/// `R` rows × `V` vectors of 8 columns over the tile's depth. Index loops over the
/// const bounds: they unroll completely, so the accumulators live in registers.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)]
unsafe fn tile<const R: usize, const V: usize>(o: &Operands, t: &Tile) {
    let tail = t.cols - 8 * (V - 1);
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let last = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail.min(8) as i32), lanes);
    let partial = tail < 8;
    let (rsa, csa, ldb, rsc, csc) = (o.rsa, o.csa, o.ldb, o.rsc, o.csc);
    // SAFETY: every offset below addresses an element inside the tile's rows, columns
    // and depth, which lie inside the operands; masked-off lanes are not accessed.
    unsafe {
        let a = o.a.offset(t.i0 as isize * rsa + t.p0 as isize * csa);
        let b = o.b.offset(t.p0 as isize * ldb + t.j0 as isize);
        let c = o.c.offset(t.i0 as isize * rsc + t.j0 as isize * csc);
        let mut acc = [[_mm256_setzero_ps(); V]; R];
        if !t.first {
            let mut buf = [[[0.0f32; 8]; V]; R];
            for i in 0..R {
                for v in 0..V {
                    let n = if v + 1 == V { tail.min(8) } else { 8 };
                    for l in 0..n {
                        buf[i][v][l] = *c.offset(i as isize * rsc + (8 * v + l) as isize * csc);
                    }
                }
            }
            for i in 0..R {
                for v in 0..V {
                    acc[i][v] = _mm256_loadu_ps(buf[i][v].as_ptr());
                }
            }
        }
        let mut ap = a;
        let mut bp = b;
        for _ in 0..t.depth {
            let mut bv = [_mm256_setzero_ps(); V];
            for v in 0..V {
                bv[v] = if partial && v + 1 == V {
                    _mm256_maskload_ps(bp.add(8 * v), last)
                } else {
                    _mm256_loadu_ps(bp.add(8 * v))
                };
            }
            for i in 0..R {
                let av = _mm256_set1_ps(*ap.offset(i as isize * rsa));
                for v in 0..V {
                    acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
                }
            }
            ap = ap.offset(csa);
            bp = bp.offset(ldb);
        }
        let mut buf = [[[0.0f32; 8]; V]; R];
        for i in 0..R {
            for v in 0..V {
                let n = if v + 1 == V { tail.min(8) } else { 8 };
                if csc == 1 && n == 8 {
                    _mm256_storeu_ps(c.offset(i as isize * rsc).add(8 * v), acc[i][v]);
                } else {
                    _mm256_storeu_ps(buf[i][v].as_mut_ptr(), acc[i][v]);
                    for l in 0..n {
                        *c.offset(i as isize * rsc + (8 * v + l) as isize * csc) = buf[i][v][l];
                    }
                }
            }
        }
    }
}
