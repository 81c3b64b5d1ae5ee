//! The local HTTP API: routes from `template.yaml`, a JWT authorizer like the deployed
//! HttpApi's (HS256 with the run's secret, see [`crate::run_secret`], issuer `tidewater-local`,
//! audience `tidewater`, `exp` and `nbf` checked, the `Bearer` scheme in any case), path
//! parameters percent-decoded as API Gateway decodes them, and each request handed to its
//! function through `cargo lambda watch`. Every answer of its own is `{"code","message"}` JSON:
//! 421 for a `Host` that is not a loopback name (so a web page cannot reach it through DNS
//! rebinding), 404 for an unknown path, 405 with `Allow` for a method the path lacks (API
//! Gateway answers that 404), 401 for a missing or invalid token, 413 for a body over
//! Lambda's 6 MiB.
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body as EventBody;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Map, Value};
use tidewater::routing::{self, Asked, Serve};
use uuid::Uuid;

use crate::apigw::{request_event, HttpRequest};
use crate::homing::{forward, marked_stale, Regions, FORWARDED_FROM};
use crate::template::{find_route, Route};

pub const ISSUER: &str = "tidewater-local";
pub const AUDIENCE: &str = "tidewater";
/// The largest request body: Lambda's limit on a synchronous invocation's payload.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

pub struct Gateway {
    pub routes: Vec<Route>,
    pub secret: String,
    pub invoke_url: String,
    pub client: reqwest::Client,
    /// With `make run REGIONS=...`: the replicator's `GET /regions/<region>` for this gateway's
    /// region. While it answers `"down": true`, every request is answered 503.
    pub region_status: Option<String>,
    /// With `make run REGIONS=...`: the other regions, and which one is home to a request.
    /// A request whose home is elsewhere is forwarded there ([`crate::homing`]).
    pub regions: Option<Regions>,
}

impl Gateway {
    pub fn new(routes: Vec<Route>, secret: String, invoke_url: String) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(300)).build().unwrap_or_default();
        Gateway { routes, secret, invoke_url: invoke_url.trim_end_matches('/').to_owned(), client, region_status: None, regions: None }
    }

    /// Answers 503 while the replicator at `url` (its `GET /regions/<region>`) says the region is down.
    pub fn with_region_status(self, url: Option<String>) -> Self {
        Gateway { region_status: url, ..self }
    }

    /// Forwards each request whose home is another region there ([`crate::homing`]).
    pub fn with_regions(self, regions: Option<Regions>) -> Self {
        Gateway { regions, ..self }
    }

    /// Whether the replicator says this region is down.
    async fn region_down(&self) -> bool {
        match &self.region_status {
            Some(url) => self.down(url).await,
            None => false,
        }
    }

    /// Whether the replicator's `GET /regions/<region>` at `url` says the region is down. An
    /// unreachable replicator is not an outage: `make run` stops every stack when it ends.
    async fn down(&self, url: &str) -> bool {
        let asked = self.client.get(url).timeout(Duration::from_secs(1)).send().await;
        let Ok(answer) = asked else { return false };
        answer.json::<Value>().await.is_ok_and(|status| status["down"] == Value::Bool(true))
    }

    pub fn router(self) -> axum::Router {
        let gateway = Arc::new(self);
        axum::Router::new().fallback(move |request: Request| {
            let gateway = Arc::clone(&gateway);
            async move {
                let (parts, body) = request.into_parts();
                if !loopback_host(&parts.headers) {
                    return error(
                        StatusCode::MISDIRECTED_REQUEST,
                        "misdirected_request",
                        "the local API answers only to localhost, 127.0.0.1 or [::1]",
                    );
                }
                let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
                    return too_large();
                }
                match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
                    Ok(body) => gateway.handle(parts.method, parts.uri, parts.headers, body).await,
                    Err(_) => too_large(),
                }
            }
        })
    }

    async fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        if self.region_down().await {
            return unavailable("region_unavailable", "this region is down");
        }
        let path = uri.path();
        let Some((route, path_parameters)) = find_route(&self.routes, method.as_str(), path) else {
            return self.no_route(path);
        };
        let path_parameters: Vec<(String, String)> = path_parameters.into_iter().map(|(name, value)| (name, percent_decoded(value))).collect();
        let claims = match self.verify(&headers) {
            Ok(claims) => claims,
            Err(message) => return error(StatusCode::UNAUTHORIZED, "unauthorized", &message),
        };
        let mut headers = headers;
        let mut stale = false;
        if let Some(regions) = &self.regions {
            let groups = routing::claim_groups(claims.get("cognito:groups"));
            let asked = Asked {
                read: method == Method::GET,
                route_path: &route.path,
                parameters: &path_parameters,
                customer_id: claims.get("sub").and_then(Value::as_str).unwrap_or_default(),
                groups: &groups,
                body: &body,
                forwarded: headers.contains_key(FORWARDED_FROM),
            };
            let homes = regions.homes.homes();
            if let Err(message) = &homes {
                eprintln!("gateway: the home map: {message}");
            }
            let decided = match routing::decide(&regions.here, homes.as_ref().map_err(String::as_str), &asked) {
                Serve::Forward(home) => match self.forward_home(regions, &home, &method, &uri, &headers, &body).await {
                    Some(response) => return response,
                    // Nothing came back from the home within the client's own bound (300 s),
                    // so it is taken as not reached.
                    None => routing::unreachable(asked.read, false),
                },
                other => other,
            };
            match decided {
                Serve::Here | Serve::Forward(_) => {}
                Serve::HereStale => {
                    // Served from this region's replica, marked, and never revalidated as complete.
                    headers.remove(header::IF_NONE_MATCH);
                    stale = true;
                }
                Serve::Refuse(refusal) => return unavailable(refusal.code(), refusal.message()),
            }
        }
        let body = match String::from_utf8(body.to_vec()) {
            Ok(text) if text.is_empty() => None,
            Ok(text) => Some(text),
            Err(_) => return error(StatusCode::BAD_REQUEST, "bad_request", "the body must be UTF-8 JSON"),
        };
        let event = request_event(
            HttpRequest {
                method: method.as_str(),
                route_path: &route.path,
                path,
                raw_query: uri.query().unwrap_or_default(),
                path_parameters,
                headers,
                body,
                request_id: Uuid::new_v4().to_string(),
            },
            Some(&claims),
        );
        match self.invoke(&route.function, &event).await {
            Ok(response) if stale => match routing::stale_refusal(response.status_code as u16) {
                Some(refusal) => unavailable(refusal.code(), refusal.message()),
                None => marked_stale(into_http(response)),
            },
            Ok(response) => into_http(response),
            Err(message) => {
                eprintln!("gateway: {} {path}: {message}", method.as_str());
                error(StatusCode::BAD_GATEWAY, "bad_gateway", "the function failed to answer")
            }
        }
    }

    /// The home's answer to a request forwarded there, once; `None` when the home is down (as
    /// the replicator says), has no API named, or does not answer.
    async fn forward_home(
        &self,
        regions: &Regions,
        home: &str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Option<Response> {
        let home_down = match &regions.replication {
            Some(replication) => self.down(&format!("{replication}/regions/{home}")).await,
            None => false,
        };
        let api = regions.apis.get(home).filter(|_| !home_down)?;
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        match forward(&self.client, api, &regions.here, home, (method, path, headers, body.clone())).await {
            Ok(response) => Some(response),
            Err(e) => {
                eprintln!("gateway: forwarding to {home}: {e}");
                None
            }
        }
    }

    /// 405 with `Allow` when the path has routes for other methods, else 404.
    fn no_route(&self, path: &str) -> Response {
        let mut allowed: Vec<&str> = self
            .routes
            .iter()
            .filter(|r| r.matches(&r.method, path).is_some())
            .map(|r| r.method.as_str())
            .collect();
        allowed.sort_unstable();
        allowed.dedup();
        if allowed.is_empty() {
            return error(StatusCode::NOT_FOUND, "not_found", "no route matches this path");
        }
        let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this path does not take this method");
        if let Ok(allow) = allowed.join(", ").parse() {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    }

    fn verify(&self, headers: &HeaderMap) -> Result<Map<String, Value>, String> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or("a bearer token is required")?;
        verify_token(token, &self.secret)
    }

    async fn invoke(&self, function: &str, event: &impl serde::Serialize) -> Result<ApiGatewayV2httpResponse, String> {
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.invoke_url);
        let answer = self.client.post(url).json(event).send().await.map_err(|e| e.to_string())?;
        let text = answer.text().await.map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|_| format!("not an HTTP response: {text}"))
    }
}

/// Checks a token as the HttpApi's JWT authorizer would, and returns its claims.
pub fn verify_token(token: &str, secret: &str) -> Result<Map<String, Value>, String> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = 0;
    jsonwebtoken::decode::<Map<String, Value>>(token, &DecodingKey::from_secret(secret.as_bytes()), &validation)
        .map(|data| data.claims)
        .map_err(|e| format!("invalid token: {e}"))
}

/// Signs a local token for `sub` with the given groups, valid for `lifetime`.
pub fn issue_token(sub: &str, groups: &[String], secret: &str, lifetime: Duration) -> Result<String, String> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "sub": sub,
        "cognito:groups": groups,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + lifetime.as_secs() as i64,
    });
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .map_err(|e| e.to_string())
}

fn into_http(response: ApiGatewayV2httpResponse) -> Response {
    let status = StatusCode::from_u16(response.status_code as u16).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match response.body {
        Some(EventBody::Text(text)) => Body::from(text),
        Some(EventBody::Binary(bytes)) => Body::from(bytes),
        _ => Body::empty(),
    };
    let mut http = Response::builder().status(status).body(body).unwrap_or_default();
    http.headers_mut().extend(response.headers);
    http
}

/// Whether the request names this machine by a loopback name in `Host`: `localhost`, an
/// address in 127.0.0.0/8 or `[::1]`, with or without a port. A missing `Host` is refused too.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((name, rest)) if rest.is_empty() || port(rest) => name,
            _ => return false,
        },
        None => match host.split_once(':') {
            Some((name, rest)) if port(&format!(":{rest}")) => name,
            Some(_) => return false,
            None => host,
        },
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(address) => address.is_loopback(),
        Err(_) => false,
    }
}

/// `:<digits>`, as a port follows a host name.
fn port(text: &str) -> bool {
    text.strip_prefix(':').is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// A path parameter as API Gateway's HTTP API passes it: percent-decoded once. A value that
/// is not UTF-8 once decoded is passed as it came, for the function to refuse.
fn percent_decoded(raw: String) -> String {
    match percent_encoding::percent_decode_str(&raw).decode_utf8() {
        Ok(decoded) => decoded.into_owned(),
        Err(_) => raw,
    }
}

/// 503 with `Retry-After`: nothing was done, and a retry may succeed.
fn unavailable(code: &str, message: &str) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, code, message);
    response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

fn too_large() -> Response {
    error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &format!("the request body is over {MAX_BODY_BYTES} bytes"))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"code": code, "message": message}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_we_issue_verifies_with_its_claims() {
        let token = issue_token("alice", &["support".into()], "s3cret", Duration::from_secs(60)).unwrap();
        let claims = verify_token(&token, "s3cret").unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["cognito:groups"], json!(["support"]));
    }

    #[test]
    fn a_wrong_secret_or_expired_token_is_rejected() {
        let token = issue_token("alice", &[], "s3cret", Duration::from_secs(60)).unwrap();
        assert!(verify_token(&token, "other").is_err());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "a", "iss": ISSUER, "aud": AUDIENCE, "exp": now - 5}),
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert!(verify_token(&expired, "s3cret").is_err());
        let wrong_audience = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "a", "iss": ISSUER, "aud": "other", "exp": now + 60}),
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert!(verify_token(&wrong_audience, "s3cret").is_err());
    }
}

#[cfg(test)]
mod served {
    use super::*;
    use crate::template::Route;

    /// The gateway on a free port, routing one route to a function address where nothing listens.
    async fn gateway() -> String {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        let routes = vec![Route { method: "POST".into(), path: "/sessions".into(), function: "create-session".into() }];
        let gateway = Gateway::new(routes, "s3cret".into(), format!("http://127.0.0.1:{}", closed.unwrap_or(1)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("its address");
        tokio::spawn(async move { axum::serve(listener, gateway.router()).await });
        format!("http://{address}/sessions")
    }

    fn token_with(claims: Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"s3cret")).unwrap()
    }

    #[tokio::test]
    async fn a_region_the_replicator_calls_down_answers_503_with_retry_after() {
        // Given a replicator that says this gateway's region is down,
        let replicator = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let status_url = format!("http://{}/regions/us-east-1", replicator.local_addr().expect("its address"));
        let says_down = axum::Router::new()
            .route("/regions/us-east-1", axum::routing::get(|| async { axum::Json(json!({"down": true})) }));
        tokio::spawn(async move { axum::serve(replicator, says_down).await });
        let routes = vec![Route { method: "POST".into(), path: "/sessions".into(), function: "create-session".into() }];
        let gateway =
            Gateway::new(routes, "s3cret".into(), "http://127.0.0.1:1".into()).with_region_status(Some(status_url));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("its address");
        tokio::spawn(async move { axum::serve(listener, gateway.router()).await });
        // when a request with a valid token arrives,
        let token = issue_token("alice", &[], "s3cret", Duration::from_secs(60)).unwrap();
        let answer =
            reqwest::Client::new().post(format!("http://{address}/sessions")).bearer_auth(token).send().await.unwrap();
        // then it is answered 503, retryable, without reaching a function.
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.headers()["retry-after"], "1");
        assert_eq!(answer.json::<Value>().await.unwrap()["code"], "region_unavailable");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_a_json_413() {
        let url = gateway().await;
        let token = issue_token("alice", &[], "s3cret", Duration::from_secs(60)).unwrap();
        let answer = reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .body(vec![b' '; MAX_BODY_BYTES + 1])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 413);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["code"], "too_large");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    #[tokio::test]
    async fn the_bearer_scheme_is_case_insensitive() {
        let url = gateway().await;
        let token = issue_token("alice", &[], "s3cret", Duration::from_secs(60)).unwrap();
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let answer = reqwest::Client::new()
                .post(&url)
                .header("authorization", format!("{scheme} {token}"))
                .send()
                .await
                .unwrap();
            // Past the authorizer, the request reaches the (absent) function: 502, not 401.
            assert_eq!(answer.status(), 502, "{scheme}");
        }
        let answer = reqwest::Client::new().post(&url).header("authorization", format!("Basic {token}")).send().await.unwrap();
        assert_eq!(answer.status(), 401);
    }

    #[tokio::test]
    async fn a_token_not_yet_valid_is_rejected() {
        let url = gateway().await;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = |nbf: i64| json!({"sub": "a", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "nbf": nbf});
        let early = reqwest::Client::new().post(&url).bearer_auth(token_with(claims(now + 300))).send().await.unwrap();
        assert_eq!(early.status(), 401);
        let body: Value = early.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized");
        let valid = reqwest::Client::new().post(&url).bearer_auth(token_with(claims(now - 5))).send().await.unwrap();
        assert_eq!(valid.status(), 502);
    }

    #[tokio::test]
    async fn a_method_the_path_lacks_is_405_with_allow_and_an_unknown_path_is_404() {
        let url = gateway().await;
        let answer = reqwest::Client::new().request(reqwest::Method::TRACE, &url).send().await.unwrap();
        assert_eq!(answer.status(), 405);
        assert_eq!(answer.headers()["allow"], "POST");
        let answer = reqwest::Client::new().get(format!("{url}/nowhere")).send().await.unwrap();
        assert_eq!(answer.status(), 404);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["code"], "not_found");
    }

    #[tokio::test]
    async fn a_host_that_is_not_a_loopback_name_is_refused() {
        let url = gateway().await;
        let token = issue_token("alice", &[], "s3cret", Duration::from_secs(60)).unwrap();
        for host in ["evil.example", "evil.example:3000", "10.0.0.7", "localhost.evil.example", "[::2]:3000", "127.0.0.1:x"] {
            let answer =
                reqwest::Client::new().post(&url).bearer_auth(&token).header("host", host).send().await.unwrap();
            assert_eq!(answer.status(), 421, "{host}");
            let body: Value = answer.json().await.unwrap();
            assert_eq!(body["code"], "misdirected_request");
        }
        for host in ["localhost", "LOCALHOST:3000", "127.0.0.1:3000", "127.1.2.3", "[::1]:3000", "[::1]"] {
            let answer =
                reqwest::Client::new().post(&url).bearer_auth(&token).header("host", host).send().await.unwrap();
            // Past the host check and the authorizer, the (absent) function: 502.
            assert_eq!(answer.status(), 502, "{host}");
        }
    }

    #[test]
    fn path_parameters_are_percent_decoded_once() {
        assert_eq!(percent_decoded("auth0%7C42".into()), "auth0|42");
        assert_eq!(percent_decoded("a%25252F".into()), "a%252F");
        assert_eq!(percent_decoded("plain".into()), "plain");
        assert_eq!(percent_decoded("%FF".into()), "%FF");
    }
}
