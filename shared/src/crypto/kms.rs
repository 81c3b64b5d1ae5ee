//! Data keys wrapped by a KMS key (feature `kms`, `KMS_KEY_ID`): one Encrypt when a key is
//! created, one Decrypt on a cache miss. The key reference and generation are the
//! encryption context, so a wrapped key moved to another key item does not unwrap. KMS
//! rotation is transparent: the ciphertext names its key version, and Decrypt finds it.
//!
//! A KMS that fails or does not answer is [`Error::Unavailable`] (the store gives each call
//! its write deadline): a retryable 503. A wrapped key that KMS refuses as not its own or not
//! for this context (moved to another key item, changed) is corrupt, not retryable.
//!
//! Tested against the local KMS stand-in (`tidewater_local::kms`), by endpoint:
//! `tests/kms.rs`.
use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use zeroize::Zeroizing;

use super::{CryptoError, Generation, KeyMaterial, KeyWrapper, WrappedKey};
use crate::Error;

/// A KMS key that wraps data keys.
#[derive(Debug, Clone)]
pub struct KmsWrapper {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsWrapper {
    pub fn new(shared: &aws_config::SdkConfig, key_id: String) -> KmsWrapper {
        KmsWrapper { client: aws_sdk_kms::Client::new(shared), key_id }
    }
}

fn context(key_ref: &str, generation: &Generation) -> [(String, String); 2] {
    [
        ("tidewater_key".to_owned(), key_ref.to_owned()),
        ("generation".to_owned(), base64::engine::general_purpose::STANDARD.encode(generation)),
    ]
}

impl KeyWrapper for KmsWrapper {
    async fn wrap(&self, key_ref: &str, generation: &Generation, material: &KeyMaterial) -> Result<WrappedKey, Error> {
        let mut request = self.client.encrypt().key_id(&self.key_id).plaintext(Blob::new(material.to_vec()));
        for (name, value) in context(key_ref, generation) {
            request = request.encryption_context(name, value);
        }
        let output = request.send().await.map_err(Error::unavailable)?;
        let blob = output.ciphertext_blob.ok_or(CryptoError::Seal)?.into_inner();
        Ok(WrappedKey { master_key_id: output.key_id.unwrap_or_else(|| self.key_id.clone()), blob })
    }

    async fn unwrap(&self, key_ref: &str, generation: &Generation, wrapped: &WrappedKey) -> Result<KeyMaterial, Error> {
        let mut request = self.client.decrypt().key_id(&wrapped.master_key_id).ciphertext_blob(Blob::new(wrapped.blob.clone()));
        for (name, value) in context(key_ref, generation) {
            request = request.encryption_context(name, value);
        }
        let output = request.send().await.map_err(|e| match e.as_service_error() {
            Some(refused) if refused.is_invalid_ciphertext_exception() || refused.is_incorrect_key_exception() => CryptoError::Open.into(),
            _ => Error::unavailable(e),
        })?;
        let bytes = Zeroizing::new(output.plaintext.ok_or(CryptoError::Open)?.into_inner());
        let material: [u8; 32] = bytes.as_slice().try_into().map_err(|_| CryptoError::Malformed)?;
        Ok(Zeroizing::new(material))
    }
}
