//! The local tools' settings from the environment: a variable unset or empty takes its default.

/// `name`'s value, or `default` when it is unset or empty.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|value| !value.is_empty()).unwrap_or_else(|| default.to_owned())
}
