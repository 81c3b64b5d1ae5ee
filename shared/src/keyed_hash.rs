//! Keyed hashes of customer text: every digest of what a customer said that the table keeps
//! is an HMAC-SHA256 under the hash key (`HASH_KEY`, read once at init like the other
//! secrets, never rotated), so that nobody holding the table, its stream or a backup, but
//! not the key, can test a guess against it. Two digests are kept:
//!
//! - the idempotency record's payload digest ([`HashKey::payload`]), over the turn as the
//!   client sent it, before redaction, scoped to the session: a retry of the same payload
//!   matches whatever the redaction of either attempt saw (page context, Comprehend);
//! - a fact's id ([`HashKey::fact_id`]), over its kind and subject, scoped to the customer:
//!   the same subject has a different id for each customer, and a forgotten fact's
//!   tombstone does not say what it was.
//!
//! Limit: `HASH_KEY` is never destroyed, so a digest in a copy of the table (a backup, an
//! export) still confirms a guess of a short text after its customer's purge. A page
//! context's retry therefore keeps no digest (`store/update.rs` compares plaintexts).
//!
//! Each digest is the first 16 bytes, in hex, of an HMAC over a label and length-prefixed
//! parts, so no two inputs of different shapes can collide by concatenation.
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::secret::Secret;
use crate::Error;

/// The key of every stored hash of customer text. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct HashKey(Hmac<Sha256>);

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(..)")
    }
}

impl HashKey {
    /// The key from `HASH_KEY` ([`crate::secret::load`] at init). A [`Secret`] is at least
    /// 32 bytes; there is no default key.
    pub fn new(secret: &Secret) -> Result<Self, Error> {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes())
            .map_err(|_| Error::Config("HASH_KEY is not a usable HMAC key".to_owned()))?;
        Ok(HashKey(mac))
    }

    /// The digest an idempotency record keeps of a turn's payload (everything but the
    /// response id), as the client sent it.
    pub fn payload(
        &self,
        session_id: &Uuid,
        role: &str,
        content: &str,
        intent: Option<&str>,
        token_count: Option<u32>,
        item: Option<&str>,
    ) -> String {
        let token_count = token_count.map(|n| n.to_string());
        let intent = intent.map_or(&b"\x00absent"[..], str::as_bytes);
        let token_count = token_count.as_deref().map_or(&b"\x00absent"[..], str::as_bytes);
        let item = item.map_or(&b"\x00absent"[..], str::as_bytes);
        let session_id = session_id.to_string();
        self.digest(b"tidewater-payload-v1", &[session_id.as_bytes(), role.as_bytes(), content.as_bytes(), intent, token_count, item])
    }

    /// A fact's id: the same for every statement of one subject by one customer.
    pub fn fact_id(&self, customer_hash: &str, kind: &str, normalised_subject: &str) -> String {
        self.digest(b"tidewater-fact-v1", &[customer_hash.as_bytes(), kind.as_bytes(), normalised_subject.as_bytes()])
    }

    fn digest(&self, label: &[u8], parts: &[&[u8]]) -> String {
        let mut mac = self.0.clone();
        for part in std::iter::once(label).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use sha2::Digest;

    use super::*;

    fn key(value: &str) -> HashKey {
        HashKey::new(&Secret::new("HASH_KEY", value).unwrap()).unwrap()
    }

    const SESSION: Uuid = Uuid::from_u128(0x6f1c2a9e_3b4d_4c8a_9e21_5a7b8c9d0e1f);

    #[test]
    fn a_payload_digest_depends_on_the_key_the_session_and_every_field() {
        let a = key("a-test-hash-key-of-at-least-32-bytes!");
        let b = key("another-test-hash-key-of-32-bytes-or-more");
        let base = a.payload(&SESSION, "user", "call me on 06 12 34 56 78", None, None, None);
        assert_eq!(base, a.payload(&SESSION, "user", "call me on 06 12 34 56 78", None, None, None));
        assert_eq!(base.len(), 32);
        for other in [
            b.payload(&SESSION, "user", "call me on 06 12 34 56 78", None, None, None),
            a.payload(&Uuid::nil(), "user", "call me on 06 12 34 56 78", None, None, None),
            a.payload(&SESSION, "assistant", "call me on 06 12 34 56 78", None, None, None),
            a.payload(&SESSION, "user", "call me on 06 12 34 56 79", None, None, None),
            a.payload(&SESSION, "user", "call me on 06 12 34 56 78", Some(""), None, None),
            a.payload(&SESSION, "user", "call me on 06 12 34 56 78", None, Some(0), None),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn a_fact_id_is_scoped_to_its_customer_and_is_no_plain_sha256() {
        let k = key("a-test-hash-key-of-at-least-32-bytes!");
        let alice = k.fact_id("hash-of-alice", "owns", "owns frieren");
        assert_eq!(alice, k.fact_id("hash-of-alice", "owns", "owns frieren"));
        assert_ne!(alice, k.fact_id("hash-of-bob", "owns", "owns frieren"));
        assert_ne!(alice, k.fact_id("hash-of-alice", "preference", "owns frieren"));
        // The unkeyed id of earlier versions: SHA-256 of the length-prefixed kind and subject.
        let mut plain = sha2::Sha256::new();
        for part in ["owns", "owns frieren"] {
            plain.update((part.len() as u64).to_be_bytes());
            plain.update(part.as_bytes());
        }
        let plain: String = plain.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
        assert_ne!(alice, plain);
    }

    #[test]
    fn the_key_never_shows() {
        assert_eq!(format!("{:?}", key("a-test-hash-key-of-at-least-32-bytes!")), "HashKey(..)");
    }
}
