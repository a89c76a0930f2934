//! The egress gateway. For now its policy: profiles' rules and how a request is decided
//! ([`rules`]); the enforcing proxy builds on it.

pub mod rules;
