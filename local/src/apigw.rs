//! API Gateway HTTP API (payload 2.0) events, built from the library's own types.
use std::collections::HashMap;

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription, ApiGatewayV2httpRequest,
    ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription,
};
use aws_lambda_events::http::{HeaderMap, Method};
use aws_lambda_events::query_map::QueryMap;
use serde_json::Value;
use tidewater::Caller;

/// One HTTP request as the gateway received it.
pub struct HttpRequest<'a> {
    pub method: &'a str,
    pub route_path: &'a str,
    pub path: &'a str,
    pub raw_query: &'a str,
    pub path_parameters: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Option<String>,
    pub request_id: String,
}

/// The event API Gateway hands the function, with the verified claims where its JWT
/// authorizer puts them: every value a string, arrays rendered as `[a b]`.
pub fn request_event(request: HttpRequest<'_>, claims: Option<&serde_json::Map<String, Value>>) -> ApiGatewayV2httpRequest {
    let route_key = format!("{} {}", request.method, request.route_path);
    let method = Method::from_bytes(request.method.as_bytes()).unwrap_or(Method::GET);

    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = method;
    http.path = Some(request.path.to_owned());
    http.protocol = Some("HTTP/1.1".to_owned());
    http.source_ip = Some("127.0.0.1".to_owned());
    http.user_agent = request.headers.get("user-agent").and_then(|v| v.to_str().ok()).map(str::to_owned);

    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(route_key.clone());
    context.account_id = Some("123456789012".to_owned());
    context.apiid = Some("local".to_owned());
    context.stage = Some("$default".to_owned());
    context.domain_name = Some("localhost".to_owned());
    context.request_id = Some(request.request_id);
    context.time_epoch = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    context.http = http;
    context.authorizer = claims.map(|claims| {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = claims.iter().map(|(k, v)| (k.clone(), render_claim(v))).collect();
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        authorizer
    });

    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".to_owned());
    event.route_key = Some(route_key);
    event.raw_path = Some(request.path.to_owned());
    event.raw_query_string = Some(request.raw_query.to_owned());
    event.query_string_parameters = request.raw_query.parse::<QueryMap>().unwrap_or_default();
    event.path_parameters = request.path_parameters.into_iter().collect::<HashMap<_, _>>();
    event.headers = request.headers;
    event.request_context = context;
    event.body = request.body;
    event.is_base64_encoded = false;
    event
}

/// The event of a request by `caller` on `route` (such as `/sessions/{id}/turns`) at
/// `path`, with the claims a local token for the caller would carry. For tests and benchmarks.
pub fn caller_event(
    caller: &Caller,
    method: &str,
    route: &str,
    path: &str,
    raw_query: &str,
    body: Option<String>,
) -> ApiGatewayV2httpRequest {
    let path_parameters = route
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(pattern, actual)| {
            let name = pattern.strip_prefix('{')?.strip_suffix('}')?;
            Some((name.to_owned(), actual.to_owned()))
        })
        .collect();
    let claims = serde_json::json!({
        "sub": caller.customer_id,
        "cognito:groups": caller.roles,
        "iss": crate::gateway::ISSUER,
        "aud": crate::gateway::AUDIENCE,
    });
    let mut headers = HeaderMap::new();
    headers.insert("content-type", aws_lambda_events::http::HeaderValue::from_static("application/json"));
    request_event(
        HttpRequest {
            method,
            route_path: route,
            path,
            raw_query,
            path_parameters,
            headers,
            body,
            request_id: uuid::Uuid::new_v4().to_string(),
        },
        claims.as_object(),
    )
}

/// How the HTTP API's JWT authorizer renders a claim value.
pub fn render_claim(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(render_claim).collect::<Vec<_>>().join(" ")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_render_as_api_gateway_does() {
        assert_eq!(render_claim(&json!(["support", "privacy"])), "[support privacy]");
        assert_eq!(render_claim(&json!(1_700_000_000)), "1700000000");
        assert_eq!(render_claim(&json!("alice")), "alice");
    }

    #[test]
    fn the_event_parses_as_lambda_http_would() {
        let claims = json!({"sub": "alice", "cognito:groups": ["support"]});
        let event = request_event(
            HttpRequest {
                method: "GET",
                route_path: "/sessions/{id}/context",
                path: "/sessions/abc/context",
                raw_query: "max_turns=5",
                path_parameters: vec![("id".into(), "abc".into())],
                headers: HeaderMap::new(),
                body: None,
                request_id: "req-1".into(),
            },
            claims.as_object(),
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["requestContext"]["authorizer"]["jwt"]["claims"]["cognito:groups"], "[support]");
        assert_eq!(json["pathParameters"]["id"], "abc");
        assert_eq!(json["queryStringParameters"]["max_turns"], "5");
    }
}
