//! A byte range as a reader asks for it, before the blob's size is known.
//!
//! The backend resolves it against the size it reads together with the bytes,
//! so a range can never disagree with the content it is cut from.

/// One contiguous range of bytes (the forms of an HTTP `Range` spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// From byte `first` to byte `last` inclusive (clamped to the end), or to
    /// the end when `last` is `None`.
    From { first: u64, last: Option<u64> },
    /// The last `n` bytes; the whole blob when it is shorter.
    Suffix(u64),
}

impl ByteRange {
    /// The first `n` bytes (`n` ≥ 1).
    pub fn first(n: u64) -> ByteRange {
        ByteRange::From {
            first: 0,
            last: Some(n.saturating_sub(1)),
        }
    }

    /// `(start, len)` of what this range selects in a blob of `size` bytes;
    /// `None` when it selects nothing (it starts past the end, ends before it
    /// starts, is an empty suffix, or the blob is empty).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        let last_byte = size.checked_sub(1)?;
        match self {
            ByteRange::From { first, last } => {
                if first > last_byte || last.is_some_and(|l| l < first) {
                    return None;
                }
                let end = last.map_or(last_byte, |l| l.min(last_byte));
                Some((first, end - first + 1))
            }
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => {
                let start = size.saturating_sub(n);
                Some((start, size - start))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ByteRange;

    fn from(first: u64, last: Option<u64>) -> ByteRange {
        ByteRange::From { first, last }
    }

    #[test]
    fn ranges_resolve_against_the_size() {
        assert_eq!(from(0, Some(7)).resolve(100), Some((0, 8)));
        assert_eq!(from(10, Some(19)).resolve(100), Some((10, 10)));
        assert_eq!(from(90, None).resolve(100), Some((90, 10)));
        assert_eq!(from(90, Some(1000)).resolve(100), Some((90, 10)));
        assert_eq!(from(99, Some(99)).resolve(100), Some((99, 1)));
        assert_eq!(ByteRange::Suffix(10).resolve(100), Some((90, 10)));
        assert_eq!(ByteRange::Suffix(500).resolve(100), Some((0, 100)));
        assert_eq!(ByteRange::first(8).resolve(3), Some((0, 3)));
    }

    #[test]
    fn ranges_that_select_nothing_resolve_to_none() {
        assert_eq!(from(100, None).resolve(100), None);
        assert_eq!(from(150, Some(200)).resolve(100), None);
        assert_eq!(from(5, Some(2)).resolve(100), None);
        assert_eq!(ByteRange::Suffix(0).resolve(100), None);
        assert_eq!(from(0, None).resolve(0), None);
        assert_eq!(ByteRange::Suffix(5).resolve(0), None);
    }
}
