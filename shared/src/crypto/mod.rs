//! Crypto-shredding: each customer's content is encrypted under a data key of their own
//! (guests: a key per day), and destroying the key erases every copy of that content, in
//! backups and streams too.
//!
//! Pure parts only: the envelope ([`envelope`]), the wrapping of data keys by a master key
//! ([`keyring`]) and the bounded cache of unwrapped keys ([`cache`]). The key table, the one
//! place that stores keys, is the store's (`store/data_keys.rs`).
use aes_gcm::aead::{KeyInit, OsRng};
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::Aes256Gcm;
use zeroize::Zeroizing;

pub mod cache;
pub mod envelope;
pub mod keyring;
#[cfg(feature = "kms")]
pub mod kms;

pub use cache::{KeyCache, MAX_KEY_LEASE};
pub use envelope::{Binding, ENVELOPE_V1};
pub use keyring::{AnyWrapper, KeyWrapper, LocalMasterKeys, WrappedKey};

/// The length of a key's generation: random, new each time a key is created, so that a key
/// created again after a purge never opens what the destroyed one sealed.
pub const GENERATION_LEN: usize = 16;
pub type Generation = [u8; GENERATION_LEN];
/// A data key's bytes, wiped when dropped; only a wrapper ever sees them.
pub type KeyMaterial = Zeroizing<[u8; 32]>;

/// What can go wrong opening or sealing; never carries key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("an envelope or wrapped key is malformed")]
    Malformed,
    #[error("encryption failed")]
    Seal,
    #[error("the ciphertext does not open with its key for this item (moved, changed or the wrong key)")]
    Open,
    #[error("the key that sealed this value was destroyed")]
    KeyDestroyed,
    #[error("the master key {0:?} that wrapped this data key is not configured")]
    UnknownMasterKey(String),
}

/// An unwrapped data key: its generation and its cipher. Its `Debug` shows the generation only.
#[derive(Clone)]
pub struct DataKey {
    pub generation: Generation,
    cipher: Aes256Gcm,
}

impl DataKey {
    /// A new random key and its material, to be wrapped and stored.
    pub fn generate_with_material() -> (DataKey, KeyMaterial) {
        let mut material: KeyMaterial = Zeroizing::new([0; 32]);
        OsRng.fill_bytes(material.as_mut());
        let mut generation = [0; GENERATION_LEN];
        OsRng.fill_bytes(&mut generation);
        let key = DataKey { generation, cipher: Aes256Gcm::new(material.as_ref().into()) };
        (key, material)
    }

    #[cfg(test)]
    pub(crate) fn generate() -> DataKey {
        Self::generate_with_material().0
    }

    pub fn from_parts(generation: Generation, material: &[u8]) -> Result<DataKey, CryptoError> {
        let cipher = Aes256Gcm::new_from_slice(material).map_err(|_| CryptoError::Malformed)?;
        Ok(DataKey { generation, cipher })
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey").field("generation", &self.generation).finish_non_exhaustive()
    }
}

impl From<CryptoError> for crate::Error {
    fn from(error: CryptoError) -> Self {
        match error {
            CryptoError::UnknownMasterKey(_) => crate::Error::Config(error.to_string()),
            _ => crate::Error::Corrupt(Box::new(error)),
        }
    }
}

/// What a store encrypts with: the wrapper of data keys and the cache of unwrapped ones.
/// Shared by the clones of one configuration (one function instance); a new instance starts
/// with an empty cache ([`Encryption::with_empty_cache`]).
#[derive(Debug)]
pub struct Encryption {
    pub wrapper: AnyWrapper,
    pub cache: std::sync::Mutex<KeyCache>,
}

impl Encryption {
    pub fn new(wrapper: AnyWrapper, cache: KeyCache) -> Encryption {
        Encryption { wrapper, cache: std::sync::Mutex::new(cache) }
    }

    /// Local master keys from the text of a key file ([`LocalMasterKeys::parse`]).
    pub fn local(master_keys: &str, cache: KeyCache) -> Result<Encryption, crate::Error> {
        Ok(Self::new(AnyWrapper::Local(LocalMasterKeys::parse(master_keys)?), cache))
    }

    /// The same wrapper with a cache of its own: another function instance.
    pub fn with_empty_cache(&self) -> Encryption {
        let zero = std::time::Duration::ZERO;
        let (entries, ttl, lease) = self.cache.lock().map(|c| c.bounds()).unwrap_or((1, zero, zero));
        Self::new(self.wrapper.clone(), KeyCache::new(entries, ttl, lease))
    }
}
