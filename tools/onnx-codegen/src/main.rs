//! Writes `crates/kiln-formats/src/onnx/proto.rs` from the vendored `proto/onnx.proto`.
//!
//! Run from the repository root:
//! `cargo run --manifest-path tools/onnx-codegen/Cargo.toml`.
//! kiln's build depends only on `prost`; nothing is generated at build time.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let proto_dir = root.join("proto");
    let descriptors = protox::compile([proto_dir.join("onnx.proto")], [&proto_dir])?;
    let out = tempdir()?;
    prost_build::Config::new()
        .out_dir(&out)
        .compile_fds(descriptors)?;
    let generated = std::fs::read_to_string(out.join("onnx.rs"))?;
    let header = "// @generated from proto/onnx.proto by tools/onnx-codegen; do not edit.\n\
                  // Regenerate: cargo run --manifest-path tools/onnx-codegen/Cargo.toml\n";
    let target = root.join("crates/kiln-formats/src/onnx/proto.rs");
    std::fs::write(&target, format!("{header}{generated}"))?;
    std::fs::remove_dir_all(&out)?;
    println!("wrote {}", target.display());
    Ok(())
}

fn tempdir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("onnx-codegen-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
