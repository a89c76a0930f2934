//! Sandbox names: validation and generated slugs.

use islo_api::limits::NAME_LEN;
use rand::Rng;

use super::AppError;

/// Names are hostnames too: ASCII letters, digits and hyphens, 2–63 long, no leading or
/// trailing hyphen. Case is kept (names are case-sensitive).
pub fn validate(name: &str) -> Result<(), AppError> {
    let ok_len = (NAME_LEN.0..=NAME_LEN.1).contains(&name.len());
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !ok_len || !ok_chars || name.starts_with('-') || name.ends_with('-') {
        return Err(AppError::Validation(format!(
            "invalid sandbox name {name:?}: use {}-{} letters, digits or hyphens, not starting or ending with a hyphen",
            NAME_LEN.0, NAME_LEN.1
        )));
    }
    Ok(())
}

const ADJECTIVES: &[&str] = &[
    "brisk", "calm", "deft", "eager", "fond", "glad", "keen", "lucid", "merry", "nimble", "quiet",
    "sunny", "tidy", "vivid", "wise",
];
const NOUNS: &[&str] = &[
    "otter", "heron", "lynx", "finch", "maple", "cedar", "comet", "delta", "ember", "fjord",
    "grove", "harbor", "island", "meadow", "reef",
];

/// A fresh `adjective-noun-xxxx` slug.
pub fn generate() -> String {
    let mut r = rand::rng();
    format!(
        "{}-{}-{:04x}",
        ADJECTIVES[r.random_range(0..ADJECTIVES.len())],
        NOUNS[r.random_range(0..NOUNS.len())],
        r.random::<u16>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["demo", "My-Box-2", "ab"] {
            validate(good).unwrap();
        }
        for bad in [
            "a",
            "-x",
            "x-",
            "has space",
            "dots.no",
            "ümlaut",
            &"x".repeat(64),
            "a/b",
            "../x",
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
        validate(&generate()).unwrap();
    }
}
