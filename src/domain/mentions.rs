//! `@name` mentions in a message's text (CONTRACT §11).

/// A character a username (and so a mention) is made of.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The usernames `body` mentions, as [`Username::key`](super::Username::key)s (lower-cased),
/// sorted, each once. An `@` at the start or after a character that cannot be in a
/// username, then the longest run of username characters with trailing `.` and `-`
/// dropped: `hi @bob.` mentions bob, `a@bob.com` no one. Which of these are users who can
/// read the room is the store's to decide.
pub fn mentioned_keys(body: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut previous: Option<char> = None;
    let mut chars = body.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let starts = c == '@' && !previous.is_some_and(is_name_char);
        previous = Some(c);
        if !starts {
            continue;
        }
        let from = at + 1;
        let mut to = from;
        while let Some(&(i, next)) = chars.peek() {
            if !is_name_char(next) {
                break;
            }
            to = i + next.len_utf8();
            previous = Some(next);
            chars.next();
        }
        let name = body[from..to].trim_end_matches(['.', '-']);
        // Only what could be a username (3–32 characters); anything else names no one.
        if (3..=32).contains(&name.len()) {
            keys.push(name.to_ascii_lowercase());
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::mentioned_keys;

    #[test]
    fn mentions_follow_the_contract() {
        let cases: &[(&str, &[&str])] = &[
            ("hi @bob.", &["bob"]),
            ("a@bob.com", &[]),
            ("@nobody", &["nobody"]),
            ("@Bob and @bob again, @ALICE!", &["alice", "bob"]),
            (
                "(@carol) @dave-- @eve.smith. @x",
                &["carol", "dave", "eve.smith"],
            ),
            ("@@bob", &["bob"]),
            ("email me@x.org or @zoë", &[]),
            ("tab\t@tab_user\n@line-user", &["line-user", "tab_user"]),
            ("é@bob", &["bob"]),
            ("@", &[]),
            ("@..bob", &["..bob"]),
        ];
        for (body, expected) in cases {
            assert_eq!(mentioned_keys(body), *expected, "{body:?}");
        }
        let long = format!("@{}", "a".repeat(33));
        assert!(mentioned_keys(&long).is_empty());
    }
}
