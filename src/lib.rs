//! kiln: a model-optimization service.
//!
//! The module tree follows the request path (DESIGN §1):
//! [`api`] → [`services`] → [`store`] (SQL) and [`blobs`] (files);
//! [`queue`] claims jobs and runs [`jobs`] on a blocking worker pool;
//! every job computes with [`nn`], the tensor core, which knows nothing of
//! HTTP, SQL or files. [`formats`] turns bytes into datasets and models and back.
//!
//! The tensor core (`kiln-nn`), the file formats (`kiln-formats`) and the job
//! kinds (`kiln-jobs`) are crates of their own, so that the layering is the
//! compiler's: none depends on tokio, sqlx or axum, the core knows no file
//! format, and a job knows no database. They are re-exported
//! here under the module names the rest of kiln has always used.

pub mod api;
pub mod blobs;
pub mod config;
pub mod measure;
pub mod queue;
pub mod services;
pub mod startup;
pub mod store;
pub mod telemetry;

pub use kiln_formats as formats;
pub use kiln_jobs as jobs;
pub use kiln_nn as nn;
pub use kiln_nn::{datagen, validation};
