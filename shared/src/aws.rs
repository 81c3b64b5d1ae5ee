//! The AWS SDK configuration that a function's clients share: loaded once at init, so that
//! DynamoDB and Secrets Manager use one credentials chain and one HTTP client.
//!
//! Its HTTP client is the SDK's own (hyper 1 with rustls on aws-lc), trusting Mozilla's root
//! certificates compiled in (`webpki-root-certs`), not the machine's: the SDK otherwise reads
//! every file of the system's certificate directories when a client is built, which was
//! about half of a function's cold init (`make bench`, P1; bench/README.md).
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The SDK's configuration from the environment (`AWS_REGION`, credentials, endpoint
/// overrides such as `AWS_ENDPOINT_URL_DYNAMODB`), with [`http_client`].
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client()).load().await
}

/// The SDK's default HTTPS client, trusting the compiled-in roots alone.
pub fn http_client() -> SharedHttpClient {
    let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .fold(TrustStore::empty(), |roots, certificate| roots.with_pem_certificate(pem(certificate)));
    // Building a context cannot fail; if it ever did, the machine's roots are the default.
    let context = TlsContext::builder().with_trust_store(roots).build().unwrap_or_default();
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}

/// A DER certificate as PEM, the form the SDK's trust store takes.
fn pem(der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut pem = String::with_capacity(encoded.len() + encoded.len() / 64 + 64);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compiled_in_root_reads_back_from_its_pem_as_the_same_certificate() {
        assert!(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() > 100);
        for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            let pem = pem(der);
            let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
            assert!(pem.lines().all(|line| line.len() <= 64));
            assert_eq!(STANDARD.decode(body).unwrap(), der.as_ref());
        }
    }
}
