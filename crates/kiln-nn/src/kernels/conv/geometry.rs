//! Where a 2-D window lands: the one geometry convolution and pooling share.
//!
//! Samples are `[C, H, W]`, channels first (the memory of a `[n, C, H, W]`
//! batch). Padding is resolved once into explicit `[top, left, bottom, right]`
//! amounts: `same` is ONNX's `SAME_UPPER` (and TensorFlow's `same`): the output
//! is `ceil(in / stride)` and an odd total pad puts the extra row at the end.

use crate::spec::Padding;

/// Everything a window operation needs, checked against its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeometry {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub filters: usize,
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    pub out_h: usize,
    pub out_w: usize,
}

/// Why a window cannot be laid over an input; each names the spec field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvError {
    #[error("takes samples of shape [channels, height, width]; it was given {0:?}")]
    NotAnImage(Vec<usize>),
    #[error("the input is empty ({0:?})")]
    EmptyInput(Vec<usize>),
    #[error("strides must be at least 1; found {0:?}")]
    Stride([usize; 2]),
    #[error("dilation must be at least 1; found {0:?}")]
    Dilation([usize; 2]),
    #[error("kernel sizes must be at least 1; found {0:?}")]
    KernelSize([usize; 2]),
    #[error("filters must be at least 1")]
    Filters,
    #[error(
        "groups ({groups}) must divide both the input channels ({channels}) and the filters ({filters})"
    )]
    Groups {
        groups: usize,
        channels: usize,
        filters: usize,
    },
    #[error(
        "a {kernel:?} window{} does not fit the padded input {padded:?}",
        dilated_note(.kernel, .effective)
    )]
    KernelTooLarge {
        kernel: [usize; 2],
        effective: [usize; 2],
        padded: [usize; 2],
    },
}

/// ` (dilated to [h, w])`, said only when dilation made the window larger.
fn dilated_note(kernel: &[usize; 2], effective: &[usize; 2]) -> String {
    if kernel == effective {
        String::new()
    } else {
        format!(" (dilated to {effective:?})")
    }
}

impl ConvError {
    /// The spec field the error is about, for `architecture.layers[i].<field>`.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ConvError::NotAnImage(_) | ConvError::EmptyInput(_) => None,
            ConvError::Stride(_) => Some("strides"),
            ConvError::Dilation(_) => Some("dilation"),
            ConvError::KernelSize(_) | ConvError::KernelTooLarge { .. } => Some("kernel_size"),
            ConvError::Filters => Some("filters"),
            ConvError::Groups { .. } => Some("groups"),
        }
    }
}

/// The window of one spatial axis: input length, kernel, stride, dilation.
fn resolve_same(len: usize, k: usize, s: usize, d: usize) -> (usize, usize) {
    let out = len.div_ceil(s);
    let effective = (k - 1) * d + 1;
    let total = ((out - 1) * s + effective).saturating_sub(len);
    (total / 2, total - total / 2)
}

impl Conv2dGeometry {
    /// Checks the window against `input` (`[C, H, W]`) and works out the output size.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        input: &[usize],
        filters: usize,
        kernel: [usize; 2],
        strides: [usize; 2],
        dilation: [usize; 2],
        padding: Padding,
        groups: usize,
    ) -> Result<Self, ConvError> {
        let &[channels, height, width] = input else {
            return Err(ConvError::NotAnImage(input.to_vec()));
        };
        if channels == 0 || height == 0 || width == 0 {
            return Err(ConvError::EmptyInput(input.to_vec()));
        }
        if strides.contains(&0) {
            return Err(ConvError::Stride(strides));
        }
        if dilation.contains(&0) {
            return Err(ConvError::Dilation(dilation));
        }
        if kernel.contains(&0) {
            return Err(ConvError::KernelSize(kernel));
        }
        if filters == 0 {
            return Err(ConvError::Filters);
        }
        if groups == 0 || !channels.is_multiple_of(groups) || !filters.is_multiple_of(groups) {
            return Err(ConvError::Groups {
                groups,
                channels,
                filters,
            });
        }
        let pads = match padding {
            Padding::Valid => [0; 4],
            Padding::Same => {
                let (t, b) = resolve_same(height, kernel[0], strides[0], dilation[0]);
                let (l, r) = resolve_same(width, kernel[1], strides[1], dilation[1]);
                [t, l, b, r]
            }
            Padding::Explicit(p) => p,
        };
        let effective = [
            (kernel[0] - 1) * dilation[0] + 1,
            (kernel[1] - 1) * dilation[1] + 1,
        ];
        let padded = [height + pads[0] + pads[2], width + pads[1] + pads[3]];
        if effective[0] > padded[0] || effective[1] > padded[1] {
            return Err(ConvError::KernelTooLarge {
                kernel,
                effective,
                padded,
            });
        }
        Ok(Self {
            channels,
            height,
            width,
            filters,
            kernel,
            strides,
            dilation,
            groups,
            pads,
            out_h: (padded[0] - effective[0]) / strides[0] + 1,
            out_w: (padded[1] - effective[1]) / strides[1] + 1,
        })
    }

    /// `[filters, out_h, out_w]`.
    pub fn output_dims(&self) -> [usize; 3] {
        [self.filters, self.out_h, self.out_w]
    }

    /// Output positions per channel.
    pub fn positions(&self) -> usize {
        self.out_h * self.out_w
    }

    pub fn input_size(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn output_size(&self) -> usize {
        self.filters * self.positions()
    }

    pub fn channels_per_group(&self) -> usize {
        self.channels / self.groups
    }

    pub fn filters_per_group(&self) -> usize {
        self.filters / self.groups
    }

    /// One filter's weights: `channels_per_group · kh · kw`.
    pub fn patch_len(&self) -> usize {
        self.channels_per_group() * self.kernel[0] * self.kernel[1]
    }

    /// The input row and column that kernel tap `(ky, kx)` reads for output
    /// `(oy, ox)`, or `None` where it falls in the padding.
    #[inline]
    pub fn source(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let y = (oy * self.strides[0] + ky * self.dilation[0]).checked_sub(self.pads[0])?;
        let x = (ox * self.strides[1] + kx * self.dilation[1]).checked_sub(self.pads[1])?;
        (y < self.height && x < self.width).then_some((y, x))
    }

    /// Multiply-adds of one sample's forward pass.
    pub fn macs(&self) -> u64 {
        (self.output_size() * self.patch_len()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(input: [usize; 3], k: usize, s: usize, padding: Padding) -> Conv2dGeometry {
        Conv2dGeometry::new(&input, 4, [k, k], [s, s], [1, 1], padding, 1).expect("valid")
    }

    #[test]
    fn output_sizes_follow_the_onnx_formulas() {
        // LeNet-5: 28×28 → 5×5 valid → 24×24; `same` keeps 28; stride 2 same → 14.
        assert_eq!(
            geom([1, 28, 28], 5, 1, Padding::Valid).output_dims(),
            [4, 24, 24]
        );
        let same = geom([1, 28, 28], 5, 1, Padding::Same);
        assert_eq!((same.out_h, same.out_w, same.pads), (28, 28, [2, 2, 2, 2]));
        // Even kernel, SAME_UPPER: the extra pad goes to the end.
        let even = geom([1, 7, 7], 2, 1, Padding::Same);
        assert_eq!((even.out_h, even.pads), (7, [0, 0, 1, 1]));
        let strided = geom([3, 7, 7], 3, 2, Padding::Same);
        assert_eq!((strided.out_h, strided.pads), (4, [1, 1, 1, 1]));
        let explicit = geom([1, 5, 5], 3, 1, Padding::Explicit([1, 0, 1, 0]));
        assert_eq!((explicit.out_h, explicit.out_w), (5, 3));
        let dilated = Conv2dGeometry::new(&[1, 9, 9], 1, [3, 3], [1, 1], [2, 2], Padding::Valid, 1)
            .expect("fits");
        assert_eq!(dilated.out_h, 5);
    }

    #[test]
    fn bad_windows_are_refused_with_the_field_at_fault() {
        let bad = |input: &[usize], k, s, g| {
            Conv2dGeometry::new(input, 4, [k, k], [s, s], [1, 1], Padding::Valid, g)
                .expect_err("refused")
        };
        assert_eq!(bad(&[1, 3, 3], 5, 1, 1).field(), Some("kernel_size"));
        assert_eq!(bad(&[1, 8, 8], 3, 0, 1).field(), Some("strides"));
        assert_eq!(bad(&[3, 8, 8], 3, 1, 2).field(), Some("groups"));
        assert_eq!(bad(&[9], 3, 1, 1), ConvError::NotAnImage(vec![9]));
        assert_eq!(bad(&[1, 0, 8], 3, 1, 1).field(), None);
    }
}
