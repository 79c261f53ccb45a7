//! Training: losses, optimizers, learning-rate schedules, L1/L2 penalties, seeded
//! batching, and the fit loop that ties them together.

pub mod batch;
pub mod loss;
pub mod optim;
pub mod regularization;
pub mod schedule;
pub mod trainer;
