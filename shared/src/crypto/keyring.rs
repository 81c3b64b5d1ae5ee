//! Wrapping data keys: a data key is stored only encrypted by a master key, locally a key
//! file ([`LocalMasterKeys`]), in AWS a KMS key. Rotation needs no rewrite of the table: a
//! wrapped key names the master key that wrapped it; the newest master key wraps, every
//! listed one unwraps.
use std::future::Future;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use zeroize::Zeroizing;

use super::{CryptoError, Generation, KeyMaterial};
use crate::Error;

const WRAP_CONTEXT: &[u8] = b"tidewater.datakey.v1";
const NONCE_LEN: usize = 12;

/// A data key as stored: encrypted by the master key `master_key_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub master_key_id: String,
    pub blob: Vec<u8>,
}

/// Wraps and unwraps data keys. `key_ref` and `generation` are bound to the wrapped key, so
/// a wrapped key copied to another customer's key item does not unwrap there.
pub trait KeyWrapper {
    fn wrap(
        &self,
        key_ref: &str,
        generation: &Generation,
        material: &KeyMaterial,
    ) -> impl Future<Output = Result<WrappedKey, Error>> + Send;

    fn unwrap(
        &self,
        key_ref: &str,
        generation: &Generation,
        wrapped: &WrappedKey,
    ) -> impl Future<Output = Result<KeyMaterial, Error>> + Send;
}

/// Local master keys (`make run`, the tests): AES-256-GCM key wrapping. The last listed key
/// wraps; every listed key unwraps what it wrapped.
#[derive(Clone)]
pub struct LocalMasterKeys {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for LocalMasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.iter().map(|(id, _)| id)).finish()
    }
}

impl LocalMasterKeys {
    /// Keys from the text of a master key file: one `<id> <base64 of 32 bytes>` a line, oldest
    /// first; blank lines and `#` comments are skipped. At least one key is needed.
    pub fn parse(text: &str) -> Result<LocalMasterKeys, Error> {
        let mut keys = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (id, encoded) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| Error::Config("a master key line must be `<id> <base64 key>`".to_owned()))?;
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| Error::Config(format!("master key {id:?} is not base64")))?,
            );
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| Error::Config(format!("master key {id:?} must be 32 bytes")))?;
            keys.push((id.to_owned(), cipher));
        }
        if keys.is_empty() {
            return Err(Error::Config("the master key file lists no key".to_owned()));
        }
        Ok(LocalMasterKeys { keys })
    }

    /// A new master key line for a key file: `<id> <base64 key>` (`make run`, the tests).
    pub fn new_line(id: &str) -> String {
        let key = Aes256Gcm::generate_key(&mut OsRng);
        format!("{id} {}", base64::engine::general_purpose::STANDARD.encode(key))
    }

    fn aad(key_ref: &str, generation: &Generation, master_key_id: &str) -> Vec<u8> {
        [WRAP_CONTEXT, b"\0", key_ref.as_bytes(), b"\0", generation, b"\0", master_key_id.as_bytes()].concat()
    }

    fn wrap_now(&self, key_ref: &str, generation: &Generation, material: &KeyMaterial) -> Result<WrappedKey, Error> {
        let (id, cipher) = self.keys.last().ok_or(CryptoError::Seal)?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = Self::aad(key_ref, generation, id);
        let sealed = cipher.encrypt(&nonce, Payload { msg: material.as_ref(), aad: &aad }).map_err(|_| CryptoError::Seal)?;
        Ok(WrappedKey { master_key_id: id.clone(), blob: [nonce.as_slice(), &sealed].concat() })
    }

    fn unwrap_now(&self, key_ref: &str, generation: &Generation, wrapped: &WrappedKey) -> Result<KeyMaterial, Error> {
        let (id, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| *id == wrapped.master_key_id)
            .ok_or_else(|| CryptoError::UnknownMasterKey(wrapped.master_key_id.clone()))?;
        if wrapped.blob.len() < NONCE_LEN {
            return Err(CryptoError::Malformed.into());
        }
        let (nonce, sealed) = wrapped.blob.split_at(NONCE_LEN);
        let aad = Self::aad(key_ref, generation, id);
        let bytes = Zeroizing::new(
            cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad }).map_err(|_| CryptoError::Open)?,
        );
        let material: [u8; 32] = bytes.as_slice().try_into().map_err(|_| CryptoError::Malformed)?;
        Ok(Zeroizing::new(material))
    }
}

impl KeyWrapper for LocalMasterKeys {
    async fn wrap(&self, key_ref: &str, generation: &Generation, material: &KeyMaterial) -> Result<WrappedKey, Error> {
        self.wrap_now(key_ref, generation, material)
    }

    async fn unwrap(&self, key_ref: &str, generation: &Generation, wrapped: &WrappedKey) -> Result<KeyMaterial, Error> {
        self.unwrap_now(key_ref, generation, wrapped)
    }
}

/// The wrapper a deployment configured: local master keys, or (feature `kms`) a KMS key.
#[derive(Debug, Clone)]
pub enum AnyWrapper {
    Local(LocalMasterKeys),
    #[cfg(feature = "kms")]
    Kms(super::kms::KmsWrapper),
}

impl KeyWrapper for AnyWrapper {
    async fn wrap(&self, key_ref: &str, generation: &Generation, material: &KeyMaterial) -> Result<WrappedKey, Error> {
        match self {
            AnyWrapper::Local(local) => local.wrap(key_ref, generation, material).await,
            #[cfg(feature = "kms")]
            AnyWrapper::Kms(kms) => kms.wrap(key_ref, generation, material).await,
        }
    }

    async fn unwrap(&self, key_ref: &str, generation: &Generation, wrapped: &WrappedKey) -> Result<KeyMaterial, Error> {
        match self {
            AnyWrapper::Local(local) => local.unwrap(key_ref, generation, wrapped).await,
            #[cfg(feature = "kms")]
            AnyWrapper::Kms(kms) => kms.unwrap(key_ref, generation, wrapped).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material() -> KeyMaterial {
        Zeroizing::new([9; 32])
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    #[test]
    fn a_wrapped_key_unwraps_for_its_own_reference_and_generation_only() {
        let keys = LocalMasterKeys::parse(&LocalMasterKeys::new_line("m1")).unwrap();
        let wrapped = block_on(keys.wrap("CUST#alice", &[1; 16], &material())).unwrap();
        assert_eq!(wrapped.master_key_id, "m1");
        assert_eq!(*block_on(keys.unwrap("CUST#alice", &[1; 16], &wrapped)).unwrap(), [9; 32]);
        assert!(block_on(keys.unwrap("CUST#bob", &[1; 16], &wrapped)).is_err());
        assert!(block_on(keys.unwrap("CUST#alice", &[2; 16], &wrapped)).is_err());
    }

    #[test]
    fn after_rotation_the_newest_key_wraps_and_the_old_one_still_unwraps() {
        let old_line = LocalMasterKeys::new_line("m1");
        let old = LocalMasterKeys::parse(&old_line).unwrap();
        let wrapped_before = block_on(old.wrap("CUST#alice", &[1; 16], &material())).unwrap();
        let rotated = LocalMasterKeys::parse(&format!("# rotated\n{old_line}\n\n{}\n", LocalMasterKeys::new_line("m2"))).unwrap();
        assert_eq!(*block_on(rotated.unwrap("CUST#alice", &[1; 16], &wrapped_before)).unwrap(), [9; 32]);
        let wrapped_after = block_on(rotated.wrap("CUST#alice", &[1; 16], &material())).unwrap();
        assert_eq!(wrapped_after.master_key_id, "m2");
        let error = block_on(old.unwrap("CUST#alice", &[1; 16], &wrapped_after)).unwrap_err();
        assert!(matches!(error, Error::Config(_)), "a key wrapped by an unlisted master key: {error:?}");
    }

    #[test]
    fn a_bad_key_file_is_a_configuration_error() {
        for text in ["", "# nothing", "m1", "m1 not-base64!", "m1 AAAA"] {
            assert!(matches!(LocalMasterKeys::parse(text), Err(Error::Config(_))), "{text:?}");
        }
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let line = LocalMasterKeys::new_line("m1");
        let shown = format!("{:?}", LocalMasterKeys::parse(&line).unwrap());
        assert_eq!(shown, r#"["m1"]"#);
    }
}
