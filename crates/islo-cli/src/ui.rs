//! Terminal helpers: TTY checks, confirmation, tables and human-friendly values.

use std::io::{IsTerminal, Write};

/// Write to standard output. A reader that went away (a closed pipe) ends islo quietly with
/// the status a shell gives a process ended by SIGPIPE, as `cat` or `ls` end; other write
/// errors are reported once, on standard error.
pub fn write_out(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(EXIT_PIPE),
        Err(e) => {
            eprintln!("islo: writing standard output: {e}");
            std::process::exit(crate::EXIT_FAILURE);
        }
    }
}

/// What a shell reports for a process SIGPIPE ended (128 + 13).
pub const EXIT_PIPE: i32 = 141;

pub fn stdin_tty() -> bool {
    std::io::stdin().is_terminal()
}

pub fn stdout_tty() -> bool {
    std::io::stdout().is_terminal()
}

pub fn stderr_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// Ask `question [y/N]` on the terminal.
pub fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut s = String::new();
    std::io::stdin().read_line(&mut s).is_ok() && matches!(s.trim(), "y" | "Y" | "yes" | "YES")
}

/// A borderless table like `docker ps`.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(header.iter().map(comfy_table::Cell::new));
    for r in rows {
        t.add_row(r);
    }
    t.lines()
        .map(|l| l.trim().to_string() + "\n")
        .collect::<String>()
        .replace(" \n", "\n")
}

/// `2048` MB → `2Gi`, `512` → `512Mi`.
pub fn memory(mb: u32) -> String {
    if mb.is_multiple_of(1024) {
        format!("{}Gi", mb / 1024)
    } else {
        format!("{mb}Mi")
    }
}

/// `Running` from `running`.
/// A byte count for people: `512 B`, `4.0 KB`, `2.1 GB` (powers of 1000, like `ls -h --si`).
pub fn bytes(n: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

pub fn title(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn parse(ts: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()
}

/// Seconds since an RFC 3339 time.
pub fn age_secs(ts: &str) -> Option<i64> {
    Some(
        (time::OffsetDateTime::now_utc() - parse(ts)?)
            .whole_seconds()
            .max(0),
    )
}

/// `5 minutes`, `2 hours`, `3 days`.
pub fn duration(secs: i64) -> String {
    let (n, unit) = match secs {
        s if s < 60 => (s, "second"),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s => (s / 86_400, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// `5 minutes ago`.
pub fn ago(ts: &str) -> String {
    age_secs(ts)
        .map(|s| format!("{} ago", duration(s)))
        .unwrap_or_else(|| ts.to_string())
}

/// `5 minutes ago` from unix milliseconds.
pub fn ago_unix_ms(ms: u64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    format!("{} ago", duration((now - (ms / 1000) as i64).max(0)))
}

/// `2024-01-15 10:30:00 UTC`.
pub fn datetime(ts: &str) -> String {
    parse(ts)
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| ts.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanised_values() {
        assert_eq!(
            (memory(2048), memory(512)),
            ("2Gi".to_string(), "512Mi".to_string())
        );
        assert_eq!(duration(59), "59 seconds");
        assert_eq!(duration(60), "1 minute");
        assert_eq!(duration(7200), "2 hours");
        assert_eq!(title("running"), "Running");
        assert_eq!(datetime("2024-01-15T10:30:00Z"), "2024-01-15 10:30:00 UTC");
        let t = table(
            &["NAME", "STATUS"],
            vec![vec!["a".into(), "Running".into()]],
        );
        assert!(
            t.starts_with("NAME") && t.contains("a") && t.contains("Running"),
            "{t}"
        );
    }
}
