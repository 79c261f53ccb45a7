//! Merging duplicate units.
