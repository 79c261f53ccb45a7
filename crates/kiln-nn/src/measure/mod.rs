//! What a model scores and how fast it runs: task metrics, evaluation on data,
//! and the timing probe behind every latency and throughput figure.

pub mod evaluation;
pub mod metrics;
pub mod timing;
