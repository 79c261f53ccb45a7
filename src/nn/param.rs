//! A trainable tensor with its gradient and an optional pruning mask.
//!
//! Every trainable scalar of a model lives in a [`Param`]; optimizers walk a
//! flat list of them. The `mask` is the seam for pruning: when present it is
//! multiplied into the value after every optimizer step, so pruned weights
//! stay exactly zero while the training loop stays unchanged.

use ndarray::{Array2, Zip};

/// `value` and `grad` have the same shape; biases are stored as `[1, units]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub value: Array2<f32>,
    pub grad: Array2<f32>,
    /// 1.0 keeps a weight, 0.0 prunes it. Same shape as `value`.
    pub mask: Option<Array2<f32>>,
}

impl Param {
    pub fn new(value: Array2<f32>) -> Self {
        let grad = Array2::zeros(value.raw_dim());
        Self {
            value,
            grad,
            mask: None,
        }
    }

    pub fn len(&self) -> usize {
        self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Zeroes the pruned entries of `value` (no-op without a mask).
    pub fn apply_mask(&mut self) {
        if let Some(mask) = &self.mask
            && mask.raw_dim() == self.value.raw_dim()
        {
            Zip::from(&mut self.value)
                .and(mask)
                .for_each(|v, &m| *v *= m);
        }
    }

    /// Number of entries that are not exactly zero.
    pub fn nonzero(&self) -> u64 {
        self.value.iter().filter(|v| **v != 0.0).count() as u64
    }
}
