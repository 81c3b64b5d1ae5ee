use serde_json::json;
use tidewater::Caller;
use tidewater_tests::*;
use uuid::Uuid;

async fn create(store: &tidewater::DynamoStore, caller: &Caller, body: Option<&str>) -> lambda_http::Response<lambda_http::Body> {
    create_session::handle(store, &default_redactor(), api_request(Some(caller), "POST", "/sessions", "/sessions", &[], body)).await
}

#[tokio::test]
async fn creating_without_a_body_returns_201_with_a_new_id() {
    let store = store().await;

    let response = create(&store, &alice(), None).await;

    assert_eq!(response.status(), 201);
    let body = body_json(&response);
    assert!(Uuid::parse_str(body["session_id"].as_str().unwrap()).is_ok());
    assert!(body["created_at"].as_str().unwrap() < body["expires_at"].as_str().unwrap());
}

#[tokio::test]
async fn retrying_with_the_same_id_returns_200_and_the_same_session() {
    let store = store().await;
    let id = Uuid::new_v4();
    let body = json!({"session_id": id, "page_context": {"page": "/manga/frieren"}}).to_string();

    let first = create(&store, &alice(), Some(&body)).await;
    let retry = create(&store, &alice(), Some(&body)).await;

    assert_eq!(first.status(), 201);
    assert_eq!(retry.status(), 200);
    assert_eq!(body_json(&first), body_json(&retry));
}

#[tokio::test]
async fn another_owner_using_a_taken_id_gets_409() {
    let store = store().await;
    let body = json!({"session_id": Uuid::new_v4()}).to_string();
    create(&store, &alice(), Some(&body)).await;

    assert_error(&create(&store, &bob(), Some(&body)).await, 409, "conflict");
}

#[tokio::test]
async fn bad_bodies_get_400() {
    let store = store().await;

    for body in [
        json!({"session_id": "not-a-uuid"}).to_string(),
        json!({"page_context": "a string"}).to_string(),
        json!({"unknown": 1}).to_string(),
        "[".to_owned(),
    ] {
        assert_error(&create(&store, &alice(), Some(&body)).await, 400, "bad_request");
    }
}

#[tokio::test]
async fn guest_sessions_stay_out_of_the_customer_index() {
    let store = store().await;
    let guest = Caller::new("guest-1", ["guest"]);
    create(&store, &guest, None).await;
    create(&store, &alice(), None).await;

    let index = store
        .client()
        .scan()
        .table_name(&store.config().table_name)
        .index_name(tidewater::keys::GSI1)
        .send()
        .await
        .unwrap();

    let owners: Vec<String> = index.items().iter().map(|i| i["GSI1PK"].as_s().unwrap().clone()).collect();
    assert_eq!(owners, vec!["CUSTOMER#alice".to_owned()]);
}
