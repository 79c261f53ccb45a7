//! Pruning: magnitude masks, structured unit removal and sparsity schedules.
