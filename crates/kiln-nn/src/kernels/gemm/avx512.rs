//! AVX-512F tiles: 6 rows × up to 64 columns (4 zmm) of `C` in 24 registers, with
//! masked loads and stores for the last partial vector (never touching memory past it).

use std::arch::x86_64::*;

use super::{Operands, Tile, for_each_tile};

/// Columns per tile.
const NR: usize = 64;

/// # Safety
/// The CPU must support AVX-512F, and `o` must describe live arrays of the stated
/// shapes (`C` not aliased), as [`super::matmul_on`] ensures.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn matmul(o: &Operands) {
    for_each_tile(o.m, o.n, o.k, NR, |t| {
        // SAFETY: the tile lies inside the operands (for_each_tile), the rest as above.
        unsafe {
            match t.rows {
                1 => tile_rows::<1>(o, &t),
                2 => tile_rows::<2>(o, &t),
                3 => tile_rows::<3>(o, &t),
                4 => tile_rows::<4>(o, &t),
                5 => tile_rows::<5>(o, &t),
                _ => tile_rows::<6>(o, &t),
            }
        }
    });
}

#[target_feature(enable = "avx512f")]
unsafe fn tile_rows<const R: usize>(o: &Operands, t: &Tile) {
    // SAFETY: forwarded from `matmul`.
    unsafe {
        match t.cols.div_ceil(16) {
            1 => tile::<R, 1>(o, t),
            2 => tile::<R, 2>(o, t),
            3 => tile::<R, 3>(o, t),
            _ => tile::<R, 4>(o, t),
        }
    }
}

/// `R` rows × `V` vectors of `C` over the tile's depth. Index loops over the const
/// bounds: they unroll completely, so the accumulators live in registers.
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)]
unsafe fn tile<const R: usize, const V: usize>(o: &Operands, t: &Tile) {
    let tail = t.cols - 16 * (V - 1);
    let last: __mmask16 = if tail >= 16 { !0 } else { (1u16 << tail) - 1 };
    let (rsa, csa, ldb, rsc, csc) = (o.rsa, o.csa, o.ldb, o.rsc, o.csc);
    // SAFETY: every offset below addresses an element inside the tile's rows, columns
    // and depth, which lie inside the operands; masked-off lanes are not accessed.
    unsafe {
        let a = o.a.offset(t.i0 as isize * rsa + t.p0 as isize * csa);
        let b = o.b.offset(t.p0 as isize * ldb + t.j0 as isize);
        let c = o.c.offset(t.i0 as isize * rsc + t.j0 as isize * csc);
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        if !t.first {
            let mut buf = [[[0.0f32; 16]; V]; R];
            for i in 0..R {
                for v in 0..V {
                    let lanes = if v + 1 == V { tail.min(16) } else { 16 };
                    for l in 0..lanes {
                        buf[i][v][l] = *c.offset(i as isize * rsc + (16 * v + l) as isize * csc);
                    }
                }
            }
            for i in 0..R {
                for v in 0..V {
                    acc[i][v] = _mm512_loadu_ps(buf[i][v].as_ptr());
                }
            }
        }
        let mut ap = a;
        let mut bp = b;
        for _ in 0..t.depth {
            let mut bv = [_mm512_setzero_ps(); V];
            for v in 0..V {
                bv[v] = if v + 1 == V {
                    _mm512_maskz_loadu_ps(last, bp.add(16 * v))
                } else {
                    _mm512_loadu_ps(bp.add(16 * v))
                };
            }
            for i in 0..R {
                let av = _mm512_set1_ps(*ap.offset(i as isize * rsa));
                for v in 0..V {
                    acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
                }
            }
            ap = ap.offset(csa);
            bp = bp.offset(ldb);
        }
        if csc == 1 {
            for i in 0..R {
                let row = c.offset(i as isize * rsc);
                for v in 0..V {
                    let mask = if v + 1 == V { last } else { !0 };
                    _mm512_mask_storeu_ps(row.add(16 * v), mask, acc[i][v]);
                }
            }
            return;
        }
        let mut buf = [[[0.0f32; 16]; V]; R];
        for i in 0..R {
            for v in 0..V {
                _mm512_storeu_ps(buf[i][v].as_mut_ptr(), acc[i][v]);
            }
        }
        for i in 0..R {
            for v in 0..V {
                let lanes = if v + 1 == V { tail.min(16) } else { 16 };
                for l in 0..lanes {
                    *c.offset(i as isize * rsc + (16 * v + l) as isize * csc) = buf[i][v][l];
                }
            }
        }
    }
}
