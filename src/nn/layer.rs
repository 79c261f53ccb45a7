//! The layers a [`super::model::Sequential`] is made of.

use super::dense::Dense;
use super::dropout::Dropout;

/// A network holds a handful of layers, so the size gap between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    Dense(Dense),
    Dropout(Dropout),
}

impl Layer {
    pub fn as_dense(&self) -> Option<&Dense> {
        match self {
            Layer::Dense(d) => Some(d),
            Layer::Dropout(_) => None,
        }
    }

    pub fn as_dense_mut(&mut self) -> Option<&mut Dense> {
        match self {
            Layer::Dense(d) => Some(d),
            Layer::Dropout(_) => None,
        }
    }
}
