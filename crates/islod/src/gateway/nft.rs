//! The nftables table that makes the gateway the only way out: every TCP connection from a
//! sandbox link is redirected to the transparent listener, every DNS query to the resolver;
//! nothing else from a link reaches the host or is forwarded anywhere, IPv6 included. The
//! listener's ports take nothing from other interfaces.

use std::io::Write;
use std::process::{Command, Stdio};

/// The ruleset for links named `if_prefix*`, in table `inet TABLE`.
pub fn ruleset(table: &str, if_prefix: &str, proxy_port: u16, dns_port: u16) -> String {
    let links = format!("\"{if_prefix}*\"");
    format!(
        "table inet {table} {{\n\
         \tchain prerouting {{\n\
         \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         \t\tiifname {links} meta nfproto ipv4 meta l4proto tcp redirect to :{proxy_port}\n\
         \t\tiifname {links} meta nfproto ipv4 udp dport 53 redirect to :{dns_port}\n\
         \t}}\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter - 5; policy accept;\n\
         \t\tiifname {links} meta nfproto ipv4 tcp dport {proxy_port} ct status dnat accept\n\
         \t\tiifname {links} meta nfproto ipv4 udp dport {dns_port} ct status dnat accept\n\
         \t\tiifname {links} drop\n\
         \t\tiifname != \"lo\" tcp dport {proxy_port} drop\n\
         \t\tiifname != \"lo\" udp dport {dns_port} drop\n\
         \t}}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter - 5; policy accept;\n\
         \t\tiifname {links} drop\n\
         \t\toifname {links} drop\n\
         \t}}\n\
         }}\n"
    )
}

fn nft(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nft: {e} (install nftables)"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("writing to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Replace the table atomically (one transaction: the old rules until the new ones hold).
pub fn install(table: &str, if_prefix: &str, proxy_port: u16, dns_port: u16) -> Result<(), String> {
    let script = format!(
        "table inet {table}\ndelete table inet {table}\n{}",
        ruleset(table, if_prefix, proxy_port, dns_port)
    );
    nft(&script)
}

/// Remove the table (no sandbox needs it any more).
pub fn remove(table: &str) -> Result<(), String> {
    nft(&format!("table inet {table}\ndelete table inet {table}\n"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_are_redirected_and_fenced() {
        let r = super::ruleset("islo_ab12", "isab12s", 4000, 4001);
        assert!(
            r.contains("iifname \"isab12s*\" meta nfproto ipv4 meta l4proto tcp redirect to :4000")
        );
        assert!(r.contains("udp dport 53 redirect to :4001"));
        assert!(r.contains("chain forward"));
        assert!(r.contains("iifname \"isab12s*\" drop"));
    }
}
