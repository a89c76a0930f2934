//! What an MCP client may touch: with a prefix, only sandboxes (and snapshots) whose names
//! start with it, and at most a number of sandboxes at once. An agent given this server
//! cannot reach the operator's other sandboxes, by name or by listing.

/// The limits of one server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Names a client may use start with this.
    pub prefix: Option<String>,
    /// At most this many sandboxes with the prefix exist at once (creates beyond it refused).
    pub max_sandboxes: Option<u32>,
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "{what} {name:?} is outside what this MCP server may touch: names must start with {prefix:?}"
    )]
    Prefix {
        what: &'static str,
        name: String,
        prefix: String,
    },
    #[error(
        "this MCP server may keep at most {max} sandboxes and {have} exist; delete one (delete_sandbox) first"
    )]
    Full { max: u32, have: u64 },
}

impl Policy {
    /// `name` (of a sandbox, `what` = "sandbox", or a snapshot) is within reach.
    pub fn allow(&self, what: &'static str, name: &str) -> Result<(), Refusal> {
        match &self.prefix {
            Some(p) if !name.starts_with(p.as_str()) => Err(Refusal::Prefix {
                what,
                name: name.to_string(),
                prefix: p.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// One more sandbox may be made when `have` exist.
    pub fn room_for_one(&self, have: u64) -> Result<(), Refusal> {
        match self.max_sandboxes {
            Some(max) if have >= u64::from(max) => Err(Refusal::Full { max, have }),
            _ => Ok(()),
        }
    }

    /// A name for a sandbox made without one: the prefix (or `mcp-`) and a random tail.
    pub fn new_name(&self) -> String {
        let tail: u32 = rand::random();
        format!("{}{tail:08x}", self.prefix.as_deref().unwrap_or("mcp-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited() -> Policy {
        Policy {
            prefix: Some("agent-".into()),
            max_sandboxes: Some(2),
        }
    }

    #[test]
    fn names_outside_the_prefix_are_refused_and_say_why() {
        let p = limited();
        assert!(p.allow("sandbox", "agent-1").is_ok());
        let e = p.allow("sandbox", "prod-db").unwrap_err();
        assert!(e.to_string().contains("\"prod-db\""), "{e}");
        assert!(e.to_string().contains("\"agent-\""), "{e}");
        assert!(Policy::default().allow("sandbox", "anything").is_ok());
    }

    #[test]
    fn the_count_is_capped() {
        let p = limited();
        assert!(p.room_for_one(1).is_ok());
        assert_eq!(p.room_for_one(2), Err(Refusal::Full { max: 2, have: 2 }));
        assert!(Policy::default().room_for_one(10_000).is_ok());
    }

    #[test]
    fn generated_names_keep_the_prefix() {
        let n = limited().new_name();
        assert!(n.starts_with("agent-") && n.len() == 14, "{n}");
        assert!(Policy::default().new_name().starts_with("mcp-"));
    }
}
