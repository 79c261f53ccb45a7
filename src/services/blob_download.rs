//! Downloads of stored blobs (artifacts, stored model files): which bytes a
//! request's `Range` and `If-Range` values select, streamed from the blob
//! backend. The API turns the answer into 200, 206 or 416; it never sees where
//! the bytes live.
//!
//! One range is served as asked. A request for several ranges gets the whole
//! blob (a 200 is a valid answer to any range request, and no client of ours
//! needs multipart/byteranges). An unreadable `Range` is ignored, as RFC 9110
//! allows; one that parses but selects nothing is unsatisfiable (416).

use http_range_header::{EndPosition, RangeUnsatisfiableError, StartPosition};

use super::{ServiceError, Services};
use crate::blobs::{BlobBackend, BlobError, BlobRead, ByteRange};

/// A download request's `Range` and `If-Range` values, as sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct RangeRequest<'a> {
    pub range: Option<&'a str>,
    pub if_range: Option<&'a str>,
}

/// What to send for a blob.
#[derive(Debug)]
pub enum BlobDownload {
    /// The whole blob.
    Full(BlobRead),
    /// The one range asked for (`start`, `len` and `size` are in the read).
    Partial(BlobRead),
    /// The range selects nothing of the blob's `size` bytes.
    Unsatisfiable { size: u64 },
}

impl Services {
    /// Streams the blob `sha256`, or the range `request` selects. A blob a
    /// record names but storage lacks is our fault (500), not the client's.
    pub async fn blob_download(
        &self,
        sha256: &str,
        request: RangeRequest<'_>,
    ) -> Result<BlobDownload, ServiceError> {
        let range = requested_range(sha256, request);
        match self.blobs.get(sha256, range).await {
            Ok(read) if range.is_some() => Ok(BlobDownload::Partial(read)),
            Ok(read) => Ok(BlobDownload::Full(read)),
            Err(BlobError::RangeNotSatisfiable { size }) => {
                Ok(BlobDownload::Unsatisfiable { size })
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The one range to honour, or `None` to send the whole blob: no `Range`, an
/// `If-Range` other than this blob's strong ETag (the blobs have no
/// `Last-Modified`, so a date never matches), several ranges, or a `Range`
/// that cannot be read.
pub fn requested_range(sha256: &str, request: RangeRequest<'_>) -> Option<ByteRange> {
    let range = request.range?;
    if let Some(tag) = request.if_range
        && tag.trim() != format!("\"{sha256}\"")
    {
        return None;
    }
    match http_range_header::parse_range_header(range.trim()) {
        Ok(parsed) => match parsed.ranges.as_slice() {
            [one] => match (one.start, one.end) {
                (StartPosition::Index(first), EndPosition::Index(last)) if last >= first => {
                    Some(ByteRange::From {
                        first,
                        last: Some(last),
                    })
                }
                (StartPosition::Index(first), EndPosition::LastByte) => {
                    Some(ByteRange::From { first, last: None })
                }
                (StartPosition::FromLast(n), EndPosition::LastByte) => Some(ByteRange::Suffix(n)),
                // `last < first` is an invalid range-spec: ignored, like any unreadable one.
                _ => None,
            },
            _ => None,
        },
        // `bytes=-0` is well-formed but asks for nothing.
        Err(RangeUnsatisfiableError::ZeroSuffix) => Some(ByteRange::Suffix(0)),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{ByteRange, RangeRequest, requested_range};

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn range(range: &str) -> Option<ByteRange> {
        requested_range(
            SHA,
            RangeRequest {
                range: Some(range),
                if_range: None,
            },
        )
    }

    #[test]
    fn single_ranges_are_honoured() {
        let from = |first, last| Some(ByteRange::From { first, last });
        assert_eq!(range("bytes=0-7"), from(0, Some(7)));
        assert_eq!(range("bytes=100-"), from(100, None));
        assert_eq!(range("bytes=-20"), Some(ByteRange::Suffix(20)));
        assert_eq!(range("bytes=-0"), Some(ByteRange::Suffix(0)));
        assert_eq!(range("bytes=500-900"), from(500, Some(900)));
    }

    #[test]
    fn several_or_unreadable_ranges_mean_the_whole_blob() {
        for r in [
            "bytes=0-1,4-5",
            "bytes=7-2",
            "items=0-5",
            "bytes=abc",
            "bytes=",
            "0-5",
        ] {
            assert_eq!(range(r), None, "{r}");
        }
        assert_eq!(requested_range(SHA, RangeRequest::default()), None);
    }

    #[test]
    fn if_range_honours_the_range_only_for_this_blobs_etag() {
        fn with(if_range: &str) -> Option<ByteRange> {
            requested_range(
                SHA,
                RangeRequest {
                    range: Some("bytes=0-7"),
                    if_range: Some(if_range),
                },
            )
        }
        assert!(with(&format!("\"{SHA}\"")).is_some());
        assert_eq!(with("\"something-else\""), None);
        assert_eq!(with(&format!("W/\"{SHA}\"")), None);
        assert_eq!(with("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
