//! The functions' hop to the home region attacked as production would (review of issue 21):
//! each test states what the README promises, and each holds now (the first four failed before
//! the hop was fixed).
use super::*;

/// An east API whose functions forward to a west API that accepts connections and never
/// answers, within `timeout`; and the listener that keeps that west silent while it lives.
async fn east_cut_off_from_the_west(regions: &Regions, timeout: Duration) -> (String, TcpListener) {
    let (silent, silent_api) = listener().await;
    let (east, east_api) = listener().await;
    let apis = BTreeMap::from([(NAMES[EAST].to_owned(), east_api.clone()), (NAMES[WEST].to_owned(), silent_api)]);
    stack(regions, EAST, east, &apis, timeout).await;
    (east_api, silent)
}

#[tokio::test]
async fn a_purge_that_reaches_a_region_not_the_customers_home_answers_the_homes_receipt() {
    // Given two regions with the default hop, and a session of alice's, whose home is the west,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let (apis, functions) = two_regions(&regions).await;
    let http = reqwest::Client::new();
    alices_session(&http, &apis[WEST]).await;
    // when she asks the east to purge her (DELETE /customers/me),
    let purged = http.delete(format!("{}/customers/me", apis[EAST])).bearer_auth(token("alice", &[])).send().await.unwrap();
    // then the west's answer comes back: 200 with the receipt, served by the west,
    let (status, served_by) = (purged.status().as_u16(), purged.headers().get(SERVED_BY).cloned());
    let body: Value = purged.json().await.unwrap();
    assert_eq!(status, 200, "the west is up and purges her, but the east answers {body}");
    assert_eq!(served_by.as_ref().and_then(|v| v.to_str().ok()), Some(NAMES[WEST]));
    assert!(body["receipt_id"].is_string(), "{body}");
    // and the east's functions ran nothing of it themselves.
    assert_eq!(count(&functions[EAST].0), 0);
}

#[tokio::test]
async fn with_the_home_unreachable_a_session_the_replica_lacks_is_never_answered_as_absent() {
    // Given a session alice made in the west, her home, while west → east replication is held,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
    let (apis, _) = two_regions(&regions).await;
    let http = reqwest::Client::new();
    let alice = token("alice", &[]);
    let session = alices_session(&http, &apis[WEST]).await;
    assert!(session_items(&regions, EAST, &session).await.is_empty(), "not replicated yet");
    // when her load reaches an east whose functions cannot reach the west,
    let (east, _silent) = east_cut_off_from_the_west(&regions, Duration::from_millis(300)).await;
    let load = http.get(format!("{east}/sessions/{session}/context")).bearer_auth(&alice).send().await.unwrap();
    // then the east does not answer that her session does not exist: a replica that lags can
    // say what it holds, never what the home does not hold (a 503 home_unavailable would do).
    let (status, stale) = (load.status().as_u16(), load.headers().get(STALE).cloned());
    let body: Value = load.json().await.unwrap();
    assert_ne!(status, 404, "the session exists in the west; the east answers {body} (stale: {stale:?})");
}

#[test]
fn a_browser_client_can_read_the_stale_mark() {
    // Given the template's HTTP API,
    let template = template::load(TEMPLATE).expect("the template");
    let exposed = &template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]["ExposeHeaders"];
    let exposed: Vec<String> = exposed.as_sequence().into_iter().flatten().filter_map(|h| h.as_str()).map(str::to_lowercase).collect();
    // then a page's script may read the headers that say how an answer was served.
    for header in [STALE, SERVED_BY] {
        assert!(exposed.iter().any(|h| h == header), "{header} is not in ExposeHeaders {exposed:?}");
    }
}

/// `api` as a home that acts on each request at once and answers `delay` later: its answer
/// arrives after the forwarder has given up. The delay is the network's, outside the store.
async fn answering_late(api: String, delay: Duration) -> String {
    let (late, url) = listener().await;
    let client = reqwest::Client::new();
    let proxy = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let (client, api) = (client.clone(), api.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.expect("the body");
            let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
            let mut headers = parts.headers;
            headers.remove(axum::http::header::HOST);
            let answer = client.request(parts.method, format!("{api}{path}")).headers(headers).body(body).send().await.expect("the home");
            let status = answer.status();
            let content_type = answer.headers().get(axum::http::header::CONTENT_TYPE).cloned();
            let body = answer.bytes().await.expect("its answer");
            tokio::time::sleep(delay).await;
            let mut response = axum::response::Response::new(axum::body::Body::from(body));
            *response.status_mut() = status;
            if let Some(content_type) = content_type {
                response.headers_mut().insert(axum::http::header::CONTENT_TYPE, content_type);
            }
            response
        }
    });
    tokio::spawn(axum::serve(late, proxy).into_future());
    url
}

/// The east API of two regions whose functions reach the west only through
/// [`answering_late`]: the west acts, and its answer comes after the hop's timeout.
async fn east_whose_home_answers_late(regions: &Regions, west_api: &str) -> String {
    let (east, east_api) = listener().await;
    let late = answering_late(west_api.to_owned(), Duration::from_millis(900)).await;
    let apis = BTreeMap::from([(NAMES[EAST].to_owned(), east_api.clone()), (NAMES[WEST].to_owned(), late)]);
    stack(regions, EAST, east, &apis, Duration::from_millis(300)).await;
    east_api
}

#[tokio::test]
async fn after_a_lost_answer_a_retried_append_finds_the_turn_the_home_wrote() {
    // Given a session of alice's in the west, and an east whose hop loses the west's answers,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let (apis, _) = two_regions(&regions).await;
    let http = reqwest::Client::new();
    let alice = token("alice", &[]);
    let session = alices_session(&http, &apis[WEST]).await;
    let late_east = east_whose_home_answers_late(&regions, &apis[WEST]).await;
    // when her append through it is answered 503 (the west wrote it),
    let first = http.post(format!("{late_east}/sessions/{session}/turns")).bearer_auth(&alice).json(&turn(1)).send().await.unwrap();
    assert_eq!(first.status(), 503);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["code"], "home_timeout", "not taken for a home that did nothing: {first}");
    assert_eq!(turns_in(&regions, WEST, &session).await, 1, "the home acted");
    // then her retry through the east finds that turn: a duplicate, written once.
    let retried = http.post(format!("{}/sessions/{session}/turns", apis[EAST])).bearer_auth(&alice).json(&turn(1)).send().await.unwrap();
    let retried: Value = retried.json().await.unwrap();
    assert_eq!((&retried["turn_index"], &retried["duplicate"]), (&json!(1), &json!(true)));
    assert_eq!(turns_in(&regions, WEST, &session).await, 1);
}

#[tokio::test]
async fn after_a_lost_answer_a_retried_conditional_update_finds_the_update_the_home_made() {
    // Given a session of alice's in the west at ETag "v", and an east whose hop loses the
    // west's answers,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let (apis, _) = two_regions(&regions).await;
    let http = reqwest::Client::new();
    let alice = token("alice", &[]);
    let session = alices_session(&http, &apis[WEST]).await;
    let loaded = http.get(format!("{}/sessions/{session}/context", apis[WEST])).bearer_auth(&alice).send().await.unwrap();
    let etag = loaded.headers()["etag"].to_str().unwrap().to_owned();
    let late_east = east_whose_home_answers_late(&regions, &apis[WEST]).await;
    let patch = json!({"page_context": {"page": "/manga/frieren/vol-4"}});
    let update = |api: String| http.patch(format!("{api}/sessions/{session}")).bearer_auth(&alice).header("if-match", &etag).json(&patch).send();
    // when her PATCH with If-Match through it is answered 503 (the west applied it),
    let first = update(late_east).await.unwrap();
    assert_eq!(first.status(), 503);
    // then her retry finds her update rather than a 412.
    let retried = update(apis[EAST].clone()).await.unwrap();
    let status = retried.status().as_u16();
    let body: Value = retried.json().await.unwrap_or_default();
    assert!((200..300).contains(&status), "the retry answers {status} {body}");
}

#[test]
fn a_second_regions_stack_signs_and_hashes_with_the_first_stacks_secrets() {
    // Given the template, as deployed once per region ("Deploying to AWS", steps 1 to 3),
    let template = template::load(TEMPLATE).expect("the template");
    let resources = &template["Resources"];
    // then a stack that does not own the table makes none of the secrets that name customers
    // (receipts, the registry, memory) or sign cursors: it uses the owning stack's, as it
    // uses the owning stack's multi-region KMS key (DataKeyWrappingKey, `Condition:
    // OwnsWrappingKey`). Otherwise a receipt (served from the replica, never forwarded)
    // fails its owner check in the other region, and a cursor the home signed is refused there.
    for secret in ["ReceiptSalt", "HashKey", "CursorSecret"] {
        assert!(resources[secret].get("Condition").is_some(), "every region's stack generates its own {secret}");
    }
}

/// What a stand-in home API received: method, path and query, headers, body.
type Received = Arc<std::sync::Mutex<Vec<(String, String, axum::http::HeaderMap, Vec<u8>)>>>;

/// A home API that records each request and answers 200 with a binary (gzip-like) body,
/// two cookies and an ETag.
async fn recording_home() -> (String, Received) {
    let (home, url) = listener().await;
    let received: Received = Arc::default();
    let seen = Arc::clone(&received);
    let answer = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let seen = Arc::clone(&seen);
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.expect("the body").to_vec();
            let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
            seen.lock().unwrap().push((parts.method.to_string(), path, parts.headers, body));
            axum::response::Response::builder()
                .header("content-type", "application/octet-stream")
                .header("content-encoding", "gzip")
                .header("set-cookie", "a=1")
                .header("set-cookie", "b=2")
                .header("etag", "\"7\"")
                .body(axum::body::Body::from(vec![0x1f_u8, 0x8b, 0x08, 0xff, 0x00, 0xfe]))
                .unwrap()
        }
    });
    tokio::spawn(axum::serve(home, answer).into_future());
    (url, received)
}

/// An append of alice's (home: the west) as API Gateway hands it to the east's function, with
/// a raw path holding `%2F`, a query with a repeated key, and a binary body in base64.
fn alices_append_event(extra_headers: Value) -> lambda_http::Request {
    let mut event: Value = serde_json::from_str(include_str!("../../events/append-turn.json")).expect("the event");
    event["rawPath"] = json!("/sessions/6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f/turns%2Fx");
    event["rawQueryString"] = json!("a=1&a=2&b=%2F");
    event["isBase64Encoded"] = json!(true);
    event["body"] = json!("H4sI/wD+");
    event["headers"]["content-length"] = json!("6");
    event["headers"]["accept-encoding"] = json!("gzip");
    event["headers"]["connection"] = json!("keep-alive");
    for (name, value) in extra_headers.as_object().into_iter().flatten() {
        event["headers"][name] = value.clone();
    }
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway event")
}

/// The east's own function, which these requests must never reach.
async fn not_here(_: lambda_http::Request) -> Result<lambda_http::Response<lambda_http::Body>, &'static str> {
    Err("served in the east")
}

#[tokio::test]
async fn a_forwarded_request_and_its_answer_pass_whole_and_only_the_connections_headers_drop() {
    // Given an east whose hop reaches a recording west,
    let (west, received) = recording_home().await;
    let apis = BTreeMap::from([(NAMES[WEST].to_owned(), west.clone())]);
    let east = Forwarding::new(NAMES[EAST], homes(), apis, DEFAULT_FORWARD_TIMEOUT);
    // when alice's append reaches the east,
    let answer = east
        .serve(alices_append_event(json!({})), not_here)
        .await
        .expect("answered by the west");
    // then the west received it once: method, raw path and query, body bytes as they came,
    // the caller's headers less the connection's, marked as from the east, with its own Host;
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (method, path, headers, body) = &received[0];
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/sessions/6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f/turns%2Fx?a=1&a=2&b=%2F"));
    assert_eq!(body, &vec![0x1f_u8, 0x8b, 0x08, 0xff, 0x00, 0xfe]);
    assert_eq!(headers["content-length"], "6");
    assert_eq!(headers["host"], west.trim_start_matches("http://"));
    assert_eq!(headers[FORWARDED_FROM], NAMES[EAST]);
    assert_eq!((headers["authorization"].to_str().unwrap(), headers["accept-encoding"].to_str().unwrap()), ("Bearer eyJhbGciOiJIUzI1NiJ9.redacted.signature", "gzip"));
    assert!(headers.get("connection").is_none_or(|c| c != "keep-alive") && headers.get_all(FORWARDED_FROM).iter().count() == 1);
    // and its answer comes back whole: binary body, both cookies, ETag, encoding, served by the west.
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.body().as_ref(), &[0x1f_u8, 0x8b, 0x08, 0xff, 0x00, 0xfe]);
    assert_eq!(answer.headers().get_all("set-cookie").iter().count(), 2);
    assert_eq!((answer.headers()["etag"].to_str().unwrap(), answer.headers()["content-encoding"].to_str().unwrap()), ("\"7\"", "gzip"));
    assert_eq!(answer.headers()[SERVED_BY], NAMES[WEST]);
}

#[tokio::test]
async fn a_marked_request_is_never_sent_on_whatever_the_case_of_its_header() {
    // Given an east whose hop reaches a recording west,
    let (west, received) = recording_home().await;
    let east = Forwarding::new(NAMES[EAST], homes(), BTreeMap::from([(NAMES[WEST].to_owned(), west)]), DEFAULT_FORWARD_TIMEOUT);
    // when alice's append reaches the east marked as forwarded, in any case, once or twice (as
    // API Gateway joins repeated headers),
    for marked in [json!({"Tidewater-Forwarded-From": "eu-west-1"}), json!({"TIDEWATER-FORWARDED-FROM": "eu-west-1,us-east-1"})] {
        let answer = east
            .serve(alices_append_event(marked), not_here)
            .await
            .expect("answered in the east by the hop");
        // then it is refused, 503 home_moved, and sent nowhere.
        assert_eq!(answer.status(), 503);
        assert!(String::from_utf8_lossy(answer.body().as_ref()).contains("home_moved"));
    }
    assert!(received.lock().unwrap().is_empty());
}
