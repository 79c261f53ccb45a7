//! ONNX in and out: [`import`] turns the graphs dense networks export to into a
//! kiln model; [`export`] writes any kiln model (fp32, pruned, compressed, int8 as
//! QDQ) as an ONNX graph that ONNX Runtime runs, checked by [`check`] first.
//!
//! The protobuf messages are generated once from the vendored `proto/onnx.proto`
//! ([`proto`], see `tools/onnx-codegen`); nothing here encodes protobuf by hand.

pub mod check;
pub mod export;
pub mod import;
#[cfg(test)]
mod interpret;
#[allow(clippy::all, clippy::pedantic, rustdoc::all, missing_docs)]
pub mod proto;

pub use export::export;
pub use import::import;

/// Oldest and newest default-domain opsets the importer accepts; the newest is the
/// one the vendored `onnx.proto` (onnx 1.23) knows.
pub const MIN_OPSET: i64 = 11;
pub const MAX_OPSET: i64 = 28;
/// Oldest IR version the importer accepts.
pub const MIN_IR_VERSION: i64 = 7;
