//! The small traits the chat service needs from the outside world.
//!
//! Each port names a role, not a technology; adapters in [`crate::adapters`] implement
//! them. A port's error says what went wrong for the caller, never which driver failed.

pub mod bus;
pub mod message_cache;
pub mod presence;
pub mod rate_limiter;
pub mod room_state;
pub mod store;

pub use bus::{Bus, BusEvent, BusListener, Order};
pub use message_cache::MessageCache;
pub use presence::{Departure, Joined, Presence, MAINTAIN_EVERY};
pub use rate_limiter::{Admission, RateLimiter, Rule, SendSlot};
pub use room_state::RoomState;
pub use store::{
    Added, Appended, BanRecord, Changed, DmPair, MemberRecord, MessageChange, NewRoom,
    SessionRecord, Standing, Store, StoreError, MAX_EMOJI_PER_MESSAGE,
};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A service behind a port (cache, presence, limiter, bus) did not answer.
#[derive(Debug, thiserror::Error)]
#[error("backing service unavailable: {0}")]
pub struct Unavailable(#[source] pub BoxError);
