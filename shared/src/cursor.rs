//! Page cursors: opaque to clients, tamper-evident, and bound to the one listing they came from.
//!
//! A cursor is `base64url(json) "." base64url(tag)`, where `tag` is HMAC-SHA256 over a
//! version label, the listing's scope (`resume:<customer>`, `memory:<customer>` or `export:<session>`) and the
//! JSON. A cursor that was altered, or that another customer's listing issued, fails the
//! tag check and is a 400.
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Sha256;
use uuid::Uuid;

use crate::secret::Secret;
use crate::Error;

/// Cursors this API issues are well under this; anything longer is refused unread.
pub const MAX_CURSOR_CHARS: usize = 1024;

const LABEL: &[u8] = b"tidewater-cursor-v1";

/// The HMAC key that signs cursors. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct CursorKey(Hmac<Sha256>);

impl fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

impl CursorKey {
    /// The key from `CURSOR_SECRET`, which the functions that page read with
    /// [`crate::secret::load`]. A [`Secret`] is at least 32 bytes; there is no default key.
    pub fn new(secret: &Secret) -> Result<Self, Error> {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes())
            .map_err(|_| Error::Config("CURSOR_SECRET is not a usable HMAC key".to_owned()))?;
        Ok(CursorKey(mac))
    }

    /// The key from the secret `CURSOR_SECRET`, fetched beside the rest of init
    /// ([`crate::secret::prefetch`]).
    #[cfg(feature = "secrets")]
    pub fn prefetch(shared: &aws_config::SdkConfig) -> crate::Deferred<CursorKey> {
        let shared = shared.clone();
        crate::Deferred::start(move || {
            let shared = shared.clone();
            async move { CursorKey::new(&crate::secret::load(&shared, "CURSOR_SECRET").await?) }
        })
    }

    /// Encodes `position` as a cursor that only [`CursorKey::open`] with the same scope accepts.
    pub fn seal<T: Serialize>(&self, scope: &str, position: &T) -> String {
        let json = serde_json::to_vec(position).unwrap_or_default();
        let tag = self.tag(scope, &json).finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&json), URL_SAFE_NO_PAD.encode(tag))
    }

    /// Decodes a cursor; 400 when it is malformed, altered, or was issued for another scope.
    pub fn open<T: DeserializeOwned>(&self, scope: &str, cursor: &str) -> Result<T, Error> {
        let invalid = || Error::BadRequest("cursor is invalid: it was altered or belongs to another listing".to_owned());
        if cursor.len() > MAX_CURSOR_CHARS {
            return Err(invalid());
        }
        let (json, tag) = cursor.split_once('.').ok_or_else(invalid)?;
        let json = URL_SAFE_NO_PAD.decode(json).map_err(|_| invalid())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        self.tag(scope, &json).verify_slice(&tag).map_err(|_| invalid())?;
        serde_json::from_slice(&json).map_err(|_| invalid())
    }

    fn tag(&self, scope: &str, json: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        for part in [LABEL, scope.as_bytes(), json] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }
}

/// The scope of a customer's resume list.
pub fn resume_scope(customer_id: &str) -> String {
    format!("resume:{customer_id}")
}

/// The scope of one customer's memory listing (`GET /customers/{me|id}/memory`).
pub fn memory_scope(customer_id: &str) -> String {
    format!("memory:{customer_id}")
}

/// The scope of one session's turn export.
pub fn export_scope(session_id: &Uuid) -> String {
    format!("export:{session_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(secret: &str) -> CursorKey {
        CursorKey::new(&Secret::new("CURSOR_SECRET", secret).unwrap()).unwrap()
    }

    fn key() -> CursorKey {
        key_of(&"k".repeat(32))
    }

    #[test]
    fn a_sealed_position_opens_in_its_own_scope() {
        let cursor = key().seal("resume:alice", &(42u64, "x"));
        assert_eq!(key().open::<(u64, String)>("resume:alice", &cursor).unwrap(), (42, "x".to_owned()));
        assert!(!cursor.contains(['+', '/', '=']), "URL-safe: {cursor}");
    }

    #[test]
    fn another_scope_or_key_is_rejected() {
        let cursor = key().seal("resume:alice", &42u64);
        assert!(matches!(key().open::<u64>("resume:bob", &cursor), Err(Error::BadRequest(_))));
        let other = key_of(&"o".repeat(32));
        assert!(matches!(other.open::<u64>("resume:alice", &cursor), Err(Error::BadRequest(_))));
    }

    #[test]
    fn altered_or_garbage_cursors_are_rejected() {
        let cursor = key().seal("s", &serde_json::json!({"after": 5}));
        let (json, tag) = cursor.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(br#"{"after":500}"#));
        let mut flipped = tag.as_bytes().to_vec();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = format!("{json}.{}", String::from_utf8(flipped).unwrap());
        for bad in [forged.as_str(), flipped.as_str(), "", ".", "abc", "a.b.c", json, &"x".repeat(2000)] {
            assert!(matches!(key().open::<serde_json::Value>("s", bad), Err(Error::BadRequest(_))), "{bad}");
        }
    }
}
