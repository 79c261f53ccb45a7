//! Dead units.
