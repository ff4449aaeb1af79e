//! Validated values: each `parse` is the one place its rule lives.

use sha2::{Digest, Sha256};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Why a value was refused, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("username must be 3 to 32 characters of letters, digits, '_', '.' or '-'")]
    Username,
    #[error("password must be 8 to 128 characters")]
    Password,
    #[error("room name must be 1 to 64 characters, without control characters")]
    RoomName,
    #[error("room name has no visible characters")]
    RoomNameInvisible,
    #[error("room name contains a text-direction control character")]
    RoomNameBidi,
    #[error("message is empty")]
    EmptyBody,
    #[error("message is longer than 4000 characters")]
    BodyTooLong,
    #[error("message contains a NUL character")]
    BodyHasNul,
    #[error("message contains a control character (only tab and line breaks are allowed)")]
    BodyHasControl,
    #[error("client_id must be 1 to 64 characters, without control characters")]
    ClientId,
    #[error("a reaction is one emoji")]
    Emoji,
}

/// 3–32 characters of `A–Z a–z 0–9 _ . -`; unique case-insensitively (see [`Username::key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Username, ValueError> {
        let ok_len = (3..=32).contains(&raw.len());
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok_len && ok_chars {
            Ok(Username(raw.to_owned()))
        } else {
            Err(ValueError::Username)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two usernames are compared in.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// 8–128 characters. Checked before any hashing, so a huge password costs nothing.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Password, ValueError> {
        // Count bytes first: a megabyte "password" must not even be walked char by char.
        if raw.len() > 128 * 4 {
            return Err(ValueError::Password);
        }
        let chars = raw.chars().count();
        if (8..=128).contains(&chars) {
            Ok(Password(raw.to_owned()))
        } else {
            Err(ValueError::Password)
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A Unicode format character (category Cf): zero-width spaces and joiners, the
/// bidirectional controls, the BOM, soft hyphens. They show nothing by themselves.
fn is_invisible(c: char) -> bool {
    c.general_category() == GeneralCategory::Format
}

/// The characters that change the direction of the text around them (LRM, RLM, ALM, the
/// embeddings, overrides and isolates).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text that would show as nothing: only whitespace and invisible characters.
fn shows_nothing(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

/// 1–64 characters after trimming; no control or bidirectional-control characters, and
/// something visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(raw: &str) -> Result<RoomName, ValueError> {
        let name = raw.trim();
        let chars = name.chars().count();
        if !(1..=64).contains(&chars) || name.chars().any(char::is_control) {
            return Err(ValueError::RoomName);
        }
        if name.chars().any(is_bidi_control) {
            return Err(ValueError::RoomNameBidi);
        }
        if shows_nothing(name) {
            return Err(ValueError::RoomNameInvisible);
        }
        Ok(RoomName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name transliterated to ASCII ("École" → "ecole", "Русский" → "russkii"),
    /// lower-case `a–z 0–9 -`. A name with a letter that has no ASCII form gets its hash
    /// appended (or is its hash, when nothing is left), so it never lands on the slug of a
    /// different name that merely shares its digits or its other letters.
    pub fn slug(&self) -> Slug {
        let mut ascii = String::with_capacity(self.0.len());
        let mut lost_a_letter = false;
        for c in self.0.chars() {
            if c.is_ascii() {
                ascii.push(c);
                continue;
            }
            match deunicode::deunicode_char(c) {
                Some(form)
                    if !c.is_alphanumeric() || form.chars().any(|f| f.is_ascii_alphanumeric()) =>
                {
                    ascii.push_str(form);
                }
                _ if c.is_alphanumeric() => lost_a_letter = true,
                _ => ascii.push(' '),
            }
        }
        let mut slug = String::with_capacity(ascii.len());
        for c in ascii.chars().map(|c| c.to_ascii_lowercase()) {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        while slug.ends_with('-') {
            slug.pop();
        }
        if slug.is_empty() || lost_a_letter {
            let digest = Sha256::digest(self.0.to_lowercase().as_bytes());
            let stem = if slug.is_empty() { "room" } else { &slug };
            slug = format!("{stem}-{}", hex(&digest[..5]));
        }
        Slug(slug)
    }
}

/// A room's URL name: lower-case `a–z 0–9 -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    /// For slugs that arrive in a URL; `None` when it cannot be any room's slug.
    pub fn parse(raw: &str) -> Option<Slug> {
        let ok = !raw.is_empty()
            && raw.len() <= 80
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ok.then(|| Slug(raw.to_owned()))
    }

    /// A private room's or DM's slug: 65 random bits, never derived from a name, so it
    /// cannot be guessed (CONTRACT §9). The `--` keeps it apart from every public slug,
    /// which [`RoomName::slug`] never gives two dashes in a row: a public room named like
    /// it gets another slug, and never finds it.
    pub fn unguessable(prefix: &str) -> Slug {
        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        let bits: u128 = rand::random();
        let random: String = (0..13)
            .map(|i| ALPHABET[((bits >> (5 * i)) & 31) as usize] as char)
            .collect();
        Slug(format!("{prefix}--{random}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 1–4000 characters after trimming, something visible, and no control characters but
/// tab and line breaks (an escape or a bell must not reach a terminal client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(raw: &str) -> Result<MessageBody, ValueError> {
        let body = raw.trim();
        if body.len() > 4000 && body.chars().count() > 4000 {
            return Err(ValueError::BodyTooLong);
        }
        if body.contains('\0') {
            return Err(ValueError::BodyHasNul);
        }
        if body
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err(ValueError::BodyHasControl);
        }
        if shows_nothing(body) {
            return Err(ValueError::EmptyBody);
        }
        Ok(MessageBody(body.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The client's name for a send, so a resend is stored once: 1–64 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<ClientId, ValueError> {
        // No control characters: PostgreSQL text cannot hold U+0000, and a client_id is
        // echoed in frames and logs.
        if (1..=64).contains(&raw.chars().count()) && !raw.chars().any(char::is_control) {
            Ok(ClientId(raw.to_owned()))
        } else {
            Err(ValueError::ClientId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A reaction: one emoji, as one extended grapheme cluster of Unicode's emoji set (a
/// skin tone, a flag, a keycap or a ZWJ sequence included), at most 32 bytes
/// (CONTRACT §10). Plain ASCII (`1`, `#`, `*`, which Unicode counts as emoji characters)
/// is not one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Emoji(String);

impl Emoji {
    pub const MAX_BYTES: usize = 32;

    pub fn parse(raw: &str) -> Result<Emoji, ValueError> {
        use unicode_properties::emoji::{is_zwj, UnicodeEmoji};
        use unicode_segmentation::UnicodeSegmentation;
        let one_cluster = raw.graphemes(true).count() == 1;
        let emoji_only = raw
            .chars()
            .all(|c| c.is_emoji_char_or_emoji_component() || is_zwj(c) || is_emoji_tag(c));
        let pictured = raw.chars().any(|c| c.is_emoji_char()) && !raw.is_ascii();
        if raw.len() <= Emoji::MAX_BYTES && one_cluster && emoji_only && pictured {
            Ok(Emoji(raw.to_owned()))
        } else {
            Err(ValueError::Emoji)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The tag characters of subdivision flags (🏴 + tags + cancel tag).
fn is_emoji_tag(c: char) -> bool {
    unicode_properties::emoji::is_tag_character(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_contract() {
        for good in ["abc", "Alice_1.x-y", &"a".repeat(32)] {
            assert!(Username::parse(good).is_ok(), "{good}");
        }
        for bad in ["ab", &"a".repeat(33), "with space", "émile", "a/b", ""] {
            assert_eq!(Username::parse(bad), Err(ValueError::Username), "{bad}");
        }
        assert_eq!(Username::parse("Alice").unwrap().key(), "alice");
    }

    #[test]
    fn passwords_are_counted_in_characters() {
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse(&"é".repeat(128)).is_ok());
        assert!(Password::parse(&"a".repeat(129)).is_err());
        assert!(Password::parse(&"a".repeat(1_000_000)).is_err());
    }

    #[test]
    fn room_names_are_trimmed_and_slugged() {
        let name = RoomName::parse("  Rust & Friends!  ").unwrap();
        assert_eq!(name.as_str(), "Rust & Friends!");
        assert_eq!(name.slug().as_str(), "rust-friends");
        assert_eq!(
            RoomName::parse("General").unwrap().slug().as_str(),
            "general"
        );
        let cjk = RoomName::parse("日本語").unwrap().slug();
        assert_eq!(cjk.as_str(), "ri-ben-yu");
        assert_eq!(Slug::parse(cjk.as_str()), Some(cjk));
        assert!(RoomName::parse("   ").is_err());
        assert!(RoomName::parse("a\u{7}b").is_err());
        assert!(RoomName::parse(&"x".repeat(65)).is_err());
        assert!(RoomName::parse(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn slugs_are_transliterated_and_never_shared_by_accident() {
        let slug = |name: &str| RoomName::parse(name).unwrap().slug().as_str().to_owned();
        assert_eq!(slug("École"), "ecole");
        assert_eq!(slug("Über"), "uber");
        assert_eq!(slug("Русский"), "russkii");
        assert_ne!(slug("École"), slug("Cole"));
        assert_ne!(slug("Русский 2024"), slug("日本語 2024"));
        assert_ne!(slug("Русский 2024"), slug("2024"));
        // A letter with no ASCII form: the slug is the name's own.
        let hieroglyph = slug("𓀀 2024");
        assert!(hieroglyph.starts_with("2024-"), "{hieroglyph}");
        assert_ne!(hieroglyph, slug("𓀁 2024"));
        assert_ne!(hieroglyph, slug("2024"));
        assert!(slug("𓀀").starts_with("room-"));
        for name in ["École", "𓀀 2024", "🎉", "日本語", "ß straße"] {
            assert!(Slug::parse(&slug(name)).is_some(), "{name}");
        }
    }

    #[test]
    fn an_unguessable_slug_is_never_a_public_one() {
        let private = Slug::unguessable("p");
        assert!(Slug::parse(private.as_str()).is_some());
        assert_eq!(private.as_str().len(), "p--".len() + 13);
        assert_ne!(private, Slug::unguessable("p"));
        let public = RoomName::parse(private.as_str()).unwrap().slug();
        assert!(!public.as_str().contains("--"), "{public:?}");
        for name in ["a -- b", "--x--", "a - - b", "𓀀--𓀁"] {
            assert!(
                !RoomName::parse(name)
                    .unwrap()
                    .slug()
                    .as_str()
                    .contains("--"),
                "{name}"
            );
        }
    }

    #[test]
    fn names_and_bodies_that_show_nothing_or_turn_text_around_are_refused() {
        for hidden in ["\u{200B}", "\u{FEFF}", " \u{200D}\u{2060} ", "\u{00AD}"] {
            assert_eq!(
                RoomName::parse(hidden),
                Err(ValueError::RoomNameInvisible),
                "{hidden:?}"
            );
            assert_eq!(
                MessageBody::parse(hidden),
                Err(ValueError::EmptyBody),
                "{hidden:?}"
            );
        }
        for bidi in ["abc\u{202E}def", "\u{2066}x", "x\u{200F}"] {
            assert_eq!(
                RoomName::parse(bidi),
                Err(ValueError::RoomNameBidi),
                "{bidi:?}"
            );
        }
        for control in ["a\u{1b}[31mred", "ding\u{7}", "a\u{85}b"] {
            assert_eq!(
                MessageBody::parse(control),
                Err(ValueError::BodyHasControl),
                "{control:?}"
            );
        }
        // Visible text with joiners and line breaks is kept exactly.
        let family = "👨\u{200D}👩\u{200D}👧 hi\tthere\r\nok";
        assert_eq!(MessageBody::parse(family).unwrap().as_str(), family);
        assert!(
            MessageBody::parse("مرحبا \u{202E}abc").is_ok(),
            "bodies may carry bidi text; pages isolate it"
        );
    }

    #[test]
    fn bodies_are_trimmed_and_bounded() {
        assert_eq!(MessageBody::parse("  hi \n").unwrap().as_str(), "hi");
        assert_eq!(MessageBody::parse(" \n\t "), Err(ValueError::EmptyBody));
        assert!(MessageBody::parse(&"é".repeat(4000)).is_ok());
        assert_eq!(
            MessageBody::parse(&"a".repeat(4001)),
            Err(ValueError::BodyTooLong)
        );
        assert_eq!(MessageBody::parse("a\0b"), Err(ValueError::BodyHasNul));
    }

    #[test]
    fn client_ids_are_bounded() {
        assert!(ClientId::parse("c1").is_ok());
        assert!(ClientId::parse(&"x".repeat(64)).is_ok());
        assert!(ClientId::parse(&"x".repeat(65)).is_err());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("a\u{0}b").is_err());
        assert!(ClientId::parse("a\nb").is_err());
    }

    #[test]
    fn a_reaction_is_one_emoji() {
        for good in ["👍", "❤️", "❤", "👍🏽", "🇫🇷", "1️⃣", "👩‍👩‍👧", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"]
        {
            assert_eq!(
                Emoji::parse(good).map(|e| e.0),
                Ok(good.to_owned()),
                "{good}"
            );
        }
        for bad in ["", "a", "1", "#", "👍👍", "👍 ", " 👍", "ok👍", "\u{200D}"] {
            assert_eq!(Emoji::parse(bad), Err(ValueError::Emoji), "{bad:?}");
        }
        assert!(Emoji::parse(&"👩‍👩‍👧".repeat(3)).is_err(), "over 32 bytes");
    }
}
