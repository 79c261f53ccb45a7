//! Sparse inference: CSR kernels for pruned layers, chosen per layer by measurement.
