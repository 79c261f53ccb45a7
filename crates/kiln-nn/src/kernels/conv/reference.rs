//! The direct convolution in f64, six nested loops straight from the definition:
//! what the im2col path is tested against.

use ndarray::{Array2, ArrayView2};

use super::Conv2dGeometry;

/// `z[i, f, oy, ox] = b[f] + Σ_{c, ky, kx} w[f, c, ky, kx] · x[i, g·Cg + c, y, x]`.
pub fn forward(
    g: &Conv2dGeometry,
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    bias: Option<&[f32]>,
) -> Array2<f64> {
    let (cg, fg) = (g.channels_per_group(), g.filters_per_group());
    let (kh, kw, hw) = (g.kernel[0], g.kernel[1], g.height * g.width);
    let mut z = Array2::zeros((x.nrows(), g.output_size()));
    for i in 0..x.nrows() {
        for f in 0..g.filters {
            let group = f / fg;
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let mut acc = bias.map_or(0.0, |b| b[f] as f64);
                    for c in 0..cg {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                if let Some((y, xx)) = g.source(oy, ox, ky, kx) {
                                    let xv = x[(i, (group * cg + c) * hw + y * g.width + xx)];
                                    let wv = w[(f, (c * kh + ky) * kw + kx)];
                                    acc += xv as f64 * wv as f64;
                                }
                            }
                        }
                    }
                    z[(i, (f * g.out_h + oy) * g.out_w + ox)] = acc;
                }
            }
        }
    }
    z
}
