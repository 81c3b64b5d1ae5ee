//! The API Gateway (HTTP API, payload 2.0) adapter shared by the HTTP functions: who is
//! calling, path and body parsing, and the one mapping from [`Error`] to a status code.
use std::future::Future;
use std::time::Instant;

use lambda_http::http::{header, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;
use uuid::Uuid;

use crate::metrics::{Metrics, Unit};
use crate::{Caller, Error};

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Runs one request: a log span with the request id and operation, the outcome and
/// latency logged once, and any error turned into its `{"code","message"}` response.
pub async fn serve<F>(operation: &'static str, request: &Request, work: F) -> Response<Body>
where
    F: Future<Output = Result<Response<Body>, Error>>,
{
    let request_id = request_id(request);
    // `{id}` is a session id under /sessions; under /customers it is a customer id, never logged.
    let session_id = if request.uri().path().contains("/sessions/") {
        request.path_parameters_ref().and_then(|p| p.first("id")).unwrap_or_default().to_owned()
    } else {
        String::new()
    };
    let span = tracing::info_span!("request", %request_id, operation, %session_id);
    async move {
        let started = Instant::now();
        let response = match work.await {
            Ok(response) => response,
            Err(error) => error_response(&error),
        };
        let status = response.status().as_u16();
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut metrics = Metrics::new(operation).add("HandlerLatency", latency_ms, Unit::Milliseconds);
        if let Some(outcome_metric) = outcome_metric(operation, status) {
            metrics = metrics.count(outcome_metric, 1);
        }
        metrics.emit();
        if status >= 500 {
            tracing::error!(status, latency_ms, outcome = "error", "request failed");
        } else {
            tracing::info!(status, latency_ms, outcome = outcome(status), "request handled");
        }
        response
    }
    .instrument(span)
    .await
}

/// The business metric a response stands for, such as an append or a duplicate.
fn outcome_metric(operation: &str, status: u16) -> Option<&'static str> {
    match (operation, status) {
        ("append-turn", 201) => Some("Appends"),
        ("append-turn", 200) => Some("Duplicates"),
        ("append-turn", 409) => Some("Conflicts"),
        (_, 500..) => Some("ServerErrors"),
        (_, 400..) => Some("ClientErrors"),
        _ => None,
    }
}

fn outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "ok",
        _ => "rejected",
    }
}

pub fn request_id(request: &Request) -> String {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    }
    .or_else(|| request.lambda_context_ref().map(|c| c.request_id.clone()))
    .unwrap_or_default()
}

/// The caller, from the claims the JWT authorizer verified. The functions trust nothing else.
pub fn caller(request: &Request) -> Result<Caller, Error> {
    let claims = claims(request).ok_or(Error::Unauthorized)?;
    let customer_id = claims.get("sub").filter(|s| !s.is_empty()).ok_or(Error::Unauthorized)?;
    let roles = claims.get("cognito:groups").map(|g| parse_groups(g)).unwrap_or_default();
    Ok(Caller::new(customer_id.clone(), roles))
}

/// The claims the JWT authorizer verified, if any.
pub fn claims(request: &Request) -> Option<&std::collections::HashMap<String, String>> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.authorizer.as_ref()?.jwt.as_ref().map(|jwt| &jwt.claims),
        _ => None,
    }
}

pub use crate::routing::parse_groups;

/// A path parameter, percent-decoded. API Gateway's HTTP API hands path parameters over
/// already decoded, and a value without `%` decodes to itself, so this is right for an event
/// from API Gateway as well as for one that carries the raw path segment. A value that would
/// not be UTF-8 once decoded was not percent-encoded text, and is taken as it is. (A customer
/// id that really holds `%XX` cannot be named in a path; it is reached through `/customers/me`.)
pub fn path_param(request: &Request, name: &str) -> Option<String> {
    let raw = request.path_parameters_ref().and_then(|p| p.first(name))?;
    match percent_encoding::percent_decode_str(raw).decode_utf8() {
        Ok(decoded) => Some(decoded.into_owned()),
        Err(_) => Some(raw.to_owned()),
    }
}

/// Customer ids are a token's `sub`; anything longer (in characters) is not one.
pub const MAX_CUSTOMER_ID_LEN: usize = 256;

/// The customer a `/customers/{id}/...` route names: the caller for `me` (or a route without
/// `{id}`, such as `DELETE /customers/me`); `id` itself for the caller, or for a caller `may_act_for_others` allows; 404 for
/// anyone else, as for anything they may not see; 400 for an id no token could carry.
pub fn customer_in_path(
    caller: &Caller,
    request: &Request,
    may_act_for_others: impl Fn(&Caller) -> bool,
) -> Result<String, Error> {
    match path_param(request, "id").as_deref() {
        None | Some("me") => Ok(caller.customer_id.clone()),
        Some(id) if id.is_empty() || id.chars().count() > MAX_CUSTOMER_ID_LEN => {
            Err(Error::BadRequest(format!("a customer id is 1 to {MAX_CUSTOMER_ID_LEN} characters")))
        }
        Some(id) if id == caller.customer_id || may_act_for_others(caller) => Ok(id.to_owned()),
        Some(_) => Err(Error::NotFound),
    }
}

/// A UUID in its hyphenated form only (`8-4-4-4-12` hex digits, either case), as JSON
/// Schema's `format: uuid` has it; the simple, braced and `urn:uuid:` forms are refused.
pub fn parse_uuid(what: &str, raw: &str) -> Result<Uuid, Error> {
    crate::model::hyphenated_uuid(raw).ok_or_else(|| Error::BadRequest(format!("{what} {raw:?} is not a hyphenated UUID")))
}

/// The `{id}` path parameter, which must be a UUID.
pub fn session_id(request: &Request) -> Result<Uuid, Error> {
    parse_uuid("session id", &path_param(request, "id").unwrap_or_default())
}

/// The JSON body, which must be an object whose fields are not `null` (no field of this API
/// is nullable; leave a field out instead). An empty body reads as `{}`.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, Error> {
    let body: &[u8] = request.body().as_ref();
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let serde_json::Value::Object(fields) = &value else {
        return Err(Error::BadRequest("the JSON body must be an object".to_owned()));
    };
    if let Some((name, _)) = fields.iter().find(|(_, v)| v.is_null()) {
        return Err(Error::BadRequest(format!("field {name} must not be null; leave it out instead")));
    }
    serde_json::from_value(value).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))
}

/// A query parameter parsed as `T`, or `default` when absent.
pub fn query_param<T: std::str::FromStr>(request: &Request, name: &str, default: T) -> Result<T, Error> {
    match request.query_string_parameters_ref().and_then(|q| q.first(name)) {
        None => Ok(default),
        Some(raw) => raw.parse().map_err(|_| Error::BadRequest(format!("query parameter {name} is invalid: {raw:?}"))),
    }
}

/// The paging parameters of a listing: `limit` (`default` when absent, 400 outside `1..=max`)
/// and the position its `cursor` names, opened with `key` in the listing's `scope` (400 for a
/// cursor the API did not issue for it); no cursor is the first page.
pub fn page_params<P: DeserializeOwned>(
    request: &Request,
    key: &crate::CursorKey,
    scope: &str,
    default: usize,
    max: usize,
) -> Result<(usize, Option<P>), Error> {
    let limit: usize = query_param(request, "limit", default)?;
    if !(1..=max).contains(&limit) {
        return Err(Error::BadRequest(format!("limit must be between 1 and {max}")));
    }
    let cursor: String = query_param(request, "cursor", String::new())?;
    let after = Some(cursor).filter(|c| !c.is_empty()).map(|c| key.open::<P>(scope, &c)).transpose()?;
    Ok((limit, after))
}

pub fn json<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    let body = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::Text(body))
        .unwrap_or_default()
}

pub fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::BadRequest(_) => StatusCode::BAD_REQUEST,
        Error::Unauthorized => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Validation(_) | Error::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::NotFound => StatusCode::NOT_FOUND,
        Error::Conflict(_) | Error::SessionIdUnavailable => StatusCode::CONFLICT,
        Error::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        Error::Unavailable(_) | Error::PurgeFenced | Error::PurgeReplicating(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Corrupt(_) | Error::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
}

pub fn error_response(error: &Error) -> Response<Body> {
    let status = status_of(error);
    if status.is_server_error() {
        let source = std::error::Error::source(error).map(|s| s.to_string()).unwrap_or_default();
        tracing::error!(code = error.code(), %source, "store call failed");
    }
    let mut response = json(status.as_u16(), &ErrorBody { code: error.code(), message: error.to_string() });
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let seconds = match error {
            Error::PurgeReplicating(seconds) => (*seconds).max(1),
            _ => u64::from(RETRY_AFTER_SECONDS),
        };
        response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_read_as_api_gateway_renders_them() {
        assert_eq!(parse_groups("[support privacy]"), ["support", "privacy"]);
        assert_eq!(parse_groups("[guest]"), ["guest"]);
        assert_eq!(parse_groups("support"), ["support"]);
        assert!(parse_groups("[]").is_empty());
        assert!(parse_groups("").is_empty());
    }

    #[test]
    fn a_comma_never_splits_a_group_name() {
        assert_eq!(parse_groups("acme,privacy"), ["acme,privacy"]);
        assert_eq!(parse_groups("[acme,privacy]"), ["acme,privacy"]);
        assert_eq!(parse_groups("[\"acme,privacy\"]"), ["\"acme,privacy\""]);
        assert_eq!(parse_groups("[acme,privacy support]"), ["acme,privacy", "support"]);
    }

    #[test]
    fn a_role_is_granted_only_on_an_exact_group_name() {
        let roles = |rendered: &str| {
            let caller = Caller::new("alice", parse_groups(rendered));
            (caller.is_support(), caller.is_privacy())
        };
        assert_eq!(roles("acme,privacy"), (false, false));
        assert_eq!(roles("[acme,privacy]"), (false, false));
        assert_eq!(roles("[\"acme,privacy\"]"), (false, false));
        assert_eq!(roles("[support privacy]"), (true, true));
        assert_eq!(roles("[\"support\",\"privacy\"]"), (false, false));
        assert_eq!(roles("[Privacy privacy-team \"privacy\"]"), (false, false));
        assert_eq!(roles("[support"), (false, false));
    }

    #[test]
    fn a_group_named_with_quotes_is_that_name_and_grants_no_role() {
        // Cognito group `"privacy"`, quotes included, as the authorizer renders it.
        assert_eq!(parse_groups("[\"privacy\"]"), ["\"privacy\""]);
        assert!(!Caller::new("mallory", parse_groups("[\"privacy\"]")).is_privacy());
        assert!(!Caller::new("mallory", parse_groups("[\"support\" \"privacy\"]")).is_support());
    }

    #[test]
    fn unavailable_is_a_retryable_503() {
        let response = error_response(&Error::Unavailable("down".into()));
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
