//! A room's message number.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A room's message number: 1, 2, 3, … with no gap, in store order; 0 stands for "before
/// the first message" (a `since` or `after` of 0 asks for everything). Never negative: a
/// value of this type has passed [`Seq::new`], so no reader re-checks the sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Seq(i64);

impl Seq {
    /// Before the first message (a room without messages has this as its last `seq`).
    pub const ZERO: Seq = Seq(0);
    /// The highest `seq` there can be: an open upper bound for range reads.
    pub const MAX: Seq = Seq(i64::MAX);

    /// `None` for a negative number: no message has one.
    pub const fn new(raw: i64) -> Option<Seq> {
        if raw >= 0 {
            Some(Seq(raw))
        } else {
            None
        }
    }

    /// The `seq` of a room's `n`th message: a store numbers them by counting.
    pub fn nth(n: usize) -> Seq {
        Seq(i64::try_from(n).unwrap_or(i64::MAX))
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    /// The `seq` before this one (0 has none before it: 0).
    pub const fn previous(self) -> Seq {
        if self.0 > 0 {
            Seq(self.0 - 1)
        } else {
            Seq(0)
        }
    }

    /// The `seq` after this one: the next message's.
    pub const fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }
}

impl std::fmt::Display for Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Seq {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for Seq {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Seq, D::Error> {
        let raw = i64::deserialize(deserializer)?;
        Seq::new(raw).ok_or_else(|| serde::de::Error::custom("a seq is 0 or more"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seq_is_never_negative() {
        assert_eq!(Seq::new(-1), None);
        assert_eq!(Seq::new(0), Some(Seq::ZERO));
        assert_eq!(Seq::new(7).map(Seq::get), Some(7));
        assert!(serde_json::from_str::<Seq>("-3").is_err());
        assert_eq!(serde_json::from_str::<Seq>("42").unwrap().get(), 42);
        assert_eq!(serde_json::to_string(&Seq::new(42).unwrap()).unwrap(), "42");
    }

    #[test]
    fn the_next_seq_never_overflows() {
        assert_eq!(Seq::ZERO.next().get(), 1);
        assert_eq!(Seq::MAX.next(), Seq::MAX);
        assert_eq!(Seq::ZERO.next().previous(), Seq::ZERO);
        assert_eq!(Seq::ZERO.previous(), Seq::ZERO);
    }
}
