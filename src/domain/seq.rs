//! A room's gapless counters: the message number and the revision.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A room's gapless counter: `Seq` numbers its messages, `Rev` its changes. Both are
/// never negative: a value has passed `new`, so no reader re-checks the sign.
macro_rules! room_counter {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(i64);

        impl $name {
            /// Before the first one (a room without any has this as its last).
            pub const ZERO: $name = $name(0);
            /// The highest there can be: an open upper bound for range reads.
            pub const MAX: $name = $name(i64::MAX);

            /// `None` for a negative number.
            pub const fn new(raw: i64) -> Option<$name> {
                if raw >= 0 {
                    Some($name(raw))
                } else {
                    None
                }
            }

            /// The room's `n`th: a store numbers them by counting.
            pub fn nth(n: usize) -> $name {
                $name(i64::try_from(n).unwrap_or(i64::MAX))
            }

            pub const fn get(self) -> i64 {
                self.0
            }

            /// The one before this one (0 has none before it: 0).
            pub const fn previous(self) -> $name {
                if self.0 > 0 {
                    $name(self.0 - 1)
                } else {
                    $name(0)
                }
            }

            /// The one after this one.
            pub const fn next(self) -> $name {
                $name(self.0.saturating_add(1))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_i64(self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let raw = i64::deserialize(deserializer)?;
                $name::new(raw).ok_or_else(|| serde::de::Error::custom(concat!("a ", $what, " is 0 or more")))
            }
        }
    };
}

room_counter!(
    /// A room's message number: 1, 2, 3, … with no gap, in store order; 0 stands for
    /// "before the first message" (a `since` or `after` of 0 asks for everything).
    Seq,
    "seq"
);

room_counter!(
    /// A room's revision (CONTRACT §10): rises by exactly 1 with every change to the
    /// room's messages (a new message, an edit, a delete, a reaction added or removed),
    /// in the change's own transaction; 0 before the first.
    Rev,
    "rev"
);

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
    fn a_rev_is_never_negative_either() {
        assert_eq!(Rev::new(-1), None);
        assert!(serde_json::from_str::<Rev>("-1").is_err());
        assert_eq!(Rev::ZERO.next().get(), 1);
    }

    #[test]
    fn the_next_seq_never_overflows() {
        assert_eq!(Seq::ZERO.next().get(), 1);
        assert_eq!(Seq::MAX.next(), Seq::MAX);
        assert_eq!(Seq::ZERO.next().previous(), Seq::ZERO);
        assert_eq!(Seq::ZERO.previous(), Seq::ZERO);
    }
}
