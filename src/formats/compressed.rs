//! The compressed model artifact: codebooks, sparse positions and entropy-coded codes.
