//! Sending a request to its home region: the one forwarding hop of the local gateway, which
//! takes a request whose home (by `tidewater::routing`, the rule the functions' own hop on AWS
//! applies too) is another region there, whole, and brings the home's answer back.
//!
//! A forwarded request carries [`FORWARDED_FROM`]; a region that receives one serves it itself
//! when it is home, and answers 503 when it is not (the two regions disagree on the home map,
//! as during a failover): a request is never forwarded twice, so no loop can form.
use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Response};
use tidewater::home::HomeSource;
pub use tidewater::routing::{FORWARDED_FROM, SERVED_BY, STALE};

use crate::forward::pass_on;

/// This gateway's place among the regions.
#[derive(Debug, Clone)]
pub struct Regions {
    /// This region.
    pub here: String,
    /// Every region's API, by name.
    pub apis: BTreeMap<String, String>,
    pub homes: HomeSource,
    /// The replicator's control API, which says which regions are down.
    pub replication: Option<String>,
}

impl Regions {
    /// From `AWS_REGION`, `REGIONS`, `REGION_APIS` (`region=url,...`), `HOME_MAP_FILE` or
    /// `HOME_MAP`, and `REPLICATION_URL`; `None` without `REGIONS`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Regions>, String> {
        let Some(homes) = HomeSource::from_lookup(&lookup)? else { return Ok(None) };
        let here = lookup("AWS_REGION").filter(|r| !r.is_empty()).ok_or("REGIONS is set but AWS_REGION is not")?;
        let apis = tidewater::region_urls("REGION_APIS", &lookup("REGION_APIS").unwrap_or_default())
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(region, url)| (region, url.trim_end_matches('/').to_owned()))
            .collect();
        let replication = lookup("REPLICATION_URL").filter(|u| !u.is_empty()).map(|u| u.trim_end_matches('/').to_owned());
        Ok(Some(Regions { here, apis, homes, replication }))
    }
}

/// Sends the request to `api` as it came (less the per-connection headers and `Host`), marked as
/// forwarded from `here`, and returns the answer as it is, naming the region that served it.
pub async fn forward(
    client: &reqwest::Client,
    api: &str,
    here: &str,
    served_by: &str,
    request: (&Method, &str, &HeaderMap, Bytes),
) -> Result<Response<Body>, reqwest::Error> {
    let (method, path_and_query, headers, body) = request;
    let mut outgoing = headers.clone();
    // The home's own name goes in `Host`, as reqwest sets it.
    outgoing.remove(axum::http::header::HOST);
    if let Ok(value) = HeaderValue::from_str(here) {
        outgoing.insert(FORWARDED_FROM, value);
    }
    let (status, headers, body) = pass_on(client, method, &format!("{api}{path_and_query}"), outgoing, body).await?;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    if let Ok(value) = HeaderValue::from_str(served_by) {
        response.headers_mut().insert(SERVED_BY, value);
    }
    Ok(response)
}

/// A read served from this region's replica while the home is unreachable: marked stale, and
/// with no ETag, so that no client takes it for the home's answer or revalidates against it.
pub fn marked_stale(mut response: Response<Body>) -> Response<Body> {
    tidewater::forwarding::mark_stale(response.headers_mut());
    response
}

#[cfg(test)]
mod served {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::{json, Value};
    use tidewater::home::{self, HomeMap, Homes};

    use super::*;
    use crate::gateway::{issue_token, Gateway};
    use crate::template::Route;

    const EAST: &str = "us-east-1";
    const WEST: &str = "eu-west-1";

    /// A region: its gateway in front of a stand-in function that answers with the region's
    /// name and an ETag (with the status an `x-answer-status` header asks for, else 200),
    /// counting its invocations.
    struct Region {
        api: String,
        invocations: Arc<AtomicUsize>,
    }

    async fn listener() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        (listener, url)
    }

    /// Two regions, `east` and `west`, each knowing the other's API, and a replicator
    /// stand-in that says `down` are down.
    async fn two_regions(down: &'static [&'static str]) -> (Region, Region) {
        two_regions_with(down, HomeMap::default()).await
    }

    async fn two_regions_with(down: &'static [&'static str], map: HomeMap) -> (Region, Region) {
        let (replicator, replication) = listener().await;
        let status = axum::Router::new().route(
            "/regions/{region}",
            axum::routing::get(move |axum::extract::Path(region): axum::extract::Path<String>| async move {
                axum::Json(json!({"region": region, "down": down.contains(&region.as_str())}))
            }),
        );
        tokio::spawn(async move { axum::serve(replicator, status).await });
        let (east_listener, east_api) = listener().await;
        let (west_listener, west_api) = listener().await;
        let apis = BTreeMap::from([(EAST.to_owned(), east_api.clone()), (WEST.to_owned(), west_api.clone())]);
        let mut regions = Vec::new();
        for (name, listener, api) in [(EAST, east_listener, east_api), (WEST, west_listener, west_api)] {
            let invocations = Arc::new(AtomicUsize::new(0));
            let counted = Arc::clone(&invocations);
            let (function, functions) = self::listener().await;
            let answer = axum::Router::new().fallback(move |event: String| {
                counted.fetch_add(1, Ordering::SeqCst);
                let event: Value = serde_json::from_str(&event).unwrap_or_default();
                let status: u16 = event["headers"]["x-answer-status"].as_str().and_then(|s| s.parse().ok()).unwrap_or(200);
                async move {
                    axum::Json(json!({"statusCode": status, "headers": {"etag": "\"1\""}, "multiValueHeaders": {}, "isBase64Encoded": false, "cookies": [], "body": json!({"region": name}).to_string()}))
                }
            });
            tokio::spawn(async move { axum::serve(function, answer).await });
            let routes = vec![
                Route { method: "POST".into(), path: "/sessions/{id}/turns".into(), function: "append-turn".into() },
                Route { method: "GET".into(), path: "/sessions/{id}/context".into(), function: "load-context".into() },
                Route { method: "POST".into(), path: "/sessions".into(), function: "create-session".into() },
            ];
            let homes = HomeSource::Fixed(Homes::new(&format!("{EAST},{WEST}"), map.clone()).unwrap());
            let here = Regions { here: name.to_owned(), apis: apis.clone(), homes, replication: Some(replication.clone()) };
            let gateway = Gateway::new(routes, "s3cret".into(), functions).with_regions(Some(here));
            tokio::spawn(async move { axum::serve(listener, gateway.router()).await });
            regions.push(Region { api, invocations });
        }
        let west = regions.pop().unwrap();
        (regions.pop().unwrap(), west)
    }

    /// A guest session whose home is the east (slot 0).
    fn east_session() -> String {
        home::new_session_id(0).to_string()
    }

    fn token() -> String {
        issue_token("guest-7", &["guest".into()], "s3cret", Duration::from_secs(60)).unwrap()
    }

    #[tokio::test]
    async fn a_request_reaching_another_region_is_forwarded_once_and_answered_by_home() {
        // Given two regions and a session whose home is the east,
        let (east, west) = two_regions(&[]).await;
        let session = east_session();
        // when an append and a load reach the west,
        let client = reqwest::Client::new();
        let append = client.post(format!("{}/sessions/{session}/turns", west.api)).bearer_auth(token()).send().await.unwrap();
        let load = client.get(format!("{}/sessions/{session}/context", west.api)).bearer_auth(token()).send().await.unwrap();
        // then the east's function answered both, once each, and the west's never ran;
        assert_eq!(append.headers()[SERVED_BY], EAST);
        assert_eq!(load.headers()["etag"], "\"1\"", "home's answer, whole");
        assert_eq!(load.json::<Value>().await.unwrap(), json!({"region": EAST}));
        assert_eq!((east.invocations.load(Ordering::SeqCst), west.invocations.load(Ordering::SeqCst)), (2, 0));
        // and a request marked forwarded that reaches a region not its home is refused, not sent on.
        let bounced = client
            .post(format!("{}/sessions/{session}/turns", west.api))
            .bearer_auth(token())
            .header(FORWARDED_FROM, EAST)
            .send()
            .await
            .unwrap();
        assert_eq!(bounced.status(), 503);
        assert_eq!(bounced.json::<Value>().await.unwrap()["code"], "home_moved");
        assert_eq!((east.invocations.load(Ordering::SeqCst), west.invocations.load(Ordering::SeqCst)), (2, 0));
    }

    #[tokio::test]
    async fn a_guest_session_is_made_where_it_lands_unless_every_slot_of_that_region_moved_away() {
        let client = reqwest::Client::new();
        let create = |api: String| client.post(format!("{api}/sessions")).bearer_auth(token()).body("{}").send();
        // Given two regions, a guest's create is made where it lands;
        let (east, _west) = two_regions(&[]).await;
        let made = create(east.api.clone()).await.unwrap();
        assert!(made.headers().get(SERVED_BY).is_none());
        assert_eq!(east.invocations.load(Ordering::SeqCst), 1);
        // but after a failover moved the east's slots to the west, it is made in the west.
        let moved = HomeMap { epoch: 1, moved: BTreeMap::from([(EAST.to_owned(), WEST.to_owned())]), ..HomeMap::default() };
        let (east, west) = two_regions_with(&[], moved).await;
        let made = create(east.api.clone()).await.unwrap();
        assert_eq!(made.headers()[SERVED_BY], WEST);
        assert_eq!((east.invocations.load(Ordering::SeqCst), west.invocations.load(Ordering::SeqCst)), (0, 1));
    }

    #[tokio::test]
    async fn a_fenced_session_is_written_nowhere_and_read_marked_stale_in_its_home() {
        // Given a session of the east that a failover fenced,
        let session = east_session();
        let map = HomeMap { fenced: BTreeMap::from([(session.clone(), WEST.to_owned())]), ..HomeMap::default() };
        let (east, west) = two_regions_with(&[], map).await;
        let client = reqwest::Client::new();
        // when an append and a load reach the west,
        let append = client.post(format!("{}/sessions/{session}/turns", west.api)).bearer_auth(token()).send().await.unwrap();
        let load = client.get(format!("{}/sessions/{session}/context", west.api)).bearer_auth(token()).send().await.unwrap();
        // then the east refuses the append and serves the load marked stale, without an ETag.
        assert_eq!((append.status().as_u16(), append.headers()["retry-after"].to_str().unwrap()), (503, "1"));
        assert_eq!(append.json::<Value>().await.unwrap()["code"], "session_fenced");
        assert_eq!((load.headers()[STALE].to_str().unwrap(), load.headers()[SERVED_BY].to_str().unwrap()), ("true", EAST));
        assert!(load.headers().get("etag").is_none());
        assert_eq!((east.invocations.load(Ordering::SeqCst), west.invocations.load(Ordering::SeqCst)), (1, 0));
    }

    #[tokio::test]
    async fn with_the_home_down_a_read_is_served_stale_here_and_an_append_is_503() {
        // Given a session whose home, the east, is down,
        let (east, west) = two_regions(&[EAST]).await;
        let session = east_session();
        let client = reqwest::Client::new();
        // when a load reaches the west, even one that would revalidate,
        let load = client
            .get(format!("{}/sessions/{session}/context", west.api))
            .bearer_auth(token())
            .header("if-none-match", "\"1\"")
            .send()
            .await
            .unwrap();
        // then the west's replica answers it, marked stale, without an ETag and never 304;
        assert_eq!(load.status(), 200);
        assert_eq!(load.headers()[STALE], "true");
        assert!(load.headers().get("etag").is_none());
        assert_eq!(load.json::<Value>().await.unwrap(), json!({"region": WEST}));
        // and an append is 503 with Retry-After, written nowhere.
        let append = client.post(format!("{}/sessions/{session}/turns", west.api)).bearer_auth(token()).send().await.unwrap();
        assert_eq!(append.status(), 503);
        assert_eq!(append.headers()["retry-after"], "1");
        assert_eq!(append.json::<Value>().await.unwrap()["code"], "home_unavailable");
        assert_eq!((east.invocations.load(Ordering::SeqCst), west.invocations.load(Ordering::SeqCst)), (0, 1));
    }

    #[tokio::test]
    async fn with_the_home_down_a_session_the_replica_lacks_is_503_never_404() {
        // Given a session whose home, the east, is down, and that the west's replica lacks,
        let (_east, west) = two_regions(&[EAST]).await;
        let session = east_session();
        // when a load reaches the west, whose function answers 404,
        let load = reqwest::Client::new()
            .get(format!("{}/sessions/{session}/context", west.api))
            .bearer_auth(token())
            .header("x-answer-status", "404")
            .send()
            .await
            .unwrap();
        // then the west does not state that the session does not exist: 503 with Retry-After.
        assert_eq!((load.status().as_u16(), load.headers()["retry-after"].to_str().unwrap()), (503, "1"));
        assert_eq!(load.json::<Value>().await.unwrap()["code"], "home_unavailable");
        assert_eq!(west.invocations.load(Ordering::SeqCst), 1);
    }
}
