//! Per-sample tensor shapes, so a layer can say what it takes and what it gives.
//!
//! A batch of samples of shape `s` is held as `[batch, s.size()]` rows (row-major),
//! which is exactly the memory of a `[batch, s...]` tensor: dense layers use the
//! 2-D view directly and a layer over `[C, H, W]` samples reshapes it for free.

use std::fmt;

use crate::layers::LayerKind;

/// The shape of one sample: `[features]` for dense layers, `[C, H, W]` for images.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape(Vec<usize>);

impl Shape {
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Self(dims.into())
    }

    /// A flat vector of `n` features.
    pub fn features(n: usize) -> Self {
        Self(vec![n])
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Scalars per sample (the product of the dimensions).
    pub fn size(&self) -> usize {
        self.0.iter().product()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A layer given input it cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("a {kind} layer takes samples of shape {expected}; it was given {found}")]
    Mismatch {
        kind: LayerKind,
        expected: Shape,
        found: Shape,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_counts_its_scalars_and_prints_as_a_list() {
        let s = Shape::new([3, 4, 5]);
        assert_eq!(s.size(), 60);
        assert_eq!(s.to_string(), "[3, 4, 5]");
        assert_eq!(Shape::features(7).dims(), &[7]);
    }
}
