//! The encrypted form of one attribute: a versioned envelope around AES-256-GCM, bound to the
//! item and attribute it was written for.
//!
//! Layout (version 1), stored as DynamoDB binary:
//!
//! | bytes | what |
//! |---|---|
//! | 1 | [`ENVELOPE_V1`] (`0xE1`; gzip, the plaintext form, starts with `0x1F`) |
//! | 1 | `n`, the length of the key reference |
//! | `n` | the key reference, UTF-8 (`CUST#<id>`, `GUEST#<region>#<yyyy-mm-dd>`, `GUEST#<yyyy-mm-dd>`) |
//! | 16 | the key's generation (a new one each time a key is created) |
//! | 12 | a random nonce |
//! | rest | ciphertext and the 16-byte tag |
//!
//! The authenticated data is the header (reference and generation) and the item's identity
//! ([`Binding`]): its keys, the attribute's name and whatever else the caller binds (role,
//! timestamps). A ciphertext copied to another item, session or attribute fails to open.
use aes_gcm::aead::{Aead, AeadCore, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use super::{CryptoError, DataKey, Generation, GENERATION_LEN};

/// The first byte of a version-1 envelope.
pub const ENVELOPE_V1: u8 = 0xE1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const AAD_CONTEXT: &[u8] = b"tidewater.envelope.v1";

/// What an encrypted attribute belongs to; every part is authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    parts: Vec<(&'static str, String)>,
}

impl Binding {
    /// The attribute `attribute` of the item keyed `pk`, `sk`.
    pub fn new(pk: &str, sk: &str, attribute: &'static str) -> Binding {
        Binding { parts: vec![("PK", pk.to_owned()), ("SK", sk.to_owned()), ("attribute", attribute.to_owned())] }
    }

    /// The same binding, also naming `value` as `name` (a role, a timestamp).
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Binding {
        self.parts.push((name, value.into()));
        self
    }

    fn aad(&self, key_ref: &str, generation: &Generation) -> Vec<u8> {
        let mut aad = Vec::with_capacity(128);
        let mut push = |bytes: &[u8]| {
            aad.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            aad.extend_from_slice(bytes);
        };
        push(AAD_CONTEXT);
        push(key_ref.as_bytes());
        push(generation);
        for (name, value) in &self.parts {
            push(name.as_bytes());
            push(value.as_bytes());
        }
        aad
    }
}

/// The clear header of an envelope: which key opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    pub key_ref: &'a str,
    pub generation: Generation,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

/// Whether `bytes` are an envelope (as opposed to the plaintext form written before
/// encryption): the header if so, `None` if the bytes are not one, an error if they claim to
/// be one and are cut short.
pub fn header(bytes: &[u8]) -> Result<Option<Header<'_>>, CryptoError> {
    let Some((&ENVELOPE_V1, rest)) = bytes.split_first() else {
        return Ok(None);
    };
    let (&ref_len, rest) = rest.split_first().ok_or(CryptoError::Malformed)?;
    let ref_len = ref_len as usize;
    if rest.len() < ref_len + GENERATION_LEN + NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Malformed);
    }
    let (key_ref, rest) = rest.split_at(ref_len);
    let (generation, rest) = rest.split_at(GENERATION_LEN);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    Ok(Some(Header {
        key_ref: std::str::from_utf8(key_ref).map_err(|_| CryptoError::Malformed)?,
        generation: generation.try_into().map_err(|_| CryptoError::Malformed)?,
        nonce,
        ciphertext,
    }))
}

/// Encrypts `plaintext` under `key`, which `key_ref` names, for the item `binding` describes.
pub fn seal(key_ref: &str, key: &DataKey, binding: &Binding, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let ref_len = u8::try_from(key_ref.len()).map_err(|_| CryptoError::Malformed)?;
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let aad = binding.aad(key_ref, &key.generation);
    let ciphertext = key
        .cipher
        .encrypt(&nonce, Payload { msg: plaintext, aad: &aad })
        .map_err(|_| CryptoError::Seal)?;
    let mut out = Vec::with_capacity(2 + key_ref.len() + GENERATION_LEN + NONCE_LEN + ciphertext.len());
    out.push(ENVELOPE_V1);
    out.push(ref_len);
    out.extend_from_slice(key_ref.as_bytes());
    out.extend_from_slice(&key.generation);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Decrypts the envelope `header` read, with `key`, for the item `binding` describes. Fails
/// when the key is another generation (the one that sealed it was destroyed), or the
/// ciphertext, its header or its binding was changed.
pub fn open(header: &Header<'_>, key: &DataKey, binding: &Binding) -> Result<Vec<u8>, CryptoError> {
    if key.generation != header.generation {
        return Err(CryptoError::KeyDestroyed);
    }
    let aad = binding.aad(header.key_ref, &header.generation);
    key.cipher
        .decrypt(Nonce::from_slice(header.nonce), Payload { msg: header.ciphertext, aad: &aad })
        .map_err(|_| CryptoError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> Binding {
        Binding::new("SESSION#1", "TURN#0000000001", "content").with("role", "user")
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_binding() {
        let key = DataKey::generate();
        let sealed = seal("CUST#alice", &key, &binding(), b"hello").unwrap();
        let header = header(&sealed).unwrap().unwrap();
        assert_eq!(header.key_ref, "CUST#alice");
        assert_eq!(open(&header, &key, &binding()).unwrap(), b"hello");
    }

    #[test]
    fn two_seals_of_one_value_differ() {
        let key = DataKey::generate();
        assert_ne!(seal("CUST#a", &key, &binding(), b"x").unwrap(), seal("CUST#a", &key, &binding(), b"x").unwrap());
    }

    #[test]
    fn a_ciphertext_moved_to_another_item_or_attribute_fails() {
        let key = DataKey::generate();
        let sealed = seal("CUST#alice", &key, &binding(), b"hello").unwrap();
        let header = header(&sealed).unwrap().unwrap();
        for other in [
            Binding::new("SESSION#2", "TURN#0000000001", "content").with("role", "user"),
            Binding::new("SESSION#1", "TURN#0000000002", "content").with("role", "user"),
            Binding::new("SESSION#1", "TURN#0000000001", "item").with("role", "user"),
            Binding::new("SESSION#1", "TURN#0000000001", "content").with("role", "assistant"),
        ] {
            assert_eq!(open(&header, &key, &other), Err(CryptoError::Open), "{other:?}");
        }
    }

    #[test]
    fn another_key_or_generation_cannot_open_it() {
        let key = DataKey::generate();
        let sealed = seal("CUST#alice", &key, &binding(), b"hello").unwrap();
        let header = header(&sealed).unwrap().unwrap();
        assert_eq!(open(&header, &DataKey::generate(), &binding()), Err(CryptoError::KeyDestroyed));
        let same_generation = DataKey::from_parts(key.generation, &[7; 32]).unwrap();
        assert_eq!(open(&header, &same_generation, &binding()), Err(CryptoError::Open));
    }

    #[test]
    fn a_changed_header_or_ciphertext_fails() {
        let key = DataKey::generate();
        let sealed = seal("CUST#alice", &key, &binding(), b"hello").unwrap();
        for at in [2, sealed.len() - 1, sealed.len() - 20] {
            let mut changed = sealed.clone();
            changed[at] ^= 1;
            let header = header(&changed).unwrap().unwrap();
            assert!(open(&header, &key, &binding()).is_err(), "byte {at}");
        }
    }

    #[test]
    fn plaintext_forms_are_not_envelopes_and_truncation_is_an_error() {
        assert_eq!(header(&crate::codec::compress("old")).unwrap(), None);
        assert_eq!(header(b"").unwrap(), None);
        let key = DataKey::generate();
        let sealed = seal("CUST#alice", &key, &binding(), b"hello").unwrap();
        assert_eq!(header(&sealed[..20]), Err(CryptoError::Malformed));
        assert_eq!(header(&[ENVELOPE_V1]), Err(CryptoError::Malformed));
    }
}
