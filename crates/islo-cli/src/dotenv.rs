//! `--env-file`: dotenv syntax. `KEY=VALUE` per line, optional `export `, `#` comments and
//! blank lines; values bare (trailing ` # comment` dropped), in single quotes (literal) or in
//! double quotes (`\n`, `\t`, `\"`, `\\` escapes).

use std::collections::BTreeMap;
use std::path::Path;

use crate::usage;

/// Parse the file at `path`; errors name the file and line.
pub fn load(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("--env-file {}: {e}", path.display())))?;
    parse(&text).map_err(|(line, why)| usage(format!("{}:{line}: {why}", path.display())))
}

fn parse(text: &str) -> Result<BTreeMap<String, String>, (usize, String)> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((k, v)) = line.split_once('=') else {
            return Err((i + 1, format!("expected KEY=VALUE, got {line:?}")));
        };
        let k = k.trim();
        let valid = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err((i + 1, format!("invalid variable name {k:?}")));
        }
        out.insert(k.to_string(), value(v.trim()).map_err(|e| (i + 1, e))?);
    }
    Ok(out)
}

fn value(v: &str) -> Result<String, String> {
    if let Some(rest) = v.strip_prefix('\'') {
        let end = rest.find('\'').ok_or("unterminated single quote")?;
        return Ok(rest[..end].to_string());
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Ok(out),
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(o) => out.push(o),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err("unterminated double quote".into());
    }
    Ok(v.split(" #").next().unwrap_or("").trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_lines() {
        let env = parse(
            "# comment\n\nA=1\nexport B = two words # note\nC='lit $X # kept'\nD=\"a\\nb \\\"q\\\"\"\nE=\n",
        )
        .unwrap();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "lit $X # kept");
        assert_eq!(env["D"], "a\nb \"q\"");
        assert_eq!(env["E"], "");
        assert_eq!(parse("X=1\nnot a line\n").unwrap_err().0, 2);
        assert!(parse("1X=2").is_err());
        assert!(parse("X='open").is_err());
    }
}
