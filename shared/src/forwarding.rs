//! The functions' one hop to a request's home region, for multi-region on AWS, where API
//! Gateway calls a region's function directly and no gateway of ours stands in front of it.
//!
//! Every HTTP function runs through [`run`]. Without `REGIONS` it is `lambda_http::run` and
//! nothing here runs. With `REGIONS`, each request is first put to [`routing::decide`] (the
//! rule the local gateway applies too): at home it is served here; elsewhere it is sent once,
//! whole (method, raw path and query, headers with `Authorization`, body), to the home's API
//! named in `REGION_APIS`, marked [`FORWARDED_FROM`], and the home's answer is returned as it
//! is (status, headers, body) with [`SERVED_BY`]. When the home cannot be reached (connection
//! refused, [`FORWARD_TIMEOUT_MS`](DEFAULT_FORWARD_TIMEOUT) passed, a 5xx that is not a
//! function's answer, or no API named for it) a read is served from this region's replica
//! marked [`STALE`] without an `ETag` (a 404 there becomes a 503 `home_unavailable`: the
//! replica cannot vouch for an absence), and anything else is a 503: `home_timeout` ("may have
//! been applied") when the home did not answer in time, `home_unavailable` otherwise.
//!
//! **The bound on a hop is the function's own** ([`run_within`]): 2 s for every function but
//! PurgeCustomer, whose home waits out key leases (3.5 s) before its receipt
//! ([`PURGE_FORWARD_TIMEOUT`]); `FORWARD_TIMEOUT_MS`, which the template sets per function,
//! overrides it.
//!
//! **Why [`FORWARDED_FROM`] needs no authentication.** Its only effect is that a region which
//! is not the request's home refuses it (503 `home_moved`) instead of forwarding it; a region
//! that is home serves it exactly as it serves an unmarked request, after the same JWT
//! authorizer. So a client that sets it can only get its own request refused, never make a
//! region serve what it should not, nor skip a check.
//!
//! **A lost answer.** If the home acted and its answer was lost on the way back (a timeout
//! after the write), the client gets a 503 and retries: every write is idempotent (an append
//! by its `response_id`, a create by its session id, deletes and purges by nature), so the
//! retry finds what the first attempt did.
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lambda_http::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{service_fn, Body, Request, RequestExt, Response};

use crate::home::HomeSource;
use crate::http::{claims, json, path_param, RETRY_AFTER_SECONDS};
use crate::metrics::{Metrics, Unit};
use crate::routing::{self, Asked, Refusal, Serve, FORWARDED_FROM, SERVED_BY, STALE};
use crate::{positive_number, region_urls, Error};

/// `FORWARD_TIMEOUT_MS` when unset: the bound on one hop, answer included. LoadContext, the
/// shortest-lived function a read reaches, has 3 s (template.yaml); 2 s leaves it a second to
/// serve the read from its own replica when the home does not answer in time.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_millis(2_000);

/// PurgeCustomer's bound on a hop when `FORWARD_TIMEOUT_MS` is unset: above a purge at its
/// home, which always waits out key leases ([`crate::crypto::MAX_KEY_LEASE`] and
/// [`crate::store::KEY_LEASE_MARGIN`], 3.5 s) after its calls, and below API Gateway's 30 s
/// integration limit, in both regions.
pub const PURGE_FORWARD_TIMEOUT: Duration = Duration::from_millis(25_000);

/// Headers that belong to one connection (or that the next hop sets itself), never passed on.
const HOP_BY_HOP: [&str; 7] = ["connection", "keep-alive", "transfer-encoding", "te", "upgrade", "content-length", "host"];

type HttpsClient = Client<HttpsConnector<HttpConnector>, Body>;

/// This region's place among the regions, and the one client its hops share.
pub struct Forwarding {
    here: String,
    homes: HomeSource,
    /// Every region's API base URL (`https://<id>.execute-api.<region>.amazonaws.com`).
    apis: BTreeMap<String, String>,
    timeout: Duration,
    /// Built on the first hop, so that cold init does not grow.
    client: OnceLock<Result<HttpsClient, String>>,
}

impl Forwarding {
    pub fn new(here: impl Into<String>, homes: HomeSource, apis: BTreeMap<String, String>, timeout: Duration) -> Forwarding {
        let apis = apis.into_iter().map(|(region, url)| (region, url.trim_end_matches('/').to_owned())).collect();
        Forwarding { here: here.into(), homes, apis, timeout, client: OnceLock::new() }
    }

    /// From `REGIONS` (with `HOME_MAP` or `HOME_MAP_FILE`), `AWS_REGION`, `REGION_APIS`
    /// (`region=url,...`) and `FORWARD_TIMEOUT_MS` ([`DEFAULT_FORWARD_TIMEOUT`] when unset);
    /// `None` without `REGIONS`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Forwarding>, Error> {
        Forwarding::from_lookup_within(lookup, DEFAULT_FORWARD_TIMEOUT)
    }

    /// As [`Forwarding::from_lookup`], with `timeout` when `FORWARD_TIMEOUT_MS` is unset.
    pub fn from_lookup_within(lookup: impl Fn(&str) -> Option<String>, timeout: Duration) -> Result<Option<Forwarding>, Error> {
        let Some(homes) = HomeSource::from_lookup(&lookup).map_err(Error::Config)? else { return Ok(None) };
        let here = lookup("AWS_REGION").filter(|r| !r.is_empty());
        let here = here.ok_or_else(|| Error::Config("REGIONS is set but AWS_REGION is not".to_owned()))?;
        let apis = region_urls("REGION_APIS", lookup("REGION_APIS").as_deref().unwrap_or_default())?;
        let timeout = positive_number(&lookup, "FORWARD_TIMEOUT_MS", timeout.as_millis() as u64)?;
        Ok(Some(Forwarding::new(here, homes, apis, Duration::from_millis(timeout))))
    }

    /// Serves `request` as its home region would: `here` runs it in this region when this
    /// region serves it; otherwise it is forwarded, or refused.
    pub async fn serve<F, Fut, E>(&self, request: Request, here: F) -> Result<Response<Body>, E>
    where
        F: FnOnce(Request) -> Fut,
        Fut: Future<Output = Result<Response<Body>, E>>,
    {
        let Some(route_path) = route_path(&request) else { return here(request).await };
        let parameters: Vec<(String, String)> = request
            .path_parameters_ref()
            .map(|p| p.iter().filter_map(|(name, _)| Some((name.to_owned(), path_param(&request, name)?))).collect())
            .unwrap_or_default();
        let claims = claims(&request);
        let customer_id = claims.and_then(|c| c.get("sub")).map(String::as_str).unwrap_or_default();
        let groups = claims.and_then(|c| c.get("cognito:groups")).map(|g| routing::parse_groups(g)).unwrap_or_default();
        let asked = Asked {
            read: request.method() == lambda_http::http::Method::GET,
            route_path: &route_path,
            parameters: &parameters,
            customer_id,
            groups: &groups,
            body: request.body().as_ref(),
            forwarded: request.headers().contains_key(FORWARDED_FROM),
        };
        let homes = self.homes.homes();
        if let Err(message) = &homes {
            tracing::error!(%message, "the home map cannot be read");
        }
        let decided = routing::decide(&self.here, homes.as_ref().map_err(String::as_str), &asked);
        let read = asked.read;
        let decided = match decided {
            Serve::Forward(home) => match self.forward(&home, &request).await {
                Ok(answer) => return Ok(answer),
                Err(missed) => routing::unreachable(read, missed == Missed::TimedOut),
            },
            other => other,
        };
        match decided {
            Serve::Refuse(refusal) => Ok(refused(refusal)),
            Serve::HereStale => {
                let mut request = request;
                request.headers_mut().remove(header::IF_NONE_MATCH);
                let mut answer = here(request).await?;
                if let Some(refusal) = routing::stale_refusal(answer.status().as_u16()) {
                    return Ok(refused(refusal));
                }
                mark_stale(answer.headers_mut());
                Ok(answer)
            }
            Serve::Here | Serve::Forward(_) => here(request).await,
        }
    }

    /// The home's answer to `request`, or why there is none.
    async fn forward(&self, home: &str, request: &Request) -> Result<Response<Body>, Missed> {
        let Some(api) = self.apis.get(home) else {
            tracing::error!(target_region = home, "REGION_APIS names no API for this request's home");
            return Err(Missed::Unreachable);
        };
        let started = Instant::now();
        let exchange = tokio::time::timeout(self.timeout, self.exchange(api, request));
        let answer = match exchange.await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(message)) => {
                tracing::warn!(target_region = home, %message, "forwarding failed");
                Err(Missed::Unreachable)
            }
            Err(_) => {
                tracing::warn!(target_region = home, timeout_ms = self.timeout.as_millis() as u64, "forwarding timed out");
                Err(Missed::TimedOut)
            }
        };
        let answer = answer.and_then(|(status, headers, body)| {
            if region_failed(status, &body) {
                Err(Missed::Unreachable)
            } else {
                Ok((status, headers, body))
            }
        });
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let status = answer.as_ref().map(|(status, _, _)| status.as_u16()).unwrap_or_default();
        tracing::info!(target_region = home, status, latency_ms, reached = answer.is_ok(), "forwarded to the home region");
        let metric = match answer {
            Ok(_) => "Forwards",
            Err(Missed::Unreachable) => "ForwardsUnreachable",
            Err(Missed::TimedOut) => "ForwardsTimedOut",
        };
        Metrics::new("forwarding").count(metric, 1).add("ForwardLatency", latency_ms, Unit::Milliseconds).emit();
        let (status, headers, body) = answer?;
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        if let Ok(region) = HeaderValue::from_str(home) {
            response.headers_mut().insert(SERVED_BY, region);
        }
        Ok(response)
    }

    /// One exchange with the home's API: the request as it came (less its per-connection
    /// headers), marked as forwarded from here; the answer's status, headers and body.
    async fn exchange(&self, api: &str, request: &Request) -> Result<(StatusCode, HeaderMap, Body), String> {
        let client = self.client.get_or_init(https_client).as_ref().map_err(Clone::clone)?;
        let path = Some(request.raw_http_path()).filter(|p| !p.is_empty()).unwrap_or_else(|| request.uri().path());
        let url = match request.uri().query().filter(|q| !q.is_empty()) {
            Some(query) => format!("{api}{path}?{query}"),
            None => format!("{api}{path}"),
        };
        let mut outgoing = lambda_http::http::Request::builder().method(request.method()).uri(url);
        if let Some(headers) = outgoing.headers_mut() {
            *headers = end_to_end(request.headers());
            if let Ok(here) = HeaderValue::from_str(&self.here) {
                headers.insert(FORWARDED_FROM, here);
            }
        }
        let outgoing = outgoing.body(request.body().clone()).map_err(|e| e.to_string())?;
        let answer = client.request(outgoing).await.map_err(|e| e.to_string())?;
        let (parts, body) = answer.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes().to_vec();
        let body = match String::from_utf8(body) {
            Ok(text) if text.is_empty() => Body::Empty,
            Ok(text) => Body::Text(text),
            Err(binary) => Body::Binary(binary.into_bytes()),
        };
        Ok((parts.status, end_to_end(&parts.headers), body))
    }
}

/// Why a hop brought back no answer of the home's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missed {
    /// The home could not be reached, or its front door answered for it: nothing was done.
    Unreachable,
    /// The home did not answer within the bound: it may have acted.
    TimedOut,
}

/// Runs an HTTP function: `lambda_http::run`, with each request first put to the home rule
/// when `REGIONS` is set ([`Forwarding`]), each hop bounded by [`DEFAULT_FORWARD_TIMEOUT`]
/// unless `FORWARD_TIMEOUT_MS` says otherwise. The settings are read once, here.
pub async fn run<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(Request) -> Fut + Sync,
    Fut: Future<Output = Result<Response<Body>, lambda_http::Error>> + Send,
{
    run_within(DEFAULT_FORWARD_TIMEOUT, handler).await
}

/// As [`run`], for a function whose home may take longer than [`DEFAULT_FORWARD_TIMEOUT`]:
/// `timeout` bounds each hop when `FORWARD_TIMEOUT_MS` is unset.
pub async fn run_within<F, Fut>(timeout: Duration, handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(Request) -> Fut + Sync,
    Fut: Future<Output = Result<Response<Body>, lambda_http::Error>> + Send,
{
    let forwarding = Forwarding::from_lookup_within(|name| std::env::var(name).ok(), timeout)?;
    let (forwarding, handler) = (&forwarding, &handler);
    lambda_http::run(service_fn(move |request: Request| async move {
        match forwarding {
            Some(forwarding) => forwarding.serve(request, handler).await,
            None => handler(request).await,
        }
    }))
    .await
}

/// Marks an answer served from this region's replica while its home is unreachable: no
/// `ETag`, so that no client revalidates against it or takes it for the home's, and
/// [`STALE`]`: true`.
pub fn mark_stale(headers: &mut HeaderMap) {
    headers.remove(header::ETAG);
    headers.insert(STALE, HeaderValue::from_static("true"));
}

/// 503 with `Retry-After` and the refusal's `{"code","message"}`.
fn refused(refusal: Refusal) -> Response<Body> {
    let mut response = json(503, &serde_json::json!({"code": refusal.code(), "message": refusal.message()}));
    response.headers_mut().insert(header::RETRY_AFTER, RETRY_AFTER_SECONDS.into());
    response
}

/// The route template of a payload 2.0 request (`routeKey` is `POST /sessions/{id}/turns`);
/// `None` for `$default` or an event that is not API Gateway's.
fn route_path(request: &Request) -> Option<String> {
    let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else { return None };
    let (_, path) = context.route_key.as_deref()?.split_once(' ')?;
    Some(path.to_owned())
}

/// Whether a 5xx came from the home region's front door rather than its function: API
/// Gateway's own errors (`{"message":"Service Unavailable"}`, a timed-out or crashed
/// integration) carry no `code`, and the local gateway of a region that is down answers
/// `region_unavailable`. A function's own 5xx (a 503 `unavailable` among them) is its answer,
/// passed on as it is.
pub fn region_failed(status: StatusCode, body: &Body) -> bool {
    if !status.is_server_error() {
        return false;
    }
    let code = serde_json::from_slice::<serde_json::Value>(body.as_ref())
        .ok()
        .and_then(|body| body.get("code").and_then(serde_json::Value::as_str).map(str::to_owned));
    code.is_none_or(|code| code == "region_unavailable")
}

/// `headers` less the ones that belong to one connection.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for (name, value) in headers.iter().filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str())) {
        kept.append(HeaderName::clone(name), value.clone());
    }
    kept
}

/// An HTTPS (and, for local runs, HTTP) client trusting the compiled-in roots alone, as the
/// SDK's does (`crate::aws`).
fn https_client() -> Result<HttpsClient, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_5xx_that_no_function_gave_means_the_home_is_unreachable() {
        let body = |text: &str| Body::Text(text.to_owned());
        let ours = body(r#"{"code":"unavailable","message":"DynamoDB did not answer"}"#);
        assert!(!region_failed(StatusCode::SERVICE_UNAVAILABLE, &ours), "the home's function answered");
        assert!(region_failed(StatusCode::SERVICE_UNAVAILABLE, &body(r#"{"message":"Service Unavailable"}"#)));
        assert!(region_failed(StatusCode::INTERNAL_SERVER_ERROR, &body(r#"{"message":"Internal Server Error"}"#)));
        assert!(region_failed(StatusCode::BAD_GATEWAY, &Body::Empty));
        assert!(region_failed(StatusCode::SERVICE_UNAVAILABLE, &body(r#"{"code":"region_unavailable","message":"down"}"#)));
        assert!(!region_failed(StatusCode::NOT_FOUND, &body(r#"{"message":"Not Found"}"#)));
    }

    #[test]
    fn a_stale_answer_loses_its_etag_and_says_so() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, HeaderValue::from_static("\"3\""));
        mark_stale(&mut headers);
        assert!(headers.get(header::ETAG).is_none());
        assert_eq!(headers[STALE], "true");
    }

    #[test]
    fn without_regions_nothing_forwards_and_with_them_this_region_must_be_named() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
        };
        assert!(Forwarding::from_lookup(env(&[("REGION_APIS", "a=https://a")])).unwrap().is_none());
        assert!(Forwarding::from_lookup(env(&[("REGIONS", "a,b")])).is_err(), "AWS_REGION is required");
        let forwarding =
            Forwarding::from_lookup(env(&[("REGIONS", "a,b"), ("AWS_REGION", "b"), ("REGION_APIS", "a=https://a.example/, b=https://b")]))
                .unwrap()
                .unwrap();
        assert_eq!((forwarding.apis["a"].as_str(), forwarding.timeout), ("https://a.example", DEFAULT_FORWARD_TIMEOUT));
        assert!(Forwarding::from_lookup(env(&[("REGIONS", "a"), ("AWS_REGION", "a"), ("REGION_APIS", "nonsense")])).is_err());
        // A function's own bound when FORWARD_TIMEOUT_MS is unset, which it overrides.
        let purging = Forwarding::from_lookup_within(env(&[("REGIONS", "a"), ("AWS_REGION", "a")]), PURGE_FORWARD_TIMEOUT).unwrap().unwrap();
        assert_eq!(purging.timeout, PURGE_FORWARD_TIMEOUT);
        let set = env(&[("REGIONS", "a"), ("AWS_REGION", "a"), ("FORWARD_TIMEOUT_MS", "900")]);
        assert_eq!(Forwarding::from_lookup_within(set, PURGE_FORWARD_TIMEOUT).unwrap().unwrap().timeout, Duration::from_millis(900));
    }

    #[test]
    fn a_purges_hop_outlasts_the_key_leases_its_home_waits_out() {
        let waited = crate::crypto::MAX_KEY_LEASE + crate::store::KEY_LEASE_MARGIN;
        assert!(PURGE_FORWARD_TIMEOUT > waited + Duration::from_secs(5), "{PURGE_FORWARD_TIMEOUT:?} against {waited:?}");
        assert!(PURGE_FORWARD_TIMEOUT < Duration::from_secs(29), "below API Gateway's 30 s in the home and here");
    }
}
