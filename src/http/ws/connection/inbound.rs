//! Client frames in: one handler per [`ClientFrame`] variant, the frame budget (CONTRACT
//! §7a: every frame that is not an accepted `send` counts), and refusals.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::super::frames::{self, Keep};
use super::super::MAX_FRAME_BYTES;
use super::outbound::{error_frame, rate_limited};
use super::{End, Socket, CLOSE_TOO_BIG};
use crate::chat::{Change, ChatError, Visit};
use crate::domain::{HistoryRange, HistoryRequest, Rev};
use crate::http::strict_json;
use crate::http::AppState;
use crate::protocol::{ClientFrame, ErrorCode, ServerFrame};

impl Socket {
    pub(super) async fn receive(
        &mut self,
        state: &AppState,
        visit: &Visit,
        incoming: Option<Result<Message, WsError>>,
    ) -> Result<(), End> {
        match incoming {
            Some(Ok(Message::Text(text))) => self.handle_text(state, visit, text.as_bytes()).await,
            Some(Ok(Message::Binary(_))) => {
                let refusal = ChatError::InvalidFrame("frames are JSON text".into());
                self.refuse(&refusal, None).await
            }
            // tungstenite answers a ping with a pong by itself; it still counts.
            Some(Ok(Message::Ping(_))) => match self.budget.take() {
                Ok(()) => Ok(()),
                Err(wait) => self.send_frame(&rate_limited(wait, None)).await,
            },
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => Ok(()),
            Some(Ok(Message::Close(_))) | None => Err(End::Drop),
            Some(Err(e)) if is_too_large(&e) => {
                let refusal = ServerFrame::Error {
                    code: ErrorCode::FrameTooLarge,
                    message: format!("frames are limited to {} KiB", MAX_FRAME_BYTES / 1024),
                    client_id: None,
                    retry_after_ms: None,
                };
                self.send_frame(&refusal).await?;
                Err(End::Close(CLOSE_TOO_BIG, "frame too large"))
            }
            Some(Err(_)) => Err(End::Drop),
        }
    }

    pub(super) async fn handle_text(
        &mut self,
        state: &AppState,
        visit: &Visit,
        raw: &[u8],
    ) -> Result<(), End> {
        let value = strict_json::parse_object(raw);
        let client_id = value
            .as_ref()
            .ok()
            .and_then(|v| v.get("client_id"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let frame = value
            .map_err(|e| ChatError::InvalidFrame(e.to_string()))
            .and_then(|v| {
                serde_json::from_value::<ClientFrame>(v)
                    .map_err(|e| ChatError::InvalidFrame(e.to_string()))
            });
        match frame {
            Ok(ClientFrame::Send {
                body,
                client_id,
                reply_to,
            }) => self.on_send(state, visit, &body, client_id, reply_to).await,
            Ok(ClientFrame::Edit {
                message_id,
                body,
                client_id,
            }) => {
                let change = Change::Edit { body: &body };
                self.on_change(state, visit, message_id, change, client_id)
                    .await
            }
            Ok(ClientFrame::Delete {
                message_id,
                client_id,
            }) => {
                self.on_change(state, visit, message_id, Change::Delete, client_id)
                    .await
            }
            Ok(ClientFrame::React {
                message_id,
                emoji,
                client_id,
            }) => {
                let change = Change::React { emoji: &emoji };
                self.on_change(state, visit, message_id, change, client_id)
                    .await
            }
            Ok(ClientFrame::Unreact {
                message_id,
                emoji,
                client_id,
            }) => {
                let change = Change::Unreact { emoji: &emoji };
                self.on_change(state, visit, message_id, change, client_id)
                    .await
            }
            Ok(ClientFrame::Updates { after_rev }) => {
                self.on_updates(state, visit, after_rev).await
            }
            Ok(ClientFrame::Read { seq }) => self.on_read(state, visit, seq).await,
            Ok(ClientFrame::Typing { active }) => self.on_typing(state, visit, active).await,
            Ok(ClientFrame::Ping) => self.on_ping().await,
            Ok(ClientFrame::History {
                before,
                after,
                limit,
            }) => self.on_history(state, visit, before, after, limit).await,
            Err(e) => self.refuse(&e, client_id).await,
        }
    }

    /// `send`: the rules store it (or refuse); the answer is an `ack` or an `error`.
    async fn on_send(
        &mut self,
        state: &AppState,
        visit: &Visit,
        body: &str,
        client_id: Option<String>,
        reply_to: Option<i64>,
    ) -> Result<(), End> {
        let sent = state
            .chat
            .messages()
            .send(
                &visit.user,
                &visit.room,
                body,
                client_id.as_deref(),
                reply_to,
            )
            .await;
        match sent {
            Ok(sent) => {
                let message = sent.message;
                state
                    .chat
                    .visits()
                    .stopped_typing(visit.room.id, &visit.user)
                    .await;
                self.send_frame(&ServerFrame::Ack {
                    room: Some(message.room_slug),
                    client_id: message.client_id,
                    id: message.id,
                    seq: Some(message.seq),
                    rev: message.rev,
                })
                .await
            }
            Err(e) => self.refuse(&e, client_id).await,
        }
    }

    /// `edit`, `delete`, `react`, `unreact` (CONTRACT §10): the rules change the message
    /// (or refuse) with the user's standing in the room as it is now; the answer is an
    /// `ack` with the message's `rev` or an `error`. Everyone in the room, this
    /// connection included, hears `message_updated` when something changed.
    async fn on_change(
        &mut self,
        state: &AppState,
        visit: &Visit,
        message_id: i64,
        change: Change<'_>,
        client_id: Option<String>,
    ) -> Result<(), End> {
        let changed = async {
            let access = state
                .chat
                .rooms()
                .visible(&visit.user, &visit.room.slug)
                .await?;
            state
                .chat
                .messages()
                .change(&visit.user, &access, message_id, change)
                .await
        };
        match changed.await {
            Ok(message) => {
                self.send_frame(&ServerFrame::Ack {
                    room: None,
                    client_id,
                    id: message.id,
                    seq: None,
                    rev: message.rev,
                })
                .await
            }
            Err(e) => self.refuse(&e, client_id).await,
        }
    }

    /// `updates`: every change after a `rev`, within the frame budget and the frame bound.
    async fn on_updates(
        &mut self,
        state: &AppState,
        visit: &Visit,
        after_rev: i64,
    ) -> Result<(), End> {
        if let Err(wait) = self.budget.take() {
            return self.send_frame(&rate_limited(wait, None)).await;
        }
        let after = Rev::new(after_rev)
            .ok_or_else(|| ChatError::InvalidFrame("after_rev is 0 or more".into()));
        let answer = match after {
            Ok(after) => state.chat.messages().updates(&visit.room, after).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(updates) => {
                let json = frames::updates(
                    &updates.messages,
                    updates.truncated,
                    updates.rev,
                    self.max_history_bytes,
                );
                self.send(frames::text(&json)).await
            }
            Err(e) => self.send_frame(&error_frame(&e, None)).await,
        }
    }

    /// `read`: moves the read marker, within the frame budget (CONTRACT §11). The answer,
    /// the marker and counts after, comes to every socket of the user in the room through
    /// the hub; a `seq` out of range is an `invalid_frame` here.
    async fn on_read(&mut self, state: &AppState, visit: &Visit, seq: i64) -> Result<(), End> {
        if let Err(wait) = self.budget.take() {
            return self.send_frame(&rate_limited(wait, None)).await;
        }
        let read = state
            .chat
            .reading()
            .mark_read(&visit.user, &visit.room, seq)
            .await;
        let reply = match read {
            Ok(_) => return Ok(()),
            Err(ChatError::InvalidSeq) => error_frame(
                &ChatError::InvalidFrame(ChatError::InvalidSeq.to_string()),
                None,
            ),
            Err(e) => error_frame(&e, None),
        };
        self.send_frame(&reply).await
    }

    /// `typing`: told to the room's other connections, within the frame budget; nothing
    /// answers it.
    async fn on_typing(
        &mut self,
        state: &AppState,
        visit: &Visit,
        active: bool,
    ) -> Result<(), End> {
        if let Err(wait) = self.budget.take() {
            return self.send_frame(&rate_limited(wait, None)).await;
        }
        state.chat.visits().typing(visit, active).await;
        Ok(())
    }

    /// `ping`: a `pong`, within the frame budget.
    async fn on_ping(&mut self) -> Result<(), End> {
        let reply = match self.budget.take() {
            Ok(()) => ServerFrame::Pong,
            Err(wait) => rate_limited(wait, None),
        };
        self.send_frame(&reply).await
    }

    /// `history`: a page, within the frame budget and the history frame's bound.
    async fn on_history(
        &mut self,
        state: &AppState,
        visit: &Visit,
        before: Option<i64>,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> Result<(), End> {
        if let Err(wait) = self.budget.take() {
            return self.send_frame(&rate_limited(wait, None)).await;
        }
        let answer = match history_request(before, after, limit) {
            Ok((request, keep)) => state
                .chat
                .messages()
                .history(&visit.room, request)
                .await
                .map(|(messages, truncated)| {
                    frames::history(&messages, truncated, keep, self.max_history_bytes)
                }),
            Err(e) => Err(e),
        };
        match answer {
            Ok(history) => self.send(frames::text(&history.json)).await,
            Err(e) => self.send_frame(&error_frame(&e, None)).await,
        }
    }

    /// Answers a refused frame with its error, or `rate_limited` beyond the budget.
    pub(super) async fn refuse(
        &mut self,
        error: &ChatError,
        client_id: Option<String>,
    ) -> Result<(), End> {
        let reply = match self.budget.take() {
            Ok(()) => error_frame(error, client_id),
            Err(wait) => rate_limited(wait, client_id),
        };
        self.send_frame(&reply).await
    }
}

/// A `history` frame's request, and which end of it a bounded frame keeps: after a point
/// the oldest (the client pages on after the last), else the newest.
fn history_request(
    before: Option<i64>,
    after: Option<i64>,
    limit: Option<u32>,
) -> Result<(HistoryRequest, Keep), ChatError> {
    let request = HistoryRequest::before_or_after(before, after, limit.map(i64::from))
        .map_err(|e| ChatError::InvalidFrame(e.to_string()))?;
    let keep = match request.range() {
        HistoryRange::After(_) => Keep::Oldest,
        HistoryRange::Before(_) | HistoryRange::Latest => Keep::Newest,
    };
    Ok((request, keep))
}

/// A frame or message over the size limits.
fn is_too_large(error: &WsError) -> bool {
    matches!(error, WsError::Capacity(_))
}

/// A sliding one-second window of frames that are not accepted `send`s.
pub(super) struct FrameBudget {
    per_second: usize,
    recent: VecDeque<Instant>,
}

impl FrameBudget {
    pub(super) fn new(per_second: usize) -> FrameBudget {
        FrameBudget {
            per_second,
            recent: VecDeque::new(),
        }
    }

    pub(super) fn take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.per_second {
            let oldest = self.recent[0];
            return Err(Duration::from_secs(1).saturating_sub(now.duration_since(oldest)));
        }
        self.recent.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Seq;

    #[test]
    fn a_history_frame_keeps_the_end_it_pages_from_and_refuses_as_invalid_frame() {
        let (before, keep) = history_request(Some(5), None, None).unwrap();
        assert_eq!(before.range(), HistoryRange::Before(Seq::new(5).unwrap()));
        assert!(matches!(keep, Keep::Newest));
        let (after, keep) = history_request(None, Some(0), Some(100)).unwrap();
        assert_eq!(
            (after.range(), after.limit()),
            (HistoryRange::After(Seq::new(0).unwrap()), 100)
        );
        assert!(matches!(keep, Keep::Oldest));
        for (before, after, limit) in [
            (Some(-1), None, None),
            (None, None, None),
            (None, Some(1), Some(0)),
        ] {
            assert!(
                matches!(
                    history_request(before, after, limit),
                    Err(ChatError::InvalidFrame(_))
                ),
                "{before:?} {after:?} {limit:?}"
            );
        }
    }
}
