//! The page envelope every list answers with, and how timestamps are rendered.
//! The `limit`/`cursor` request itself is a service concept: [`crate::services::page`].

use serde::Serialize;
use uuid::Uuid;

pub use crate::services::page::{DEFAULT_LIMIT, MAX_LIMIT, PageRequest};

/// `?limit=&cursor=` of a plain list, kept as text so a bad value is named, not rejected by axum.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListQuery {
    pub fn page(&self) -> Result<PageRequest, crate::validation::Invalid> {
        PageRequest::parse(self.limit.as_deref(), self.cursor.as_deref())
    }
}

/// `{"items": [...], "next_cursor": "…" | null}`, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next (older) page; null on the last page.
    pub next_cursor: Option<Uuid>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched newest first; the extra row only says
    /// whether another page exists.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        limit: u32,
        id: impl Fn(&R) -> Uuid,
        view: impl Fn(R) -> T,
    ) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more { rows.last().map(&id) } else { None };
        Page {
            items: rows.into_iter().map(view).collect(),
            next_cursor,
        }
    }
}

/// RFC 3339 rendering of the store's unix-millisecond timestamps.
pub fn timestamp(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_with_an_extra_row_points_at_its_last_item() {
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        let page = Page::from_rows(ids.clone(), 3, |id| *id, |id| id);
        assert_eq!(page.items.len(), 3);
        assert_eq!(page.next_cursor, Some(ids[2]));
        let last = Page::from_rows(ids[..2].to_vec(), 3, |id| *id, |id| id);
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn timestamps_render_as_rfc3339_utc() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_500), "1970-01-01T00:00:01.5Z");
    }
}
