//! A page request: `limit` and `cursor`. Ids are UUID v7, so "older than the
//! cursor" is "id below it", and every list is newest first.

use uuid::Uuid;

use crate::validation::{Checker, Invalid};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// A checked page request: ids are UUID v7, so "older than the cursor" is "id below it".
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<Uuid>,
}

impl PageRequest {
    /// Parses the raw query values, naming `limit` or `cursor` when they are wrong.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, Invalid> {
        let mut c = Checker::new();
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    c.push(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    );
                    DEFAULT_LIMIT
                }
            },
        };
        let cursor = match cursor.filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => match Uuid::parse_str(raw) {
                Ok(id) => Some(id),
                Err(_) => {
                    c.push("cursor", "must be the next_cursor of a previous page");
                    None
                }
            },
        };
        c.finish(PageRequest { limit, cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_out_of_range_and_a_bad_cursor_name_their_fields() {
        let err = PageRequest::parse(Some("0"), Some("nope")).expect_err("rejected");
        let fields: Vec<_> = err.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "cursor"]);
        assert!(PageRequest::parse(Some("201"), None).is_err());
        assert_eq!(
            PageRequest::parse(None, None).expect("defaults").limit,
            DEFAULT_LIMIT
        );
    }
}
