//! The typed refusal of an operation that does not know a layer kind.
//!
//! Algorithms written for dense layers (pruning, quantization, weight sharing,
//! compaction, the file formats) raise this instead of passing over a layer with
//! parameters, so a new layer kind is refused loudly until they learn it.

use super::LayerKind;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("layer {index} is a {kind} layer, which {operation} does not support")]
pub struct UnsupportedLayer {
    pub index: usize,
    pub kind: LayerKind,
    pub operation: &'static str,
}
