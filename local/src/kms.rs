//! A local stand-in of AWS KMS, enough for the `kms` feature's key wrapping
//! (`tidewater::crypto::kms`): one symmetric key, spoken to as KMS is (JSON 1.1 over HTTP,
//! `X-Amz-Target: TrentService.<Operation>`, base64 blobs), so that the SDK's own client runs
//! against it by endpoint.
//!
//! - `Encrypt`, `Decrypt` and `GenerateDataKey`, with the encryption context bound as
//!   AES-GCM's authenticated data: a ciphertext decrypts only with the context it was made
//!   with (`InvalidCiphertextException` otherwise), as in KMS.
//! - Rotation ([`KmsStandIn::rotate`], or `RotateKeyOnDemand`): a new backing key encrypts
//!   from then on; every earlier one still decrypts what it encrypted, since a ciphertext
//!   names the backing key that made it. Nothing a client stored needs rewriting.
//! - [`KmsStandIn::stop_answering`]: requests are accepted and never answered, as a KMS cut
//!   off behind a load balancer would.
//!
//! Not KMS: no key policies, grants, aliases beyond the names given, or signature checks.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

/// The first byte of a stand-in ciphertext.
const BLOB_V1: u8 = 0x4B;
const NONCE_LEN: usize = 12;
const JSON_1_1: &str = "application/x-amz-json-1.1";

/// One KMS key and its backing keys, served over HTTP ([`KmsStandIn::router`]).
#[derive(Clone)]
pub struct KmsStandIn {
    state: Arc<State>,
}

struct State {
    arn: String,
    /// Every name a request may call the key by: its id, its ARN, its aliases.
    names: Vec<String>,
    /// Backing keys by version id, oldest first; the last one encrypts.
    backing: Mutex<Vec<(String, Aes256Gcm)>>,
    answering: AtomicBool,
    calls: AtomicU64,
}

impl std::fmt::Debug for KmsStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsStandIn").field("arn", &self.state.arn).finish_non_exhaustive()
    }
}

/// What a request names: the fields of Encrypt, Decrypt and GenerateDataKey it reads.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Request {
    key_id: Option<String>,
    plaintext: Option<String>,
    ciphertext_blob: Option<String>,
    encryption_context: BTreeMap<String, String>,
    key_spec: Option<String>,
    number_of_bytes: Option<usize>,
}

impl KmsStandIn {
    /// A key with one backing key, called by `key_id`, by its ARN in `region`, or by any of
    /// `aliases` (`alias/...`).
    pub fn new(key_id: &str, region: &str, aliases: &[&str]) -> KmsStandIn {
        let arn = format!("arn:aws:kms:{region}:000000000000:key/{key_id}");
        let names = [key_id, arn.as_str()].into_iter().chain(aliases.iter().copied()).map(str::to_owned).collect();
        let state = State {
            arn,
            names,
            backing: Mutex::new(vec![new_backing_key(1)]),
            answering: AtomicBool::new(true),
            calls: AtomicU64::new(0),
        };
        KmsStandIn { state: Arc::new(state) }
    }

    /// The key's ARN, which every answer names.
    pub fn key_arn(&self) -> &str {
        &self.state.arn
    }

    /// Rotates the key: a new backing key encrypts from now on; the old ones still decrypt.
    pub fn rotate(&self) {
        if let Ok(mut backing) = self.state.backing.lock() {
            let next = backing.len() + 1;
            backing.push(new_backing_key(next));
        }
    }

    /// How many backing keys the key has had (1 before any rotation).
    pub fn backing_keys(&self) -> usize {
        self.state.backing.lock().map(|b| b.len()).unwrap_or_default()
    }

    /// From now on, requests are accepted and never answered.
    pub fn stop_answering(&self) {
        self.state.answering.store(false, Ordering::SeqCst);
    }

    /// Requests answered so far (each is one KMS call, as billed).
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// The HTTP service: `POST /` with the operation in `X-Amz-Target`.
    pub fn router(&self) -> Router {
        let state = Arc::clone(&self.state);
        Router::new().route(
            "/",
            post(move |headers: HeaderMap, body: Bytes| {
                let state = Arc::clone(&state);
                async move { state.answer(&headers, &body).await }
            }),
        )
    }

    /// Serves [`KmsStandIn::router`] on `listener` until the task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }
}

fn new_backing_key(version: usize) -> (String, Aes256Gcm) {
    (format!("v{version}"), Aes256Gcm::new(&Aes256Gcm::generate_key(&mut OsRng)))
}

/// A KMS error answer: HTTP 400 and the exception's name in `__type`, as the SDK reads it.
fn failure(kind: &str, message: &str) -> Response {
    let body = json!({ "__type": kind, "message": message }).to_string();
    (StatusCode::BAD_REQUEST, [("content-type", JSON_1_1)], body).into_response()
}

fn success(body: Value) -> Response {
    (StatusCode::OK, [("content-type", JSON_1_1)], body.to_string()).into_response()
}

impl State {
    async fn answer(&self, headers: &HeaderMap, body: &[u8]) -> Response {
        if !self.answering.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        let target = headers.get("x-amz-target").and_then(|t| t.to_str().ok()).unwrap_or_default();
        let Some(operation) = target.strip_prefix("TrentService.") else {
            return failure("UnknownOperationException", "X-Amz-Target names no TrentService operation");
        };
        let Ok(request) = serde_json::from_slice::<Request>(body) else {
            return failure("SerializationException", "the body is not a JSON request");
        };
        let result = match operation {
            "Encrypt" => self.encrypt(&request),
            "Decrypt" => self.decrypt(&request),
            "GenerateDataKey" => self.generate_data_key(&request),
            "RotateKeyOnDemand" => self.rotate_on_demand(&request),
            _ => Err(("UnsupportedOperationException", format!("{operation} is not served by the stand-in"))),
        };
        match result {
            Ok(body) => success(body),
            Err((kind, message)) => failure(kind, &message),
        }
    }

    fn check_key(&self, key_id: Option<&str>) -> Result<(), (&'static str, String)> {
        match key_id {
            Some(name) if self.names.iter().any(|n| n == name) => Ok(()),
            Some(name) => Err(("NotFoundException", format!("key {name:?} does not exist"))),
            None => Err(("ValidationException", "KeyId is required".to_owned())),
        }
    }

    fn aad(&self, version: &str, context: &BTreeMap<String, String>) -> Vec<u8> {
        let mut aad = Vec::new();
        for part in [self.arn.as_str(), version].into_iter().chain(context.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()])) {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }

    fn seal(&self, plaintext: &[u8], context: &BTreeMap<String, String>) -> Result<Vec<u8>, (&'static str, String)> {
        let backing = self.backing.lock().map_err(|_| ("KMSInternalException", "poisoned".to_owned()))?;
        let (version, cipher) = backing.last().ok_or(("KMSInternalException", "no backing key".to_owned()))?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad: &self.aad(version, context) })
            .map_err(|_| ("KMSInternalException", "encryption failed".to_owned()))?;
        Ok([&[BLOB_V1, version.len() as u8], version.as_bytes(), nonce.as_slice(), &sealed].concat())
    }

    fn encrypt(&self, request: &Request) -> Result<Value, (&'static str, String)> {
        self.check_key(request.key_id.as_deref())?;
        let plaintext = decode(request.plaintext.as_deref(), "Plaintext")?;
        let blob = self.seal(&plaintext, &request.encryption_context)?;
        Ok(json!({ "CiphertextBlob": BASE64.encode(blob), "KeyId": self.arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT" }))
    }

    fn generate_data_key(&self, request: &Request) -> Result<Value, (&'static str, String)> {
        self.check_key(request.key_id.as_deref())?;
        let len = match (request.key_spec.as_deref(), request.number_of_bytes) {
            (Some("AES_256"), None) => 32,
            (Some("AES_128"), None) => 16,
            (None, Some(n)) if (1..=1024).contains(&n) => n,
            _ => return Err(("ValidationException", "give KeySpec (AES_256, AES_128) or NumberOfBytes".to_owned())),
        };
        let mut plaintext = vec![0; len];
        aes_gcm::aead::rand_core::RngCore::fill_bytes(&mut OsRng, &mut plaintext);
        let blob = self.seal(&plaintext, &request.encryption_context)?;
        Ok(json!({ "CiphertextBlob": BASE64.encode(blob), "Plaintext": BASE64.encode(plaintext), "KeyId": self.arn }))
    }

    fn decrypt(&self, request: &Request) -> Result<Value, (&'static str, String)> {
        if let Some(name) = request.key_id.as_deref() {
            if !self.names.iter().any(|n| n == name) {
                return Err(("IncorrectKeyException", format!("the ciphertext was not made by key {name:?}")));
            }
        }
        let invalid = || ("InvalidCiphertextException", "the ciphertext or its encryption context is not valid".to_owned());
        let blob = decode(request.ciphertext_blob.as_deref(), "CiphertextBlob")?;
        let [BLOB_V1, version_len, rest @ ..] = blob.as_slice() else {
            return Err(invalid());
        };
        let version_len = *version_len as usize;
        if rest.len() < version_len + NONCE_LEN {
            return Err(invalid());
        }
        let (version, rest) = rest.split_at(version_len);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let version = std::str::from_utf8(version).map_err(|_| invalid())?;
        let backing = self.backing.lock().map_err(|_| ("KMSInternalException", "poisoned".to_owned()))?;
        let (_, cipher) = backing.iter().find(|(v, _)| v == version).ok_or_else(invalid)?;
        let plaintext = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &self.aad(version, &request.encryption_context) })
            .map_err(|_| invalid())?;
        Ok(json!({ "Plaintext": BASE64.encode(plaintext), "KeyId": self.arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT" }))
    }

    fn rotate_on_demand(&self, request: &Request) -> Result<Value, (&'static str, String)> {
        self.check_key(request.key_id.as_deref())?;
        let mut backing = self.backing.lock().map_err(|_| ("KMSInternalException", "poisoned".to_owned()))?;
        let next = backing.len() + 1;
        backing.push(new_backing_key(next));
        Ok(json!({ "KeyId": self.arn }))
    }
}

fn decode(value: Option<&str>, field: &str) -> Result<Vec<u8>, (&'static str, String)> {
    let value = value.ok_or_else(|| ("ValidationException", format!("{field} is required")))?;
    BASE64.decode(value).map_err(|_| ("ValidationException", format!("{field} is not base64")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(value: Value) -> Request {
        serde_json::from_value(value).unwrap()
    }

    fn context(name: &str) -> Value {
        json!({ "tidewater_key": name })
    }

    #[test]
    fn what_was_encrypted_decrypts_with_its_context_only_and_after_rotation() {
        let kms = KmsStandIn::new("k1", "us-east-1", &["alias/tidewater"]);
        let plaintext = BASE64.encode([7u8; 32]);
        let encrypted = kms
            .state
            .encrypt(&request(json!({"KeyId": "alias/tidewater", "Plaintext": plaintext, "EncryptionContext": context("CUST#a")})))
            .unwrap();
        let blob = encrypted["CiphertextBlob"].as_str().unwrap().to_owned();
        assert_eq!(encrypted["KeyId"], kms.key_arn());
        kms.rotate();
        let opened = kms
            .state
            .decrypt(&request(json!({"KeyId": kms.key_arn(), "CiphertextBlob": blob, "EncryptionContext": context("CUST#a")})))
            .unwrap();
        assert_eq!(opened["Plaintext"], plaintext, "an old backing key still decrypts");
        let moved = kms.state.decrypt(&request(json!({"CiphertextBlob": blob, "EncryptionContext": context("CUST#b")})));
        assert_eq!(moved.unwrap_err().0, "InvalidCiphertextException");
        let other_key = kms.state.decrypt(&request(json!({"KeyId": "k2", "CiphertextBlob": blob, "EncryptionContext": context("CUST#a")})));
        assert_eq!(other_key.unwrap_err().0, "IncorrectKeyException");
    }

    #[test]
    fn after_rotation_the_new_backing_key_encrypts() {
        let kms = KmsStandIn::new("k1", "us-east-1", &[]);
        let encrypt = || {
            let answer = kms.state.encrypt(&request(json!({"KeyId": "k1", "Plaintext": BASE64.encode(b"x")}))).unwrap();
            BASE64.decode(answer["CiphertextBlob"].as_str().unwrap()).unwrap()
        };
        assert_eq!(&encrypt()[2..4], b"v1");
        kms.rotate();
        assert_eq!((&encrypt()[2..4], kms.backing_keys()), (&b"v2"[..], 2));
    }

    #[test]
    fn bad_requests_are_named_as_kms_names_them() {
        let kms = KmsStandIn::new("k1", "us-east-1", &[]);
        assert_eq!(kms.state.encrypt(&request(json!({"KeyId": "nope", "Plaintext": "eA=="}))).unwrap_err().0, "NotFoundException");
        assert_eq!(kms.state.decrypt(&request(json!({"CiphertextBlob": "eA=="}))).unwrap_err().0, "InvalidCiphertextException");
        let key = kms.state.generate_data_key(&request(json!({"KeyId": "k1", "KeySpec": "AES_256"}))).unwrap();
        assert_eq!(BASE64.decode(key["Plaintext"].as_str().unwrap()).unwrap().len(), 32);
    }
}
