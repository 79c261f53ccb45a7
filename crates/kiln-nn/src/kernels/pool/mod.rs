//! Pooling kernels over `[C, H, W]` samples held as rows: max, average and
//! global average, forward and backward.
//!
//! Windows use [`Conv2dGeometry`] with one filter per channel. Padding never
//! takes part: a max never picks it and an average divides by the positions
//! inside the input (PyTorch's `count_include_pad=False`, ONNX's default).

#[cfg(test)]
mod tests;

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::kernels::conv::Conv2dGeometry;

/// Marks a window that lies wholly in the padding (its output is 0, with no source).
const NO_SOURCE: f32 = -1.0;

/// `out[i, c·P + p]` = the largest input of window `p`; `argmax` gets the flat
/// within-sample index it came from (as f32: exact below 2²⁴, the sample limit).
pub fn max_forward(
    g: &Conv2dGeometry,
    x: ArrayView2<f32>,
    mut out: ArrayViewMut2<f32>,
    mut argmax: Option<ArrayViewMut2<f32>>,
) {
    let (hw, p_len) = (g.height * g.width, g.positions());
    for i in 0..x.nrows() {
        for c in 0..g.channels {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let mut best = f32::NEG_INFINITY;
                    let mut at = None;
                    for ky in 0..g.kernel[0] {
                        for kx in 0..g.kernel[1] {
                            if let Some((y, xx)) = g.source(oy, ox, ky, kx) {
                                let idx = c * hw + y * g.width + xx;
                                let v = x[(i, idx)];
                                // `>` keeps the first maximum, as PyTorch and ONNX do.
                                if at.is_none() || v > best {
                                    best = v;
                                    at = Some(idx);
                                }
                            }
                        }
                    }
                    let o = c * p_len + oy * g.out_w + ox;
                    out[(i, o)] = if at.is_some() { best } else { 0.0 };
                    if let Some(a) = argmax.as_mut() {
                        a[(i, o)] = at.map_or(NO_SOURCE, |idx| idx as f32);
                    }
                }
            }
        }
    }
}

/// `dx` (overwritten) gets each output gradient at its window's maximum.
pub fn max_backward(argmax: ArrayView2<f32>, g_out: ArrayView2<f32>, mut dx: ArrayViewMut2<f32>) {
    dx.fill(0.0);
    for i in 0..g_out.nrows() {
        for (o, &go) in g_out.row(i).iter().enumerate() {
            let a = argmax[(i, o)];
            if a >= 0.0 {
                dx[(i, a as usize)] += go;
            }
        }
    }
}

/// Inputs window `(oy, ox)` averages over: how many lie inside the input.
fn window_count(g: &Conv2dGeometry, oy: usize, ox: usize) -> usize {
    let mut n = 0;
    for ky in 0..g.kernel[0] {
        for kx in 0..g.kernel[1] {
            n += usize::from(g.source(oy, ox, ky, kx).is_some());
        }
    }
    n
}

/// `out[i, c·P + p]` = the mean of window `p` over the positions inside the input.
pub fn avg_forward(g: &Conv2dGeometry, x: ArrayView2<f32>, mut out: ArrayViewMut2<f32>) {
    let (hw, p_len) = (g.height * g.width, g.positions());
    for i in 0..x.nrows() {
        for c in 0..g.channels {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let mut sum = 0.0f32;
                    for ky in 0..g.kernel[0] {
                        for kx in 0..g.kernel[1] {
                            if let Some((y, xx)) = g.source(oy, ox, ky, kx) {
                                sum += x[(i, c * hw + y * g.width + xx)];
                            }
                        }
                    }
                    let count = window_count(g, oy, ox).max(1);
                    out[(i, c * p_len + oy * g.out_w + ox)] = sum / count as f32;
                }
            }
        }
    }
}

/// `dx` (overwritten) gets each output gradient shared evenly over its window.
pub fn avg_backward(g: &Conv2dGeometry, g_out: ArrayView2<f32>, mut dx: ArrayViewMut2<f32>) {
    let (hw, p_len) = (g.height * g.width, g.positions());
    dx.fill(0.0);
    for i in 0..g_out.nrows() {
        for c in 0..g.channels {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let count = window_count(g, oy, ox).max(1);
                    let share = g_out[(i, c * p_len + oy * g.out_w + ox)] / count as f32;
                    for ky in 0..g.kernel[0] {
                        for kx in 0..g.kernel[1] {
                            if let Some((y, xx)) = g.source(oy, ox, ky, kx) {
                                dx[(i, c * hw + y * g.width + xx)] += share;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `out[i, c]` = the mean of channel `c` (`x: [n, C·plane]`).
pub fn global_avg_forward(plane: usize, x: ArrayView2<f32>, mut out: ArrayViewMut2<f32>) {
    for i in 0..x.nrows() {
        for c in 0..out.ncols() {
            let row = x.row(i);
            let sum: f32 = row.iter().skip(c * plane).take(plane).sum();
            out[(i, c)] = sum / plane as f32;
        }
    }
}

/// `dx[i, c·plane + j] = g_out[i, c] / plane`.
pub fn global_avg_backward(plane: usize, g_out: ArrayView2<f32>, mut dx: ArrayViewMut2<f32>) {
    for i in 0..g_out.nrows() {
        for c in 0..g_out.ncols() {
            let share = g_out[(i, c)] / plane as f32;
            for j in 0..plane {
                dx[(i, c * plane + j)] = share;
            }
        }
    }
}
