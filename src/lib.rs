//! kiln: a model-optimization service.
//!
//! The module tree follows the request path (DESIGN §1):
//! [`api`] → [`services`] → [`store`] (SQL) and [`blobs`] (files);
//! [`queue`] claims jobs and runs [`jobs`] on a blocking worker pool;
//! every job computes with [`nn`], the tensor core, which knows nothing of
//! HTTP, SQL or files. [`formats`] turns bytes into datasets and models and back.

pub mod api;
pub mod blobs;
pub mod config;
pub mod datagen;
pub mod formats;
pub mod jobs;
pub mod measure;
pub mod nn;
pub mod queue;
pub mod services;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod validation;
