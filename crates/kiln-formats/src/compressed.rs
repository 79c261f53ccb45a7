//! kiln's compressed model artifact ("KILNZ"): Deep Compression's storage of a
//! pruned, weight-shared network — per dense layer a codebook, the positions of
//! the non-zero weights and one `bits`-bit code per position, entropy coded.
//!
//! File layout (all integers little-endian):
//!
//! | bytes | field                                                                      |
//! |-------|----------------------------------------------------------------------------|
//! | 6     | magic `b"KILNZ\0"`                                                         |
//! | 2     | u16 version = 1                                                            |
//! | 2     | u16 flags, reserved: 0 (a reader refuses flags it does not know)           |
//! | 4     | u32 header length `h`                                                      |
//! | h     | JSON header: `format` (`"kiln"`), `architecture`, `task`, `trained`, `parent_id`, `job_id`, `bits` (1–8), `coder` (`none`/`zstd`/`huffman`), `extra` (other metadata) |
//! | …     | per dense layer, in architecture order: u32 stored length `n`, then `n` bytes of layer payload |
//!
//! A layer payload before the coder (`none` stores it as is, `zstd` stores it
//! zstd-compressed at level 19 as one frame):
//!
//! | bytes            | field                                                              |
//! |------------------|--------------------------------------------------------------------|
//! | 4 + 4            | u32 rows, u32 cols of the weight `[in, out]`                       |
//! | 1 + 4·cols       | u8 has-bias (0/1, as the architecture says), then the bias as f32  |
//! | 2 + 4·K          | u16 codebook size `K` (≤ 2^bits), then the centroids as f32        |
//! | 1 + 1            | u8 layout (0 `dense`, 1 `bitmap`, 2 `relative`), u8 `index_bits` (2–8 for relative, else 0) |
//! | 4 + 4            | u32 `N` stored weights, u32 `E` index entries (relative only, else 0) |
//! | …                | index: `dense` nothing (`N` = rows·cols, every position); `bitmap` one bit per position (1 = stored), ⌈rows·cols/8⌉ bytes; `relative` `E` gap symbols of `index_bits` bits |
//! | ⌈N·bits/8⌉       | codes, `bits` bits each, one per stored position in ascending order |
//!
//! Positions are flat row-major indices into the weight matrix. Bit fields are
//! packed most significant bit first and zero-padded to a byte. A relative gap
//! symbol `s < M = 2^index_bits − 1` stores the weight after `s` zeros; `s = M`
//! is a filler entry that skips `M` zeros and stores nothing (Deep Compression's
//! filler zero, without spending a code on it), so any gap is representable.
//! Each layer takes the smallest of the layouts, `index_bits` chosen to minimise
//! the index size.
//!
//! With the `huffman` coder the payload is the same up to the index, except
//! that a relative index is a u32 length and a canonical Huffman stream of the
//! gap symbols ([`super::huffman`]), and the codes are a Huffman stream taking
//! the rest of the payload.
//!
//! Decoded weights are exactly `codebook[code]` at the positions and `0.0`
//! elsewhere. [`decode`] never panics: every length is checked against the
//! bytes present and the architecture's sizes before anything is allocated.

use std::collections::BTreeMap;
use std::io::Read;

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::huffman::{self, BitReader, BitWriter};
use super::model_meta::{FORMAT, FORMAT_VERSION, ModelFile, ModelMeta};
use kiln_nn::Sequential;
use kiln_nn::data::Task;
use kiln_nn::layers::UnsupportedLayer;
use kiln_nn::optimize::share::{SharedLayer, SharedWeights};
use kiln_nn::spec::{Architecture, ArchitectureLimits, LayerSpec};
use kiln_nn::validation::{FieldError, Invalid};

pub const MAGIC: &[u8; 6] = b"KILNZ\0";
pub const VERSION: u16 = 1;
const ZSTD_LEVEL: i32 = 19;
const FIELD: &str = "file";
/// `meta.extra` entry marking a model decoded from this format.
pub const STORAGE_KEY: &str = "storage";
pub const STORAGE_VALUE: &str = "kiln-compressed";

/// True when `bytes` start like a compressed artifact (not a safetensors model file).
pub fn is_compressed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// The entropy coder over each layer payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coder {
    None,
    Zstd,
    Huffman,
}

impl Coder {
    pub fn as_str(self) -> &'static str {
        match self {
            Coder::None => "none",
            Coder::Zstd => "zstd",
            Coder::Huffman => "huffman",
        }
    }

    pub fn parse(s: &str) -> Option<Coder> {
        match s {
            "none" => Some(Coder::None),
            "zstd" => Some(Coder::Zstd),
            "huffman" => Some(Coder::Huffman),
            _ => None,
        }
    }
}

/// How one layer was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerLayout {
    /// Index into `architecture.layers`.
    pub layer: usize,
    /// `"dense"`, `"bitmap"` or `"relative"`.
    pub layout: &'static str,
    /// Bits per relative gap symbol; 0 for the other layouts.
    pub index_bits: u8,
    /// Stored (non-zero) weights.
    pub nonzero: u64,
    /// Bytes the layer takes in the file (after the coder, without its length prefix).
    pub bytes: u64,
}

/// What [`encode`] chose and [`decode`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedInfo {
    pub bits: u8,
    pub coder: Coder,
    pub layers: Vec<LayerLayout>,
}

#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    #[error("could not write the header: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Unsupported(#[from] UnsupportedLayer),
    #[error("bits must be between 1 and 8; got {0}")]
    Bits(u8),
    #[error("dense layer {0} has no shared weights")]
    MissingLayer(usize),
    #[error("shared layer {0} is not a dense layer of the model")]
    UnknownLayer(usize),
    #[error("shared layer {layer}: {reason}")]
    Inconsistent { layer: usize, reason: String },
    #[error("layer {0} is too large for the format's 32-bit lengths")]
    TooLarge(usize),
    #[error("zstd failed: {0}")]
    Zstd(#[from] std::io::Error),
}

/// The sparse position layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Index {
    Dense,
    Bitmap,
    Relative { bits: u8 },
}

impl Index {
    fn name(self) -> &'static str {
        match self {
            Index::Dense => "dense",
            Index::Bitmap => "bitmap",
            Index::Relative { .. } => "relative",
        }
    }

    fn tag(self) -> (u8, u8) {
        match self {
            Index::Dense => (0, 0),
            Index::Bitmap => (1, 0),
            Index::Relative { bits } => (2, bits),
        }
    }
}

/// The JSON header.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    architecture: Architecture,
    #[serde(default)]
    task: Option<String>,
    trained: bool,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    job_id: Option<String>,
    bits: u8,
    coder: String,
    #[serde(default)]
    extra: BTreeMap<String, String>,
}

/// Writes `file` with its dense weights as `shared` (the caller guarantees the
/// model holds `shared` applied; biases, metadata and architecture come from `file`).
pub fn encode(
    file: &ModelFile,
    shared: &SharedWeights,
    coder: Coder,
) -> Result<Vec<u8>, CompressError> {
    encode_with_info(file, shared, coder).map(|(bytes, _)| bytes)
}

/// [`encode`], also saying which layout each layer got and its size.
pub fn encode_with_info(
    file: &ModelFile,
    shared: &SharedWeights,
    coder: Coder,
) -> Result<(Vec<u8>, CompressedInfo), CompressError> {
    let bits = shared.bits;
    if !(1..=8).contains(&bits) {
        return Err(CompressError::Bits(bits));
    }
    let model = &file.model;
    if let Some(s) = shared.layers.iter().find(|s| {
        model
            .layers()
            .get(s.layer)
            .and_then(|l| l.as_dense())
            .is_none()
    }) {
        return Err(CompressError::UnknownLayer(s.layer));
    }
    let meta = &file.meta;
    let mut extra = meta.extra.clone();
    extra.remove(STORAGE_KEY);
    let header = Header {
        format: FORMAT.into(),
        architecture: model.architecture().clone(),
        task: meta.task.map(|t| t.as_str().to_string()),
        trained: meta.trained,
        parent_id: meta.parent_id.clone(),
        job_id: meta.job_id.clone(),
        bits,
        coder: coder.as_str().into(),
        extra,
    };
    let json = serde_json::to_vec(&header)?;
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&u32_len(json.len(), 0)?.to_le_bytes());
    out.extend_from_slice(&json);
    let mut layers = Vec::new();
    for (i, d) in model.dense_only("the compressed format")? {
        let s = shared
            .layers
            .iter()
            .find(|s| s.layer == i)
            .ok_or(CompressError::MissingLayer(i))?;
        check_shared(s, bits, d.weight.matrix().dim())?;
        let bias: Option<Vec<f32>> = d
            .bias
            .as_ref()
            .map(|b| b.matrix().iter().copied().collect());
        if bias.iter().flatten().any(|v| !v.is_finite()) {
            return Err(CompressError::Inconsistent {
                layer: i,
                reason: "the bias holds a non-finite value".into(),
            });
        }
        let (payload, index) = layer_payload(s, bias.as_deref(), bits, coder)?;
        let stored = match coder {
            Coder::Zstd => zstd::bulk::compress(&payload, ZSTD_LEVEL)?,
            Coder::None | Coder::Huffman => payload,
        };
        out.extend_from_slice(&u32_len(stored.len(), i)?.to_le_bytes());
        out.extend_from_slice(&stored);
        layers.push(LayerLayout {
            layer: i,
            layout: index.name(),
            index_bits: index.tag().1,
            nonzero: s.positions.len() as u64,
            bytes: stored.len() as u64,
        });
    }
    Ok((
        out,
        CompressedInfo {
            bits,
            coder,
            layers,
        },
    ))
}

fn u32_len(len: usize, layer: usize) -> Result<u32, CompressError> {
    u32::try_from(len).map_err(|_| CompressError::TooLarge(layer))
}

/// Shape, ascending in-range positions, codes within a codebook of at most 2^bits finite centroids.
fn check_shared(s: &SharedLayer, bits: u8, dim: (usize, usize)) -> Result<(), CompressError> {
    let bad = |reason: String| CompressError::Inconsistent {
        layer: s.layer,
        reason,
    };
    if (s.rows, s.cols) != dim {
        return Err(bad(format!(
            "shape [{}, {}] differs from the model's {dim:?}",
            s.rows, s.cols
        )));
    }
    let total = s.rows as u64 * s.cols as u64;
    if total > u64::from(u32::MAX) {
        return Err(CompressError::TooLarge(s.layer));
    }
    if s.codebook.len() > 1 << bits {
        return Err(bad(format!(
            "{} centroids do not fit {bits}-bit codes",
            s.codebook.len()
        )));
    }
    if s.codebook.iter().any(|c| !c.is_finite()) {
        return Err(bad("the codebook holds a non-finite value".into()));
    }
    if s.codes.len() != s.positions.len() {
        return Err(bad("codes and positions differ in number".into()));
    }
    if !s.positions.windows(2).all(|w| w[0] < w[1])
        || s.positions.last().is_some_and(|&p| u64::from(p) >= total)
    {
        return Err(bad("positions are not ascending within the matrix".into()));
    }
    if s.codes.iter().any(|&c| usize::from(c) >= s.codebook.len()) {
        return Err(bad("a code is past the codebook".into()));
    }
    Ok(())
}

/// One layer's payload before the coder (Huffman streams already applied), and its layout.
fn layer_payload(
    s: &SharedLayer,
    bias: Option<&[f32]>,
    bits: u8,
    coder: Coder,
) -> Result<(Vec<u8>, Index), CompressError> {
    let total = s.rows * s.cols;
    let n = s.positions.len();
    let index = choose_index(&s.positions, total, coder);
    let gap_symbols = match index {
        Index::Relative { bits } => gaps(&s.positions, bits),
        Index::Dense | Index::Bitmap => Vec::new(),
    };
    let mut p = Vec::new();
    p.extend_from_slice(&u32_len(s.rows, s.layer)?.to_le_bytes());
    p.extend_from_slice(&u32_len(s.cols, s.layer)?.to_le_bytes());
    p.push(u8::from(bias.is_some()));
    for v in bias.unwrap_or_default() {
        p.extend_from_slice(&v.to_le_bytes());
    }
    p.extend_from_slice(&(s.codebook.len() as u16).to_le_bytes());
    for c in &s.codebook {
        p.extend_from_slice(&c.to_le_bytes());
    }
    let (tag, index_bits) = index.tag();
    p.extend_from_slice(&[tag, index_bits]);
    p.extend_from_slice(&u32_len(n, s.layer)?.to_le_bytes());
    p.extend_from_slice(&u32_len(gap_symbols.len(), s.layer)?.to_le_bytes());
    match index {
        Index::Dense => {}
        Index::Bitmap => {
            let mut w = BitWriter::new();
            let mut next = s.positions.iter().peekable();
            for pos in 0..total {
                let hit = next.next_if(|&&p| p as usize == pos).is_some();
                w.write(u32::from(hit), 1);
            }
            p.extend_from_slice(&w.finish());
        }
        Index::Relative { bits: ib } => match coder {
            Coder::Huffman => {
                let h = huffman::encode(&gap_symbols);
                p.extend_from_slice(&u32_len(h.len(), s.layer)?.to_le_bytes());
                p.extend_from_slice(&h);
            }
            Coder::None | Coder::Zstd => p.extend_from_slice(&pack(&gap_symbols, ib)),
        },
    }
    match coder {
        Coder::Huffman => p.extend_from_slice(&huffman::encode(&s.codes)),
        Coder::None | Coder::Zstd => p.extend_from_slice(&pack(&s.codes, bits)),
    }
    Ok((p, index))
}

fn pack(symbols: &[u8], bits: u8) -> Vec<u8> {
    let mut w = BitWriter::new();
    for &s in symbols {
        w.write(u32::from(s), u32::from(bits));
    }
    w.finish()
}

/// The smallest index for these positions: `dense` when every position is
/// stored, else `bitmap` or the best `relative` width, sized as the coder will
/// store them (Huffman-coded gaps for `huffman`, packed bits otherwise; zstd is
/// not tried per candidate, it runs over the packed form).
fn choose_index(positions: &[u32], total: usize, coder: Coder) -> Index {
    if positions.len() == total {
        return Index::Dense;
    }
    let mut best = (total as u64, Index::Bitmap);
    for ib in 2..=8u8 {
        let symbols = gaps(positions, ib);
        let size = match coder {
            Coder::Huffman => {
                let table = 8 * (6 + (1usize << ib).div_ceil(2)) as u64;
                huffman::coded_bits(&symbols) + table + 32
            }
            Coder::None | Coder::Zstd => symbols.len() as u64 * u64::from(ib),
        };
        if size < best.0 {
            best = (size, Index::Relative { bits: ib });
        }
    }
    best.1
}

/// Relative gap symbols for ascending positions (see the module doc).
fn gaps(positions: &[u32], index_bits: u8) -> Vec<u8> {
    let filler = (1u32 << index_bits) - 1;
    let mut out = Vec::with_capacity(positions.len());
    let mut next = 0u32;
    for &p in positions {
        let mut gap = p - next;
        while gap >= filler {
            out.push(filler as u8);
            gap -= filler;
        }
        out.push(gap as u8);
        next = p + 1;
    }
    out
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid::one(FIELD, message)
}

/// Positions from relative gap symbols; exactly `n` stored entries, all below `total`.
fn positions_from_gaps(
    symbols: &[u8],
    index_bits: u8,
    n: usize,
    total: usize,
) -> Result<Vec<u32>, String> {
    let filler = (1u64 << index_bits) - 1;
    let mut out = Vec::with_capacity(n.min(symbols.len()));
    let mut next = 0u64;
    for &s in symbols {
        let s = u64::from(s);
        if s >= filler {
            next += filler;
            continue;
        }
        let pos = next + s;
        if pos >= total as u64 || out.len() >= n {
            return Err("the relative index runs past the weight matrix".into());
        }
        out.push(pos as u32);
        next = pos + 1;
    }
    if out.len() != n {
        return Err(format!(
            "the relative index holds {} weights; the layer says {n}",
            out.len()
        ));
    }
    Ok(out)
}

/// Reads a model written by [`encode`]. Every problem is reported with field `file`.
pub fn decode(bytes: &[u8]) -> Result<(ModelFile, CompressedInfo), Invalid> {
    let mut r = Cursor::new(bytes, "the file");
    if r.take(MAGIC.len())? != MAGIC {
        return Err(invalid("not a kiln compressed model (bad magic)"));
    }
    let version = r.u16()?;
    if version != VERSION {
        return Err(invalid(format!(
            "compressed format version {version} is not supported; this kiln reads version {VERSION}"
        )));
    }
    let flags = r.u16()?;
    if flags != 0 {
        return Err(invalid(format!("unknown flags {flags:#06x}")));
    }
    let header_len = r.u32()? as usize;
    let header: Header = serde_json::from_slice(r.take(header_len)?)
        .map_err(|e| invalid(format!("the header is not valid: {e}")))?;
    if header.format != FORMAT {
        return Err(invalid(format!(
            "header format must be \"{FORMAT}\"; found {:?}",
            header.format
        )));
    }
    let architecture = header.architecture;
    architecture
        .check(&ArchitectureLimits::default())
        .map_err(|e| {
            Invalid(
                e.0.into_iter()
                    .map(|fe| {
                        FieldError::new(FIELD, format!("architecture.{}: {}", fe.field, fe.message))
                    })
                    .collect(),
            )
        })?;
    let bits = header.bits;
    if !(1..=8).contains(&bits) {
        return Err(invalid(format!(
            "bits must be between 1 and 8; found {bits}"
        )));
    }
    let coder = Coder::parse(&header.coder).ok_or_else(|| {
        invalid(format!(
            "coder must be none, zstd or huffman; found {:?}",
            header.coder
        ))
    })?;
    let task = match header.task.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(Task::parse(t).ok_or_else(|| {
            invalid(format!(
                "task must be binary, multiclass or regression; found {t:?}"
            ))
        })?),
    };

    let mut weights = Vec::new();
    let mut layouts = Vec::new();
    let mut width = architecture.input_dim;
    for (i, spec) in architecture.layers.iter().enumerate() {
        let LayerSpec::Dense {
            units, use_bias, ..
        } = *spec
        else {
            continue;
        };
        let stored_len = r.u32()? as usize;
        let stored = r.take(stored_len)?;
        let shape = LayerShape {
            rows: width,
            cols: units,
            use_bias,
            bits,
        };
        let (w, b, layout) = match coder {
            Coder::Zstd => {
                let raw = unzstd(stored, shape.max_payload())
                    .map_err(|m| invalid(format!("layers.{i}: {m}")))?;
                read_layer(&raw, shape, coder)
            }
            Coder::None | Coder::Huffman => read_layer(stored, shape, coder),
        }
        .map_err(|m| invalid(format!("layers.{i}: {m}")))?;
        layouts.push(LayerLayout {
            layer: i,
            layout: layout.0.name(),
            index_bits: layout.0.tag().1,
            nonzero: layout.1,
            bytes: stored_len as u64,
        });
        weights.push((w, b));
        width = units;
    }
    if r.remaining() > 0 {
        return Err(invalid(format!(
            "{} bytes follow the last layer",
            r.remaining()
        )));
    }
    let model = Sequential::from_weights(&architecture, weights).map_err(invalid)?;
    let mut extra = header.extra;
    extra.insert(STORAGE_KEY.into(), STORAGE_VALUE.into());
    let meta = ModelMeta {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        architecture,
        dtype: "f32".into(),
        trained: header.trained,
        task,
        parent_id: header.parent_id.filter(|v| !v.is_empty()),
        job_id: header.job_id.filter(|v| !v.is_empty()),
        extra,
        quantization: None,
    };
    Ok((
        ModelFile { model, meta },
        CompressedInfo {
            bits,
            coder,
            layers: layouts,
        },
    ))
}

/// What the architecture says one layer must look like.
#[derive(Debug, Clone, Copy)]
struct LayerShape {
    rows: usize,
    cols: usize,
    use_bias: bool,
    bits: u8,
}

impl LayerShape {
    /// The largest valid uncompressed payload: caps zstd's output.
    fn max_payload(&self) -> usize {
        let total = self.rows * self.cols;
        // Fixed fields, bias, a full codebook, an index of at most one byte per
        // position (bitmap or relative) and codes of at most one byte each.
        32 + 4 * self.cols + 4 * 256 + 2 * total
    }
}

/// Decompresses one zstd frame of at most `cap` bytes, growing the buffer
/// only as output actually arrives.
fn unzstd(data: &[u8], cap: usize) -> Result<Vec<u8>, String> {
    let mut dec = zstd::stream::read::Decoder::with_buffer(data)
        .map_err(|e| format!("zstd: {e}"))?
        .single_frame();
    // Our frames never need a window beyond the payload's size.
    let window_log = (usize::BITS - cap.leading_zeros()).clamp(10, 27);
    dec.window_log_max(window_log)
        .map_err(|e| format!("zstd: {e}"))?;
    let mut out = Vec::new();
    (&mut dec)
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("the zstd data is corrupt: {e}"))?;
    if out.len() > cap {
        return Err("the zstd data decompresses to more than the layer can hold".into());
    }
    Ok(out)
}

type DecodedLayer = (Array2<f32>, Option<Array1<f32>>, (Index, u64));

/// Parses one uncompressed layer payload into the dense weight and the bias.
fn read_layer(payload: &[u8], shape: LayerShape, coder: Coder) -> Result<DecodedLayer, String> {
    let mut r = Cursor::new(payload, "the layer");
    let rows = r.u32().map_err(msg)? as usize;
    let cols = r.u32().map_err(msg)? as usize;
    if (rows, cols) != (shape.rows, shape.cols) {
        return Err(format!(
            "shape [{rows}, {cols}]; the architecture needs [{}, {}]",
            shape.rows, shape.cols
        ));
    }
    let total = rows * cols;
    let bias = match (r.u8().map_err(msg)?, shape.use_bias) {
        (1, true) => Some(Array1::from(r.f32s(cols, "bias")?)),
        (0, false) => None,
        (1, false) => return Err("has a bias; the architecture has none".into()),
        (0, true) => return Err("has no bias; the architecture needs one".into()),
        (other, _) => return Err(format!("bias flag {other} is neither 0 nor 1")),
    };
    let k = usize::from(r.u16().map_err(msg)?);
    if k > 1 << shape.bits {
        return Err(format!("{k} centroids do not fit {}-bit codes", shape.bits));
    }
    let codebook = r.f32s(k, "codebook")?;
    let index = match (r.u8().map_err(msg)?, r.u8().map_err(msg)?) {
        (0, 0) => Index::Dense,
        (1, 0) => Index::Bitmap,
        (2, ib @ 2..=8) => Index::Relative { bits: ib },
        (layout, ib) => {
            return Err(format!(
                "layout {layout} with index_bits {ib} is not a known layout"
            ));
        }
    };
    let n = r.u32().map_err(msg)? as usize;
    let entries = r.u32().map_err(msg)? as usize;
    if n > total {
        return Err(format!("{n} stored weights in a {total}-weight matrix"));
    }
    if n > 0 && k == 0 {
        return Err("stored weights but an empty codebook".into());
    }
    let positions: Vec<u32> = match index {
        Index::Dense if n == total && entries == 0 => Vec::new(),
        Index::Dense => return Err("a dense layout must store every weight".into()),
        Index::Bitmap if entries == 0 => {
            let mut bitmap = BitReader::new(r.take(total.div_ceil(8)).map_err(msg)?);
            let mut out = Vec::with_capacity(n);
            for pos in 0..total {
                if bitmap.bit() == Some(1) {
                    if out.len() >= n {
                        return Err(format!("the bitmap marks more than {n} weights"));
                    }
                    out.push(pos as u32);
                }
            }
            if out.len() != n || !bitmap.only_zero_padding_left() {
                return Err(format!(
                    "the bitmap marks {} weights; the layer says {n}",
                    out.len()
                ));
            }
            out
        }
        Index::Bitmap => return Err("a bitmap layout has no index entries".into()),
        Index::Relative { bits: ib } => {
            // Each entry moves at least one position on.
            if entries > total || entries < n {
                return Err(format!(
                    "{entries} index entries for {n} weights in a {total}-weight matrix"
                ));
            }
            let symbols = match coder {
                Coder::Huffman => {
                    let len = r.u32().map_err(msg)? as usize;
                    let s = huffman::decode(r.take(len).map_err(msg)?, entries)
                        .map_err(|e| e.to_string())?;
                    if s.len() != entries {
                        return Err("the index stream's length differs from the layer's".into());
                    }
                    s
                }
                Coder::None | Coder::Zstd => {
                    let bytes = r
                        .take((entries * usize::from(ib)).div_ceil(8))
                        .map_err(msg)?;
                    unpack(bytes, entries, ib)?
                }
            };
            positions_from_gaps(&symbols, ib, n, total)?
        }
    };
    let codes = match coder {
        Coder::Huffman => {
            let s = huffman::decode(r.rest(), n).map_err(|e| e.to_string())?;
            if s.len() != n {
                return Err("the code stream's length differs from the layer's".into());
            }
            s
        }
        Coder::None | Coder::Zstd => {
            let bytes = r
                .take((n * usize::from(shape.bits)).div_ceil(8))
                .map_err(msg)?;
            unpack(bytes, n, shape.bits)?
        }
    };
    if r.remaining() > 0 {
        return Err(format!("{} bytes follow the codes", r.remaining()));
    }
    if codes.iter().any(|&c| usize::from(c) >= k) {
        return Err("a code is past the codebook".into());
    }
    let mut flat = vec![0.0f32; total];
    match index {
        Index::Dense => {
            for (w, &c) in flat.iter_mut().zip(&codes) {
                *w = codebook[usize::from(c)];
            }
        }
        Index::Bitmap | Index::Relative { .. } => {
            for (&p, &c) in positions.iter().zip(&codes) {
                flat[p as usize] = codebook[usize::from(c)];
            }
        }
    }
    let w = Array2::from_shape_vec((rows, cols), flat).map_err(|e| e.to_string())?;
    Ok((w, bias, (index, n as u64)))
}

fn unpack(bytes: &[u8], count: usize, bits: u8) -> Result<Vec<u8>, String> {
    let mut r = BitReader::new(bytes);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let v = r
            .read(u32::from(bits))
            .ok_or("packed values are truncated")?;
        out.push(v as u8);
    }
    Ok(out)
}

fn msg(e: Invalid) -> String {
    e.0.into_iter()
        .map(|fe| fe.message)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Bounds-checked reads over a byte slice.
struct Cursor<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { bytes, what }
    }

    fn remaining(&self) -> usize {
        self.bytes.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Invalid> {
        if n > self.bytes.len() {
            return Err(invalid(format!(
                "{} is truncated: {n} bytes needed, {} left",
                self.what,
                self.bytes.len()
            )));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    fn u8(&mut self) -> Result<u8, Invalid> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Invalid> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Invalid> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `n` finite f32 values; the bytes are checked present before allocating.
    fn f32s(&mut self, n: usize, name: &str) -> Result<Vec<f32>, String> {
        let bytes = self.take(n.saturating_mul(4)).map_err(msg)?;
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(format!("the {name} holds a non-finite value"));
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_nn::layers::Layer;
    use kiln_nn::optimize::share::{CodebookInit, share_weights};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn arch(json: &str) -> Architecture {
        serde_json::from_str(json).expect("architecture parses")
    }

    /// Zeroes weights of each dense layer so that a fraction `density[j]` stays;
    /// `skip` leaves that many leading positions of the last layer empty (one long gap).
    fn sparsify(file: &mut ModelFile, density: &[f64], skip: usize, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dense: Vec<usize> = file.model.dense_layers().map(|(i, _)| i).collect();
        for (j, &i) in dense.iter().enumerate() {
            let keep = density[j];
            let last = j + 1 == dense.len();
            if let Some(Layer::Dense(d)) = file.model.layers_mut().get_mut(i) {
                for (pos, v) in d.weight.matrix_mut().iter_mut().enumerate() {
                    if (last && pos < skip) || rng.random::<f64>() >= keep {
                        *v = 0.0;
                    }
                }
                if let Some(b) = &mut d.bias {
                    b.matrix_mut()
                        .map_inplace(|v| *v = rng.random_range(-0.5f32..0.5));
                }
            }
        }
    }

    /// A model holding its shared weights, and them.
    fn shared_file(
        json: &str,
        density: &[f64],
        skip: usize,
        bits: u8,
    ) -> (ModelFile, SharedWeights) {
        let mut file = ModelFile::untrained(&arch(json), 3);
        file.meta.trained = true;
        file.meta.task = Some(Task::Multiclass);
        file.meta.parent_id = Some("0196a2c4-0000-7000-8000-000000000001".into());
        file.meta.extra.insert("note".into(), "kept".into());
        sparsify(&mut file, density, skip, 9);
        let shared = share_weights(&file.model, bits, CodebookInit::Linear).expect("dense");
        shared.apply(&mut file.model);
        (file, shared)
    }

    const THREE_LAYERS: &str = r#"{"input_dim": 40, "layers": [
        {"type": "dense", "units": 30, "activation": "relu"},
        {"type": "dropout", "rate": 0.2},
        {"type": "dense", "units": 50, "activation": "relu", "use_bias": false},
        {"type": "dense", "units": 60, "activation": "softmax"}]}"#;

    fn bits_of(m: &Sequential) -> Vec<Vec<u32>> {
        m.params()
            .iter()
            .map(|p| p.matrix().iter().map(|v| v.to_bits()).collect())
            .collect()
    }

    #[test]
    fn every_coder_round_trips_dense_bitmap_and_relative_layers_exactly() {
        // Densities 100 %, 50 %, 5 %; the last layer starts with 1000 empty positions.
        let (file, shared) = shared_file(THREE_LAYERS, &[1.0, 0.5, 0.05], 1000, 4);
        for coder in [Coder::None, Coder::Zstd, Coder::Huffman] {
            let (bytes, written) = encode_with_info(&file, &shared, coder).expect("encodes");
            assert!(is_compressed(&bytes));
            let (back, info) = decode(&bytes).expect("decodes");
            assert_eq!(info, written, "{coder:?}");
            assert_eq!(info.bits, 4);
            assert_eq!(info.coder, coder);
            assert_eq!(bits_of(&back.model), bits_of(&file.model), "{coder:?}");
            for s in &shared.layers {
                let d = back.model.layers()[s.layer].as_dense().expect("dense");
                assert_eq!(d.weight.matrix(), s.weights().expect("consistent"));
            }
            let mut meta = file.meta.clone();
            meta.extra
                .insert("storage".into(), "kiln-compressed".into());
            assert_eq!(back.meta, meta);
            assert_eq!(back.meta.dtype, "f32");
            let layers: Vec<usize> = info.layers.iter().map(|l| l.layer).collect();
            assert_eq!(layers, vec![0, 2, 3]);
            assert_eq!(info.layers[0].layout, "dense");
            assert_eq!(info.layers[0].nonzero, 40 * 30);
            let sparse = &info.layers[2];
            assert_eq!(sparse.layout, "relative", "{coder:?}");
            // The 1000-zero gap is longer than any index_bits can say: fillers carried it.
            assert!((1usize << sparse.index_bits) < 1000);
            if coder == Coder::None {
                assert_eq!(info.layers[1].layout, "bitmap");
                assert_eq!(info.layers[1].index_bits, 0);
            }
        }
    }

    #[test]
    fn layouts_are_chosen_by_size() {
        assert_eq!(choose_index(&[0, 1, 2, 3], 4, Coder::None), Index::Dense);
        // Every other position: bitmap 8 bits vs ≥ 4 entries of 2 bits … tie goes to the bitmap.
        assert_eq!(choose_index(&[0, 2, 4, 6], 8, Coder::None), Index::Bitmap);
        // One weight at the end of 1000: bitmap 1000 bits; relative 8 bits: ⌈999/255⌉ + 1 = 5 entries, 40 bits;
        // 7 bits: 999/127 → 8 entries = 56; 6 bits: 16 + 1 = 17 entries, 102 bits.
        assert_eq!(
            choose_index(&[999], 1000, Coder::None),
            Index::Relative { bits: 8 }
        );
        assert_eq!(gaps(&[999], 8), vec![255, 255, 255, 234]);
    }

    #[test]
    fn gaps_longer_than_the_index_width_use_filler_entries() {
        // index_bits 2: symbols 0..=2 are gaps, 3 skips three zeros.
        let positions = [0, 1, 20, 21, 29];
        let symbols = gaps(&positions, 2);
        assert_eq!(symbols, vec![0, 0, 3, 3, 3, 3, 3, 3, 0, 0, 3, 3, 1]);
        assert_eq!(
            positions_from_gaps(&symbols, 2, 5, 30).expect("parses"),
            positions
        );
        assert!(
            positions_from_gaps(&symbols, 2, 5, 29).is_err(),
            "past the matrix"
        );
        assert!(
            positions_from_gaps(&symbols, 2, 4, 30).is_err(),
            "too many weights"
        );
        assert!(
            positions_from_gaps(&symbols[..12], 2, 5, 30).is_err(),
            "too few"
        );
        // The same in a file: a 2-weight layer of 400 whose second weight is 300 positions on.
        let json = r#"{"input_dim": 20, "layers": [{"type": "dense", "units": 20}]}"#;
        let mut file = ModelFile::untrained(&arch(json), 1);
        if let Some(Layer::Dense(d)) = file.model.layers_mut().get_mut(0) {
            d.weight.matrix_mut().fill(0.0);
            d.weight.matrix_mut()[(0, 5)] = 0.25;
            d.weight.matrix_mut()[(15, 10)] = -0.5;
        }
        let shared = share_weights(&file.model, 3, CodebookInit::Density).expect("dense");
        let bytes = encode(&file, &shared, Coder::None).expect("encodes");
        let (back, info) = decode(&bytes).expect("decodes");
        assert_eq!(info.layers[0].layout, "relative");
        assert!(295 > 1 << info.layers[0].index_bits);
        assert_eq!(back.model.layers(), file.model.layers());
    }

    #[test]
    fn inconsistent_shared_weights_are_refused() {
        let (file, shared) = shared_file(THREE_LAYERS, &[1.0, 0.5, 0.05], 0, 2);
        let mut missing = shared.clone();
        missing.layers.remove(1);
        assert!(matches!(
            encode(&file, &missing, Coder::None),
            Err(CompressError::MissingLayer(2))
        ));
        let mut unsorted = shared.clone();
        unsorted.layers[1].positions.swap(0, 1);
        assert!(matches!(
            encode(&file, &unsorted, Coder::None),
            Err(CompressError::Inconsistent { layer: 2, .. })
        ));
        let mut wide = shared.clone();
        wide.layers[0].codebook = vec![0.0; 5];
        assert!(
            encode(&file, &wide, Coder::Huffman).is_err(),
            "5 centroids in 2 bits"
        );
        let mut bits = shared;
        bits.bits = 9;
        assert!(matches!(
            encode(&file, &bits, Coder::Zstd),
            Err(CompressError::Bits(9))
        ));
    }

    fn fields_are_file(e: &Invalid) -> bool {
        e.0.iter().all(|fe| fe.field == "file")
    }

    fn small_files() -> Vec<Vec<u8>> {
        let json = r#"{"input_dim": 12, "layers": [
            {"type": "dense", "units": 10, "activation": "relu"},
            {"type": "dense", "units": 30, "activation": "relu"},
            {"type": "dense", "units": 3, "activation": "softmax"}]}"#;
        let (file, shared) = shared_file(json, &[1.0, 0.5, 0.05], 0, 3);
        [Coder::None, Coder::Zstd, Coder::Huffman]
            .into_iter()
            .map(|c| encode(&file, &shared, c).expect("encodes"))
            .collect()
    }

    #[test]
    fn truncated_or_corrupt_files_are_rejected_naming_the_file() {
        for bytes in small_files() {
            for cut in 0..bytes.len() {
                let err = decode(&bytes[..cut]).expect_err("truncated");
                assert!(fields_are_file(&err), "{err}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode(&longer).is_err());
        }
        let mut bad = small_files().remove(0);
        bad[7] = 9;
        assert!(
            decode(&bad)
                .expect_err("version")
                .to_string()
                .contains("version")
        );
        assert!(decode(b"KILNZ\0").is_err());
        assert!(!is_compressed(b"\x08\0\0\0\0\0\0\0{}"));
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_after_the_magic_never_panics(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&tail);
            let err = decode(&bytes).expect_err("random bytes are not a compressed model");
            proptest::prop_assert!(fields_are_file(&err));
        }

        #[test]
        fn decoding_a_file_with_any_byte_changed_never_panics(which in 0usize..3, pos in 0usize..8192, byte in proptest::prelude::any::<u8>()) {
            let mut bytes = small_files().swap_remove(which);
            let i = pos % bytes.len();
            bytes[i] = byte;
            if let Err(e) = decode(&bytes) {
                proptest::prop_assert!(fields_are_file(&e));
            }
        }

        #[test]
        fn decoding_a_file_with_a_bit_flipped_never_panics(which in 0usize..3, pos in 0usize..65536) {
            let mut bytes = small_files().swap_remove(which);
            let bit = pos % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            if let Err(e) = decode(&bytes) {
                proptest::prop_assert!(fields_are_file(&e));
            }
        }
    }

    /// LeNet-300-100 at ~8 % density, 5 bits: the sizes the report quotes
    /// (`cargo test --lib lenet_300_100 -- --nocapture`). Random weights.
    #[test]
    fn lenet_300_100_at_8_percent_compresses_far_below_f32() {
        let json = r#"{"input_dim": 784, "layers": [
            {"type": "dense", "units": 300, "activation": "relu"},
            {"type": "dense", "units": 100, "activation": "relu"},
            {"type": "dense", "units": 10, "activation": "softmax"}]}"#;
        let (file, shared) = shared_file(json, &[0.08, 0.08, 0.08], 0, 5);
        // Dense f32 storage of every parameter (the model file may itself store pruned layers sparsely).
        let f32_bytes = file.model.param_count() as usize * 4;
        let model_file_bytes = super::super::model_file::encode(&file)
            .expect("encodes")
            .len();
        eprintln!("lenet_sizes model file: {model_file_bytes} bytes");
        let mut sizes = Vec::new();
        for coder in [Coder::None, Coder::Zstd, Coder::Huffman] {
            let (bytes, info) = encode_with_info(&file, &shared, coder).expect("encodes");
            let (back, _) = decode(&bytes).expect("decodes");
            assert_eq!(bits_of(&back.model), bits_of(&file.model));
            eprintln!(
                "lenet_sizes {}: {} bytes ({:.1}x smaller than {f32_bytes} f32 bytes) {:?}",
                coder.as_str(),
                bytes.len(),
                f32_bytes as f64 / bytes.len() as f64,
                info.layers
            );
            sizes.push(bytes.len());
        }
        // Raw: ~21k weights × (5-bit code + a few index bits) + biases ≈ 20 kB, vs 1 MB of f32.
        assert!(sizes[0] * 30 < f32_bytes, "{sizes:?}");
        assert!(sizes[2] < sizes[0], "Huffman beats raw packing: {sizes:?}");
    }
}
