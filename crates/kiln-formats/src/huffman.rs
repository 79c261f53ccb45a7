//! Canonical Huffman coding of byte streams, and the bit packing it rests on.
//!
//! Code lengths are limited to [`MAX_LEN`] = 15 bits so a length fits a nibble.
//! An encoded stream is self-describing:
//!
//! | bytes          | field                                                        |
//! |----------------|--------------------------------------------------------------|
//! | 4              | symbol count `n`, u32 LE                                     |
//! | 2              | alphabet size `a` (0..=256), u16 LE: symbols are `0..a`      |
//! | ⌈a/2⌉          | code length of each symbol, 4 bits, high nibble first (0 = unused) |
//! | rest           | the `n` codes, MSB first, zero-padded to a byte              |
//!
//! Codes are canonical (DEFLATE's rule: shorter codes first, then by symbol), so
//! the lengths alone define them. A single-symbol stream gives its symbol a
//! 1-bit code; an empty stream has `a = 0` and no code bits.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Longest code length.
pub const MAX_LEN: u8 = 15;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HuffmanError {
    #[error("the Huffman stream is truncated")]
    Truncated,
    #[error("the Huffman stream's alphabet size {0} is over 256")]
    Alphabet(usize),
    #[error("the Huffman code lengths do not form a prefix code")]
    Lengths,
    #[error("the Huffman stream claims {0} symbols, more than its bits can hold or allowed")]
    Count(u64),
    #[error("the Huffman stream holds a code no symbol has")]
    BadCode,
    #[error("the Huffman stream has {0} bytes after its last code")]
    Trailing(usize),
}

/// Appends values of up to 32 bits, most significant bit first.
#[derive(Debug, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    filled: u32,
}

impl BitWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the low `bits` bits of `value` (`bits` ≤ 32).
    pub fn write(&mut self, value: u32, bits: u32) {
        debug_assert!(bits <= 32);
        if bits == 0 {
            return;
        }
        let mask = if bits == 32 {
            u32::MAX
        } else {
            (1 << bits) - 1
        };
        self.acc = (self.acc << bits) | u64::from(value & mask);
        self.filled += bits;
        while self.filled >= 8 {
            self.filled -= 8;
            self.bytes.push((self.acc >> self.filled) as u8);
        }
    }

    /// The bytes, the last one zero-padded.
    pub fn finish(mut self) -> Vec<u8> {
        if self.filled > 0 {
            self.bytes.push((self.acc << (8 - self.filled)) as u8);
        }
        self.bytes
    }
}

/// Reads what a [`BitWriter`] wrote.
#[derive(Debug)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Bits not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() * 8 - self.pos
    }

    /// The next `bits` bits (`bits` ≤ 32) as a number; `None` past the end.
    pub fn read(&mut self, bits: u32) -> Option<u32> {
        if bits as usize > self.remaining() || bits > 32 {
            return None;
        }
        let mut v = 0u64;
        for _ in 0..bits {
            v = (v << 1) | u64::from(self.bit_unchecked());
        }
        Some(v as u32)
    }

    fn bit_unchecked(&mut self) -> u8 {
        let b = (self.bytes[self.pos / 8] >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        b
    }

    pub fn bit(&mut self) -> Option<u8> {
        (self.pos < self.bytes.len() * 8).then(|| self.bit_unchecked())
    }

    /// True when the bits left (the padding of the last byte) are all zero.
    pub fn only_zero_padding_left(&self) -> bool {
        self.remaining() < 8
            && (self.pos..self.bytes.len() * 8).all(|p| (self.bytes[p / 8] >> (7 - p % 8)) & 1 == 0)
    }
}

/// Huffman code lengths for the given symbol frequencies, none over [`MAX_LEN`].
///
/// When the optimal code is deeper than 15 bits the frequencies are halved
/// (keeping every used symbol at ≥ 1) and the tree rebuilt: not the optimal
/// length-limited code (package-merge), but within a fraction of a percent of
/// it on real streams, and simple. It terminates: with all frequencies 1, 256
/// symbols need only 8 bits.
pub fn code_lengths(freqs: &[u64]) -> Vec<u8> {
    let mut f: Vec<u64> = freqs.to_vec();
    loop {
        let lengths = unlimited_lengths(&f);
        if lengths.iter().all(|&l| l <= MAX_LEN) {
            return lengths;
        }
        for v in f.iter_mut().filter(|v| **v > 0) {
            *v = (*v / 2).max(1);
        }
    }
}

/// Depth of each leaf of a Huffman tree (ties broken by node id: deterministic).
fn unlimited_lengths(freqs: &[u64]) -> Vec<u8> {
    let mut lengths = vec![0u8; freqs.len()];
    let used: Vec<usize> = (0..freqs.len()).filter(|&s| freqs[s] > 0).collect();
    match used.len() {
        0 => return lengths,
        1 => {
            lengths[used[0]] = 1;
            return lengths;
        }
        _ => {}
    }
    // Nodes 0..n are the leaves (used symbols); internal nodes follow.
    let mut parent: Vec<usize> = vec![usize::MAX; used.len()];
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = used
        .iter()
        .enumerate()
        .map(|(node, &s)| Reverse((freqs[s], node)))
        .collect();
    while let (Some(Reverse((fa, a))), Some(Reverse((fb, b)))) = (heap.pop(), heap.pop()) {
        let node = parent.len();
        parent.push(usize::MAX);
        parent[a] = node;
        parent[b] = node;
        heap.push(Reverse((fa.saturating_add(fb), node)));
    }
    // Parents have higher ids than their children: fill depths from the root down.
    let mut depth = vec![0u32; parent.len()];
    for node in (0..parent.len()).rev() {
        if parent[node] != usize::MAX {
            depth[node] = depth[parent[node]] + 1;
        }
    }
    for (leaf, &s) in used.iter().enumerate() {
        lengths[s] = depth[leaf].min(255) as u8;
    }
    lengths
}

/// Canonical codes for the lengths: `(code, length)` per symbol.
fn canonical_codes(lengths: &[u8]) -> Vec<(u32, u8)> {
    let mut count = [0u32; MAX_LEN as usize + 1];
    for &l in lengths.iter().filter(|&&l| l > 0) {
        count[l as usize] += 1;
    }
    let mut next = [0u32; MAX_LEN as usize + 2];
    let mut code = 0u32;
    for len in 1..=MAX_LEN as usize {
        code = (code + count[len - 1]) << 1;
        next[len] = code;
    }
    lengths
        .iter()
        .map(|&l| {
            if l == 0 {
                (0, 0)
            } else {
                let c = next[l as usize];
                next[l as usize] += 1;
                (c, l)
            }
        })
        .collect()
}

/// Size in bits of the code part of [`encode`]'s output (without the table), for choosing layouts.
pub fn coded_bits(symbols: &[u8]) -> u64 {
    let freqs = frequencies(symbols);
    let lengths = code_lengths(&freqs);
    freqs
        .iter()
        .zip(&lengths)
        .map(|(&f, &l)| f * u64::from(l))
        .sum()
}

fn frequencies(symbols: &[u8]) -> [u64; 256] {
    let mut freqs = [0u64; 256];
    for &s in symbols {
        freqs[s as usize] += 1;
    }
    freqs
}

/// Encodes `symbols` as a self-describing stream (see the module doc).
/// Streams over `u32::MAX` symbols are not supported (the count is a u32).
pub fn encode(symbols: &[u8]) -> Vec<u8> {
    let freqs = frequencies(symbols);
    let lengths = code_lengths(&freqs);
    let alphabet = lengths.iter().rposition(|&l| l > 0).map_or(0, |s| s + 1);
    let codes = canonical_codes(&lengths);
    let mut out = Vec::with_capacity(6 + alphabet.div_ceil(2) + symbols.len() / 2);
    out.extend_from_slice(&(symbols.len() as u32).to_le_bytes());
    out.extend_from_slice(&(alphabet as u16).to_le_bytes());
    for pair in lengths[..alphabet].chunks(2) {
        out.push((pair[0] << 4) | pair.get(1).copied().unwrap_or(0));
    }
    let mut w = BitWriter::new();
    for &s in symbols {
        let (code, len) = codes[s as usize];
        w.write(code, u32::from(len));
    }
    out.extend_from_slice(&w.finish());
    out
}

/// Decodes a whole [`encode`]d stream of at most `max_count` symbols; every
/// byte must be used (trailing bytes and non-zero padding are errors).
pub fn decode(bytes: &[u8], max_count: usize) -> Result<Vec<u8>, HuffmanError> {
    let count = bytes
        .get(0..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(HuffmanError::Truncated)? as usize;
    let alphabet = bytes
        .get(4..6)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or(HuffmanError::Truncated)? as usize;
    if alphabet > 256 {
        return Err(HuffmanError::Alphabet(alphabet));
    }
    let table_end = 6 + alphabet.div_ceil(2);
    let table = bytes.get(6..table_end).ok_or(HuffmanError::Truncated)?;
    let lengths: Vec<u8> = (0..alphabet)
        .map(|s| {
            let b = table[s / 2];
            if s % 2 == 0 { b >> 4 } else { b & 0x0f }
        })
        .collect();
    let data = &bytes[table_end..];
    // Every symbol takes at least one bit: this caps the allocation by the input.
    if count > max_count || count > data.len().saturating_mul(8) {
        return Err(HuffmanError::Count(count as u64));
    }
    if count == 0 {
        return if data.is_empty() {
            Ok(Vec::new())
        } else {
            Err(HuffmanError::Trailing(data.len()))
        };
    }
    let decoder = Decoder::new(&lengths)?;
    let mut r = BitReader::new(data);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(decoder.symbol(&mut r)?);
    }
    if !r.only_zero_padding_left() {
        return Err(HuffmanError::Trailing(r.remaining() / 8));
    }
    Ok(out)
}

/// Canonical decoding one bit at a time (as zlib's `puff`): per length, how
/// many codes there are and the symbols in canonical order.
struct Decoder {
    count: [u16; MAX_LEN as usize + 1],
    /// Longest code in use: a prefix that matched nothing by then is no code.
    max_len: usize,
    symbols: Vec<u8>,
}

impl Decoder {
    fn new(lengths: &[u8]) -> Result<Self, HuffmanError> {
        let mut count = [0u16; MAX_LEN as usize + 1];
        for &l in lengths.iter().filter(|&&l| l > 0) {
            count[l as usize] += 1;
        }
        // Kraft: over-subscribed lengths are no prefix code. Incomplete ones
        // are allowed (a lone symbol has a 1-bit code); unused codes are caught when read.
        let mut left: i64 = 1;
        for &c in &count[1..] {
            left = left * 2 - i64::from(c);
            if left < 0 {
                return Err(HuffmanError::Lengths);
            }
        }
        let used = count[1..].iter().map(|&c| usize::from(c)).sum::<usize>();
        if used == 0 {
            return Err(HuffmanError::Lengths);
        }
        let mut symbols: Vec<(u8, u8)> = lengths
            .iter()
            .enumerate()
            .filter(|&(_, &l)| l > 0)
            .map(|(s, &l)| (l, s as u8))
            .collect();
        symbols.sort_unstable();
        let max_len = symbols.last().map_or(0, |&(l, _)| usize::from(l));
        Ok(Self {
            count,
            max_len,
            symbols: symbols.into_iter().map(|(_, s)| s).collect(),
        })
    }

    fn symbol(&self, r: &mut BitReader<'_>) -> Result<u8, HuffmanError> {
        let (mut code, mut first, mut index) = (0i64, 0i64, 0i64);
        for len in 1..=self.max_len {
            code |= i64::from(r.bit().ok_or(HuffmanError::Truncated)?);
            let count = i64::from(self.count[len]);
            if code - first < count {
                return self
                    .symbols
                    .get((index + code - first) as usize)
                    .copied()
                    .ok_or(HuffmanError::BadCode);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err(HuffmanError::BadCode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(symbols: &[u8]) -> Vec<u8> {
        let bytes = encode(symbols);
        let back = decode(&bytes, symbols.len()).expect("decodes");
        assert_eq!(back, symbols);
        bytes
    }

    #[test]
    fn bits_are_written_and_read_msb_first() {
        let mut w = BitWriter::new();
        w.write(0b101, 3);
        w.write(0xABCD, 16);
        w.write(1, 1);
        w.write(0, 0);
        let bytes = w.finish();
        assert_eq!(bytes, vec![0b1011_0101, 0b0111_1001, 0b1011_0000]);
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.read(3), Some(0b101));
        assert_eq!(r.read(16), Some(0xABCD));
        assert_eq!(r.read(1), Some(1));
        assert!(r.only_zero_padding_left());
        assert_eq!(r.read(5), None);
    }

    #[test]
    fn a_skewed_stream_gets_the_hand_computed_code() {
        // Frequencies 4, 2, 1, 1 → lengths 1, 2, 3, 3 → codes 0, 10, 110, 111.
        let symbols = [0, 0, 1, 0, 2, 1, 3, 0];
        assert_eq!(code_lengths(&[4, 2, 1, 1]), vec![1, 2, 3, 3]);
        assert_eq!(coded_bits(&symbols), 4 + 4 + 3 + 3);
        let bytes = round_trip(&symbols);
        // count 8, alphabet 4, lengths 1,2 | 3,3, then 0 0 10 0 110 10 111 0 = 14 bits.
        assert_eq!(
            bytes,
            vec![8, 0, 0, 0, 4, 0, 0x12, 0x33, 0b0010_0110, 0b1011_1000]
        );
    }

    #[test]
    fn single_symbol_and_empty_streams_round_trip() {
        let bytes = round_trip(&[7; 20]);
        // One 1-bit code: 20 zero bits in 3 bytes after a 6-byte head and 4 table bytes.
        assert_eq!(bytes.len(), 6 + 4 + 3);
        assert_eq!(round_trip(&[]), vec![0, 0, 0, 0, 0, 0]);
        round_trip(&[255]);
    }

    #[test]
    fn lengths_stay_within_15_bits_on_fibonacci_frequencies() {
        // Fibonacci frequencies make the optimal tree as deep as there are symbols.
        let mut freqs = vec![1u64, 1];
        while freqs.len() < 30 {
            let n = freqs.len();
            freqs.push(freqs[n - 1] + freqs[n - 2]);
        }
        assert!(unlimited_lengths(&freqs).iter().any(|&l| l > MAX_LEN));
        let lengths = code_lengths(&freqs);
        assert!(lengths.iter().all(|&l| (1..=MAX_LEN).contains(&l)));
        let kraft: f64 = lengths.iter().map(|&l| 0.5f64.powi(i32::from(l))).sum();
        assert!(kraft <= 1.0);
        let symbols: Vec<u8> = freqs
            .iter()
            .enumerate()
            .flat_map(|(s, &f)| std::iter::repeat_n(s as u8, f.min(3000) as usize))
            .collect();
        round_trip(&symbols);
    }

    #[test]
    fn all_byte_values_round_trip() {
        let symbols: Vec<u8> = (0..5000u32)
            .map(|i| ((i * i) % 251 + i % 5) as u8)
            .collect();
        round_trip(&symbols);
    }

    #[test]
    fn malformed_streams_are_errors() {
        let good = encode(&[1, 2, 3, 1, 1]);
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], 100).is_err(), "cut at {cut}");
        }
        assert_eq!(decode(&good, 4), Err(HuffmanError::Count(5)));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing, 100), Err(HuffmanError::Trailing(1)));
        // Three 1-bit codes over-subscribe the code space.
        assert_eq!(
            decode(&[1, 0, 0, 0, 3, 0, 0x11, 0x10, 0], 10),
            Err(HuffmanError::Lengths)
        );
        // A lone 1-bit code: the bit 1 is no symbol's code.
        assert_eq!(
            decode(&[1, 0, 0, 0, 1, 0, 0x10, 0x80], 10),
            Err(HuffmanError::BadCode)
        );
        // A huge count with few bytes is refused before allocating.
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff, 0xff, 1, 0, 0x10, 0], usize::MAX),
            Err(HuffmanError::Count(_))
        ));
        assert_eq!(
            decode(&[0, 0, 0, 0, 0x01, 0x02], 10),
            Err(HuffmanError::Alphabet(513))
        );
    }
}
