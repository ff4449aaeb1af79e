//! A page of history as a client asks for it (CONTRACT §3, §4): the one place that knows
//! the default page, its bounds, and that a `seq` asked for is 0 or more. The REST route,
//! the WebSocket's `history` frame and `?since=` all parse through here.

use super::Seq;

/// Messages in a page when the client does not say.
pub const HISTORY_PAGE_DEFAULT: u32 = 50;
/// Most messages one page holds.
pub const HISTORY_PAGE_MAX: u32 = 100;

/// Which part of a room's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryRange {
    /// The newest messages.
    Latest,
    /// The newest messages with `seq` below this one.
    Before(Seq),
    /// The oldest messages with `seq` above this one.
    After(Seq),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("before, after and since are seqs: whole numbers, 0 or more")]
    NegativeSeq,
    #[error("history needs exactly one of before or after")]
    NotOneBound,
    #[error("limit must be 1 to 100")]
    Limit,
}

/// A checked page request: a range and a limit within 1–[`HISTORY_PAGE_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRequest {
    range: HistoryRange,
    limit: u32,
}

impl HistoryRequest {
    /// `GET /api/rooms/{slug}/messages?before=&limit=`: no `before` is the latest page.
    pub fn latest_or_before(
        before: Option<i64>,
        limit: Option<i64>,
    ) -> Result<HistoryRequest, HistoryError> {
        let range = match before {
            None => HistoryRange::Latest,
            Some(before) => HistoryRange::Before(seq(before)?),
        };
        Ok(HistoryRequest {
            range,
            limit: page_limit(limit)?,
        })
    }

    /// The WebSocket's `history` frame: exactly one of `before` and `after`.
    pub fn before_or_after(
        before: Option<i64>,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> Result<HistoryRequest, HistoryError> {
        let range = match (before, after) {
            (Some(before), None) => HistoryRange::Before(seq(before)?),
            (None, Some(after)) => HistoryRange::After(seq(after)?),
            _ => return Err(HistoryError::NotOneBound),
        };
        Ok(HistoryRequest {
            range,
            limit: page_limit(limit)?,
        })
    }

    pub fn range(&self) -> HistoryRange {
        self.range
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }
}

/// A `seq` a client names (`before`, `after`, `?since=`): 0 or more.
pub fn seq(raw: i64) -> Result<Seq, HistoryError> {
    Seq::new(raw).ok_or(HistoryError::NegativeSeq)
}

fn page_limit(limit: Option<i64>) -> Result<u32, HistoryError> {
    match limit {
        None => Ok(HISTORY_PAGE_DEFAULT),
        Some(limit) => u32::try_from(limit)
            .ok()
            .filter(|limit| (1..=HISTORY_PAGE_MAX).contains(limit))
            .ok_or(HistoryError::Limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rest_page_is_the_latest_or_before_a_seq() {
        let latest = HistoryRequest::latest_or_before(None, None).unwrap();
        assert_eq!((latest.range(), latest.limit()), (HistoryRange::Latest, 50));
        let before = HistoryRequest::latest_or_before(Some(0), Some(100)).unwrap();
        assert_eq!(
            (before.range(), before.limit()),
            (HistoryRange::Before(Seq::new(0).unwrap()), 100)
        );
        for (before, limit, error) in [
            (Some(-1), None, HistoryError::NegativeSeq),
            (None, Some(0), HistoryError::Limit),
            (None, Some(101), HistoryError::Limit),
            (None, Some(-5), HistoryError::Limit),
            (None, Some(i64::MAX), HistoryError::Limit),
        ] {
            assert_eq!(
                HistoryRequest::latest_or_before(before, limit),
                Err(error),
                "{before:?} {limit:?}"
            );
        }
    }

    #[test]
    fn a_frame_names_exactly_one_non_negative_bound() {
        let before = HistoryRequest::before_or_after(Some(5), None, None).unwrap();
        assert_eq!(
            (before.range(), before.limit()),
            (HistoryRange::Before(Seq::new(5).unwrap()), 50)
        );
        let after = HistoryRequest::before_or_after(None, Some(0), Some(100)).unwrap();
        assert_eq!(
            (after.range(), after.limit()),
            (HistoryRange::After(Seq::new(0).unwrap()), 100)
        );
        for (before, after, limit, error) in [
            (Some(-1), None, None, HistoryError::NegativeSeq),
            (None, Some(-3), None, HistoryError::NegativeSeq),
            (Some(1), Some(2), None, HistoryError::NotOneBound),
            (None, None, None, HistoryError::NotOneBound),
            (None, Some(1), Some(0), HistoryError::Limit),
            (None, Some(1), Some(101), HistoryError::Limit),
        ] {
            assert_eq!(
                HistoryRequest::before_or_after(before, after, limit),
                Err(error),
                "{before:?} {after:?} {limit:?}"
            );
        }
    }
}
