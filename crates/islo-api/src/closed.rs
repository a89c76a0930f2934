//! Closed sets of words on the wire (statuses, kinds) as enums: one macro writes the enum,
//! `as_str`, `parse` and `Display`, so each set is listed once. On the wire a member is its
//! name in snake_case, which must be the word given (a test checks every set).

/// `closed_set! { /// doc  Name { Variant = "word", … } }`.
macro_rules! closed_set {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            /// The word on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// The member a word names.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use closed_set;

#[cfg(test)]
mod tests {
    use crate::{
        AuthMode, EventAction, RuleAction, SandboxStatus, SessionStatus, SetupStepStatus,
        SnapshotStatus,
    };

    fn same<T: serde::Serialize + Copy>(all: &[T], word: impl Fn(T) -> &'static str) {
        for m in all {
            let wire = serde_json::to_string(m).unwrap();
            assert_eq!(wire, format!("\"{}\"", word(*m)));
        }
    }

    #[test]
    fn each_member_is_its_word_on_the_wire() {
        use SandboxStatus as S;
        same(
            &[
                S::Starting,
                S::Running,
                S::Stopping,
                S::Stopped,
                S::Paused,
                S::Failed,
                S::Deleted,
            ],
            S::as_str,
        );
        use SetupStepStatus as T;
        same(
            &[T::Pending, T::Running, T::Succeeded, T::Failed, T::Skipped],
            T::as_str,
        );
        use SnapshotStatus as N;
        same(&[N::Saving, N::Ready, N::Failed], N::as_str);
        assert_eq!(N::parse("ready"), Some(N::Ready));
        same(&[RuleAction::Allow, RuleAction::Deny], RuleAction::as_str);
        use AuthMode as A;
        same(&[A::Bearer, A::Basic, A::Header], A::as_str);
        use EventAction as E;
        same(
            &[E::Allow, E::Deny, E::RateLimited, E::Error, E::Dropped],
            E::as_str,
        );
        use SessionStatus as Z;
        same(&[Z::Connected, Z::Disconnected, Z::Dead], Z::as_str);
        assert_eq!(N::parse("Ready"), None);
    }
}
