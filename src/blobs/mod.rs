//! blobs (in progress)
