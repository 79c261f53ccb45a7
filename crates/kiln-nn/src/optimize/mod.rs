//! The optimization algorithms: what makes a trained model smaller or faster while
//! keeping it good — pruning, quantization, weight sharing, compaction,
//! distillation, batch-norm folding and the surgery they share.

pub mod compact;
pub mod distill;
pub mod fold;
pub mod prune;
pub mod quant;
pub mod share;
pub mod surgery;
