//! Folding linear layers.
