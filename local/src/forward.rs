//! Passing a request on to DynamoDB (Local) and its answer back, as the local proxies do.
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

/// Headers that belong to one connection, never forwarded.
const HOP_BY_HOP: [&str; 6] = ["connection", "keep-alive", "transfer-encoding", "te", "upgrade", "content-length"];

/// Sends `body` to `upstream` + `path` with the caller's headers (less the hop-by-hop ones),
/// and returns DynamoDB's answer with its status and headers.
pub async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, reqwest::Error> {
    let mut outgoing = HeaderMap::new();
    for (name, value) in headers.iter().filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str())) {
        outgoing.append(name.clone(), value.clone());
    }
    let upstream = client.request(method.clone(), format!("{upstream}{path}")).headers(outgoing).body(body).send().await?;
    let status = upstream.status();
    let headers: Vec<(HeaderName, HeaderValue)> = upstream
        .headers()
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let body = upstream.bytes().await?;
    let mut response = answer(status, body);
    response.headers_mut().extend(headers);
    Ok(response)
}

/// An answer in DynamoDB's content type.
pub fn answer(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/x-amz-json-1.0"));
    response
}
