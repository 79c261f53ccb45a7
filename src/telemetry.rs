//! Logging (in progress)
