//! A trainable tensor of any rank with its gradient and an optional pruning mask.
//!
//! Every trainable scalar of a model lives in a [`Param`]; optimizers walk a
//! flat list of them. The storage is shaped (`[in, out]` for a dense kernel,
//! `[filters, channels, kh, kw]` for a convolution), always in standard
//! (row-major) layout, so every parameter also has a free **matrix view**:
//! rows are the first axis, columns the rest. Kernels that multiply matrices
//! (dense, im2col convolution), optimizers and the element-wise optimizations
//! (prune, share, quantize) use that view and need not know the rank.
//!
//! The `mask` is the seam for pruning: when present it is multiplied into the
//! value after every optimizer step, so pruned weights stay exactly zero while
//! the training loop stays unchanged.

use ndarray::{Array, ArrayD, ArrayView2, ArrayViewMut2, ArrayViewMutD, Dimension, IxDyn, Zip};

/// `value`, `grad` and `mask` share one shape; biases are stored as `[1, units]`.
/// The fields are private so that invariant (and the standard layout behind the
/// matrix view) cannot be broken from outside.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    value: ArrayD<f32>,
    grad: ArrayD<f32>,
    /// 1.0 keeps a weight, 0.0 prunes it.
    mask: Option<ArrayD<f32>>,
}

/// The matrix a shape is viewed as: `(shape[0], product of the rest)`; a scalar
/// or a vector is one row.
fn matrix_dims(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (1, *n),
        [rows, rest @ ..] => (*rows, rest.iter().product()),
    }
}

/// Owned, standard-layout, dynamic-rank copy of `a` (no copy when it already is).
fn standard<D: Dimension>(a: Array<f32, D>) -> ArrayD<f32> {
    let a = a.into_dyn();
    if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    }
}

/// The matrix view of a standard-layout array (never fails: the layout is the
/// type's invariant, and the view has exactly the array's length).
fn as_matrix(a: &ArrayD<f32>) -> ArrayView2<'_, f32> {
    let (rows, cols) = matrix_dims(a.shape());
    let data = a
        .as_slice()
        .expect("a Param's arrays are kept in standard layout");
    ArrayView2::from_shape((rows, cols), data).expect("matrix dims multiply to the length")
}

fn as_matrix_mut(a: &mut ArrayD<f32>) -> ArrayViewMut2<'_, f32> {
    let (rows, cols) = matrix_dims(a.shape());
    let data = a
        .as_slice_mut()
        .expect("a Param's arrays are kept in standard layout");
    ArrayViewMut2::from_shape((rows, cols), data).expect("matrix dims multiply to the length")
}

/// `a` in the shape `shape`: reshaped when it has the same length in another
/// shape (a mask built on the matrix view), kept when it already matches.
fn reshaped(a: ArrayD<f32>, shape: &[usize]) -> ArrayD<f32> {
    if a.shape() == shape {
        return a;
    }
    assert_eq!(
        a.len(),
        shape.iter().product::<usize>(),
        "a mask must have as many entries as its parameter"
    );
    a.into_shape_with_order(IxDyn(shape))
        .expect("standard layout, same length")
}

impl Param {
    /// A parameter holding `value` (any rank), with a zero gradient and no mask.
    pub fn new<D: Dimension>(value: Array<f32, D>) -> Self {
        let value = standard(value);
        let grad = ArrayD::zeros(value.raw_dim());
        Self {
            value,
            grad,
            mask: None,
        }
    }

    /// A copy of the value alone, for a network that is only ever run: the
    /// gradient is empty (no memory) and there is no mask. Never train it.
    pub fn for_inference(&self) -> Self {
        Self {
            value: self.value.clone(),
            grad: ArrayD::zeros(IxDyn(&[0])),
            mask: None,
        }
    }

    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    pub fn len(&self) -> usize {
        self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The value in its own shape.
    pub fn value(&self) -> &ArrayD<f32> {
        &self.value
    }

    /// The value in its own shape, writable; its shape cannot change through it.
    pub fn value_mut(&mut self) -> ArrayViewMutD<'_, f32> {
        self.value.view_mut()
    }

    /// The value as a `[shape[0], rest]` matrix (free: same memory).
    pub fn matrix(&self) -> ArrayView2<'_, f32> {
        as_matrix(&self.value)
    }

    /// The value's matrix view, writable; its shape cannot change through it.
    pub fn matrix_mut(&mut self) -> ArrayViewMut2<'_, f32> {
        as_matrix_mut(&mut self.value)
    }

    /// Replaces the value (a layer whose shape changed: surgery, merging, low rank).
    /// The gradient is zeroed at the new shape, and a mask of another shape is dropped.
    pub fn set_value<D: Dimension>(&mut self, value: Array<f32, D>) {
        let value = standard(value);
        if value.shape() != self.value.shape() {
            self.grad = ArrayD::zeros(value.raw_dim());
            self.clear_mask();
        }
        self.value = value;
    }

    pub fn grad(&self) -> &ArrayD<f32> {
        &self.grad
    }

    pub fn grad_matrix(&self) -> ArrayView2<'_, f32> {
        as_matrix(&self.grad)
    }

    /// Where a layer's backward pass writes `∂L/∂value` (overwriting).
    pub fn grad_matrix_mut(&mut self) -> ArrayViewMut2<'_, f32> {
        as_matrix_mut(&mut self.grad)
    }

    /// The value to update and the gradient to update it with, at once (an optimizer step).
    pub fn step_views(&mut self) -> (ArrayViewMut2<'_, f32>, ArrayView2<'_, f32>) {
        (as_matrix_mut(&mut self.value), as_matrix(&self.grad))
    }

    /// The gradient to write into and the value it is taken at (regularization).
    pub fn grad_views(&mut self) -> (ArrayViewMut2<'_, f32>, ArrayView2<'_, f32>) {
        (as_matrix_mut(&mut self.grad), as_matrix(&self.value))
    }

    pub fn mask(&self) -> Option<&ArrayD<f32>> {
        self.mask.as_ref()
    }

    pub fn mask_matrix(&self) -> Option<ArrayView2<'_, f32>> {
        self.mask.as_ref().map(as_matrix)
    }

    /// Sets the pruning mask (1 keeps, 0 prunes), given in the value's shape or
    /// its matrix view. Panics when it has another number of entries.
    pub fn set_mask<D: Dimension>(&mut self, mask: Array<f32, D>) {
        self.mask = Some(reshaped(standard(mask), self.value.shape()));
    }

    pub fn clear_mask(&mut self) {
        self.mask = None;
    }

    /// Zeroes the pruned entries of `value` (no-op without a mask).
    pub fn apply_mask(&mut self) {
        if let Some(mask) = &self.mask {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array4, array};

    #[test]
    fn a_rank_four_kernel_is_viewed_as_filters_by_the_rest() {
        let k = Array4::from_shape_fn((2, 3, 2, 2), |(f, c, i, j)| {
            (f * 12 + c * 4 + i * 2 + j) as f32
        });
        let p = Param::new(k);
        assert_eq!(p.shape(), &[2, 3, 2, 2]);
        let m = p.matrix();
        assert_eq!(m.dim(), (2, 12));
        assert_eq!(m[[1, 5]], 17.0);
        assert_eq!(p.grad_matrix().dim(), (2, 12));
    }

    #[test]
    fn a_transposed_value_is_stored_in_standard_layout() {
        let a = array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]];
        let q = Param::new(a.clone().reversed_axes());
        assert!(q.value().is_standard_layout());
        assert_eq!(q.matrix(), a.t());
    }

    #[test]
    fn a_matrix_mask_fits_a_shaped_kernel_and_zeroes_what_it_prunes() {
        let mut p = Param::new(ArrayD::from_elem(IxDyn(&[2, 1, 1, 2]), 3.0f32));
        p.set_mask(array![[1.0f32, 0.0], [0.0, 1.0]]);
        assert_eq!(p.mask().map(|m| m.shape().to_vec()), Some(vec![2, 1, 1, 2]));
        p.apply_mask();
        assert_eq!(p.matrix(), array![[3.0f32, 0.0], [0.0, 3.0]]);
        assert_eq!(p.nonzero(), 2);
    }

    #[test]
    fn a_new_value_of_another_shape_resets_grad_and_mask() {
        let mut p = Param::new(array![[1.0f32, 2.0]]);
        p.set_mask(array![[1.0f32, 0.0]]);
        p.grad_matrix_mut().fill(5.0);
        p.set_value(array![[1.0f32], [2.0], [3.0]]);
        assert_eq!(p.grad_matrix(), array![[0.0f32], [0.0], [0.0]]);
        assert!(p.mask().is_none());
        let mut q = Param::new(array![[1.0f32, 2.0]]);
        q.set_mask(array![[1.0f32, 0.0]]);
        q.set_value(array![[7.0f32, 8.0]]);
        assert!(q.mask().is_some(), "same shape keeps the mask");
    }

    #[test]
    #[should_panic(expected = "as many entries")]
    fn a_mask_of_another_size_is_refused() {
        let mut p = Param::new(array![[1.0f32, 2.0]]);
        p.set_mask(array![[1.0f32, 0.0, 1.0]]);
    }
}
