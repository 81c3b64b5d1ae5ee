//! Passing a request on and its answer back, as the local proxies do (to DynamoDB Local) and
//! the gateway does (to a session's home region).
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
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
    let (status, headers, body) = pass_on(client, method, &format!("{upstream}{path}"), headers.clone(), body).await?;
    let mut response = answer(status, body);
    response.headers_mut().extend(headers);
    Ok(response)
}

/// One HTTP exchange passed on: the request to `url` with `headers` less the hop-by-hop ones,
/// and the answer's status, end-to-end headers and body.
pub async fn pass_on(
    client: &reqwest::Client,
    method: &Method,
    url: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Bytes), reqwest::Error> {
    let upstream = client.request(method.clone(), url).headers(end_to_end(&headers)).body(body).send().await?;
    let status = upstream.status();
    let headers = end_to_end(upstream.headers());
    Ok((status, headers, upstream.bytes().await?))
}

/// `headers` less the ones that belong to one connection.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for (name, value) in headers.iter().filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str())) {
        kept.append(name.clone(), value.clone());
    }
    kept
}

/// An answer in DynamoDB's content type.
pub fn answer(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/x-amz-json-1.0"));
    response
}
