//! End-to-end tests against a real server on an ephemeral port with a temp data
//! directory. One binary for all of them keeps link times down.

mod bad_input;
mod blob_gc;
mod cnn;
mod distill;
mod download;
mod helpers;
mod interop;
mod jobs;
mod optimize;
mod quantize;
mod restart;
mod workflow;
