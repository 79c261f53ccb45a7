//! Image datasets: the order of an upload's pixel values, and turning any of
//! them into kiln's one order — each example a row, flattened channels first
//! (`[C, H, W]`), as `conv2d` reads it.
//!
//! An NPZ `x` of shape `[N, H, W]` is one channel; `[N, C, H, W]` is assumed
//! channels first unless the upload says `layout=nhwc` (PyTorch stores NCHW,
//! Keras and TensorFlow NHWC, and a guess from the sizes would be wrong for
//! some shapes, so kiln does not guess). CSV rows and 2-D NPZ rows are images
//! when the upload gives `input_shape` (always `[C, H, W]`); `layout` then says
//! how each row is ordered.

use std::fmt;

use ndarray::{Array2, ArrayD, Axis, Ix2, IxDyn};

use kiln_nn::validation::Invalid;

/// How the values of one image are ordered in an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Channels first: `[C, H, W]` (PyTorch, ONNX). The default.
    #[default]
    Nchw,
    /// Channels last: `[H, W, C]` (Keras, TensorFlow).
    Nhwc,
}

impl Layout {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nchw" | "channels_first" => Some(Self::Nchw),
            "nhwc" | "channels_last" => Some(Self::Nhwc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nchw => "nchw",
            Self::Nhwc => "nhwc",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses an `input_shape` form field: `[1, 28, 28]` or `1,28,28` (or `1x28x28`).
pub fn parse_input_shape(text: &str) -> Result<Vec<usize>, Invalid> {
    let bad = || {
        Invalid::one(
            "input_shape",
            format!(
                "must be [channels, height, width] of positive integers, e.g. [1, 28, 28]; found `{}`",
                text.chars().take(60).collect::<String>()
            ),
        )
    };
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    let dims = inner
        .split([',', 'x', 'X'])
        .map(|d| d.trim().parse::<usize>().map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    if dims.len() != 3 || dims.contains(&0) {
        return Err(bad());
    }
    Ok(dims)
}

/// The `[C, H, W]` an array of shape `dims` (without the row axis) holds in `layout`.
pub fn channels_first(dims: &[usize], layout: Layout) -> Option<Vec<usize>> {
    match (dims, layout) {
        ([h, w], _) => Some(vec![1, *h, *w]),
        ([c, h, w], Layout::Nchw) => Some(vec![*c, *h, *w]),
        ([h, w, c], Layout::Nhwc) => Some(vec![*c, *h, *w]),
        _ => None,
    }
}

/// Rows of `x` (any rank ≥ 2, the first axis the examples) flattened channels
/// first; `shape` is the per-example `[C, H, W]` ([`channels_first`] of `x`'s
/// trailing axes, or the upload's `input_shape` for 2-D `x`).
pub fn to_rows(x: ArrayD<f32>, shape: &[usize], layout: Layout) -> Result<Array2<f32>, Invalid> {
    let rows = x.len_of(Axis(0));
    let features: usize = shape.iter().product();
    let [c, h, w] = shape else {
        return Err(Invalid::one(
            "input_shape",
            format!("must be [channels, height, width]; found {shape:?}"),
        ));
    };
    // A Fortran-ordered `.npy` arrives with column-major strides; the reshapes
    // below read row-major order, so make it standard first (a no-op otherwise).
    let x = if x.is_standard_layout() {
        x
    } else {
        x.as_standard_layout().into_owned()
    };
    let nchw = match layout {
        Layout::Nchw => x,
        Layout::Nhwc => {
            // Whatever rank came in, view it as [N, H, W, C] and move C forward.
            let nhwc = x
                .into_shape_with_order(IxDyn(&[rows, *h, *w, *c]))
                .map_err(|e| Invalid::one("file", format!("array `x`: {e}")))?;
            nhwc.permuted_axes(IxDyn(&[0, 3, 1, 2]))
                .as_standard_layout()
                .into_owned()
        }
    };
    nchw.into_shape_with_order(IxDyn(&[rows, features]))
        .and_then(|a| a.into_dimensionality::<Ix2>())
        .map_err(|e| Invalid::one("file", format!("array `x`: {e}")))
}

#[cfg(test)]
mod tests {
    use ndarray::{Array, array};

    use super::*;

    #[test]
    fn nhwc_rows_are_reordered_channels_first() {
        // One 2×2 image with 3 channels whose value encodes (c, h, w) as c·100 + h·10 + w.
        let nhwc = Array::from_shape_fn((1, 2, 2, 3), |(_, h, w, c)| (c * 100 + h * 10 + w) as f32);
        let shape = channels_first(&nhwc.shape()[1..], Layout::Nhwc).unwrap();
        assert_eq!(shape, [3, 2, 2]);
        let rows = to_rows(nhwc.into_dyn(), &shape, Layout::Nhwc).unwrap();
        assert_eq!(
            rows,
            array![[
                0., 1., 10., 11., 100., 101., 110., 111., 200., 201., 210., 211.
            ]]
        );
    }

    #[test]
    fn nchw_and_single_channel_rows_keep_their_order() {
        let x = Array::from_shape_fn((2, 2, 3), |(n, h, w)| (n * 100 + h * 10 + w) as f32);
        let shape = channels_first(&x.shape()[1..], Layout::Nchw).unwrap();
        assert_eq!(shape, [1, 2, 3]);
        let rows = to_rows(x.into_dyn(), &shape, Layout::Nchw).unwrap();
        assert_eq!(rows.row(1).to_vec(), [100., 101., 102., 110., 111., 112.]);
        // A flat row given a shape in channels-last order is permuted too.
        let flat = array![[0., 100., 1., 101.]].into_dyn(); // [H=1, W=2, C=2]
        let rows = to_rows(flat, &[2, 1, 2], Layout::Nhwc).unwrap();
        assert_eq!(rows, array![[0., 1., 100., 101.]]);
    }

    #[test]
    fn column_major_arrays_give_the_same_rows() {
        let x = Array::from_shape_fn((2, 2, 3), |(n, h, w)| (n * 100 + h * 10 + w) as f32);
        let fortran = x.t().as_standard_layout().into_owned().reversed_axes();
        assert_eq!(fortran, x);
        assert!(!fortran.is_standard_layout());
        let shape = [1, 2, 3];
        assert_eq!(
            to_rows(fortran.into_dyn(), &shape, Layout::Nchw).unwrap(),
            to_rows(x.into_dyn(), &shape, Layout::Nchw).unwrap()
        );
    }

    #[test]
    fn input_shapes_and_layouts_parse_or_say_why() {
        assert_eq!(parse_input_shape("[1, 28, 28]").unwrap(), [1, 28, 28]);
        assert_eq!(parse_input_shape("3,32,32").unwrap(), [3, 32, 32]);
        assert_eq!(parse_input_shape("1x8x8").unwrap(), [1, 8, 8]);
        for bad in ["", "[28, 28]", "1,0,4", "a,b,c", "[1,2,3,4]", "-1,2,2"] {
            let e = parse_input_shape(bad).unwrap_err();
            assert_eq!(e.0[0].field, "input_shape", "{bad}");
        }
        assert_eq!(Layout::parse("NHWC"), Some(Layout::Nhwc));
        assert_eq!(Layout::parse("channels_first"), Some(Layout::Nchw));
        assert_eq!(Layout::parse("hwc"), None);
        assert_eq!(channels_first(&[4, 4, 4, 4], Layout::Nchw), None);
    }
}
