//! Which kind of model file an upload is, told from its bytes: a client's file
//! name or content type is only a hint, and often `application/octet-stream`.

/// The model files `POST /v1/models` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// kiln's safetensors model file.
    Safetensors,
    /// kiln's compressed artifact.
    Kilnz,
    /// A Keras 3 `.keras` zip.
    Keras,
    /// Anything else is read as an ONNX `ModelProto` (protobuf has no magic bytes).
    Onnx,
}

impl ModelFormat {
    pub fn detect(bytes: &[u8]) -> Self {
        if super::compressed::is_compressed(bytes) {
            Self::Kilnz
        } else if bytes.starts_with(b"PK\x03\x04") {
            Self::Keras
        } else if looks_like_safetensors(bytes) {
            Self::Safetensors
        } else {
            Self::Onnx
        }
    }
}

/// An 8-byte little-endian header length that fits the file, then the JSON header's `{`.
/// A truncated kiln file still has both, and gets safetensors' own error message.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    match bytes.get(..9) {
        Some(head) => {
            let mut len = [0u8; 8];
            len.copy_from_slice(&head[..8]);
            head[8] == b'{' && u64::from_le_bytes(len) >= 2
        }
        // Too short for any format: safetensors' reader says so plainly.
        None => true,
    }
}

/// True when `bytes` start as a serialized `ModelProto` usually does: field 1
/// (`ir_version`, a varint) or, in files written field by field, another known
/// top-level field. Used only to word the error for files that are nothing kiln reads.
pub fn looks_like_protobuf(bytes: &[u8]) -> bool {
    // Tags of ModelProto fields 1 (ir_version), 2 (producer_name), 7 (graph), 8 (opset_import).
    matches!(bytes.first(), Some(0x08 | 0x12 | 0x3a | 0x42))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_model_file_is_told_by_its_first_bytes() {
        let mut st = 16u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"{\"__metadata__\":{}}");
        assert_eq!(ModelFormat::detect(&st), ModelFormat::Safetensors);
        assert_eq!(ModelFormat::detect(b"KILNZ\0\x01\0"), ModelFormat::Kilnz);
        assert_eq!(
            ModelFormat::detect(b"PK\x03\x04rest of a zip"),
            ModelFormat::Keras
        );
        // ir_version = 8, then producer_name.
        assert_eq!(
            ModelFormat::detect(b"\x08\x08\x12\x07pytorch"),
            ModelFormat::Onnx
        );
        assert!(looks_like_protobuf(b"\x08\x08"));
        assert!(!looks_like_protobuf(b"hello"));
        assert_eq!(ModelFormat::detect(b""), ModelFormat::Safetensors);
    }
}
