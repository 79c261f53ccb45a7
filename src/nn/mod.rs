//! The tensor core: layers, losses, optimizers and metrics over `ndarray`.
//! It imports nothing of tokio, sqlx or axum.

pub mod data;
pub mod spec;
