//! The `.env` file: read literally, as the original Django project's reader left it.

use std::collections::HashMap;

use super::{error, ConfigError};

/// The variables of `.env` in the working directory; none when there is no such file.
pub(super) fn read_working_directory_file() -> Result<HashMap<String, String>, ConfigError> {
    match std::fs::read_to_string(".env") {
        Ok(text) => parse_dotenv(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(error(".env", format!("could not be read: {e}"))),
    }
}

/// Parses a `.env` file: `KEY=value` lines, `#` comments, optional `export ` and quotes.
///
/// Values are taken literally: no `$VAR` expansion, so a secret such as the original
/// project's (`…o7$v6*0^6l…`) arrives unchanged, as Django's reader left it.
pub fn parse_dotenv(text: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut vars = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(error(
                ".env",
                format!("line {} is not KEY=value", number + 1),
            ));
        };
        let value = value.trim();
        let value = match value.as_bytes().first() {
            Some(&quote @ (b'"' | b'\''))
                if value.len() >= 2 && value.as_bytes()[value.len() - 1] == quote =>
            {
                &value[1..value.len() - 1]
            }
            // An unquoted value ends at a comment that follows whitespace.
            _ => value.split(" #").next().unwrap_or(value).trim_end(),
        };
        vars.insert(key.trim().to_owned(), value.to_owned());
    }
    Ok(vars)
}
