//! The lowering of a windowed operation onto a matrix product.
//!
//! For one group, `cols[k, i·P + p]` holds the input value kernel tap `k =
//! (c, ky, kx)` reads for output position `p` of sample `i` (0 in the padding):
//! `[K, n·P]`, so the convolution is `W[F, K] · cols` with the output already in
//! `[F, (sample, position)]` order, one contiguous run per sample and filter.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::Conv2dGeometry;

/// Fills `cols` (`[patch_len, n·positions]`) from the channels of `group` in `x` (`[n, C·H·W]`).
pub fn im2col(g: &Conv2dGeometry, x: ArrayView2<f32>, group: usize, mut cols: ArrayViewMut2<f32>) {
    let (kh, kw) = (g.kernel[0], g.kernel[1]);
    let (hw, p_len) = (g.height * g.width, g.positions());
    let c0 = group * g.channels_per_group();
    for (i, sample) in x.rows().into_iter().enumerate() {
        let sample = sample.to_slice();
        for c in 0..g.channels_per_group() {
            for ky in 0..kh {
                for kx in 0..kw {
                    let k = (c * kh + ky) * kw + kx;
                    let mut row = cols.row_mut(k);
                    let dst = &mut row.as_slice_mut().expect("cols is standard layout")
                        [i * p_len..(i + 1) * p_len];
                    let plane = c0 + c;
                    for oy in 0..g.out_h {
                        for ox in 0..g.out_w {
                            dst[oy * g.out_w + ox] = match g.source(oy, ox, ky, kx) {
                                Some((y, xx)) => sample.map_or_else(
                                    || x[(i, plane * hw + y * g.width + xx)],
                                    |s| s[plane * hw + y * g.width + xx],
                                ),
                                None => 0.0,
                            };
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each entry of `cols` back onto the input
/// position it was read from (`dx: [n, C·H·W]`, added to, not overwritten).
pub fn col2im_add(
    g: &Conv2dGeometry,
    cols: ArrayView2<f32>,
    group: usize,
    mut dx: ArrayViewMut2<f32>,
) {
    let (kh, kw) = (g.kernel[0], g.kernel[1]);
    let (hw, p_len) = (g.height * g.width, g.positions());
    let c0 = group * g.channels_per_group();
    for (i, mut sample) in dx.rows_mut().into_iter().enumerate() {
        for c in 0..g.channels_per_group() {
            let plane = c0 + c;
            for ky in 0..kh {
                for kx in 0..kw {
                    let k = (c * kh + ky) * kw + kx;
                    let src = cols.row(k);
                    for oy in 0..g.out_h {
                        for ox in 0..g.out_w {
                            if let Some((y, xx)) = g.source(oy, ox, ky, kx) {
                                sample[plane * hw + y * g.width + xx] +=
                                    src[i * p_len + oy * g.out_w + ox];
                            }
                        }
                    }
                }
            }
        }
    }
}
