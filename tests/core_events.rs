//! Each `events/*.json` sample of the core functions, run through its handler.
use tidewater::ContextLoader;
use tidewater_tests::*;
use uuid::Uuid;

const SAMPLE_SESSION: &str = "6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f";

#[tokio::test]
async fn create_session_sample_creates_the_session_it_names() {
    let store = store().await;

    let response = create_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/create-session.json"))).await;

    assert_eq!(response.status(), 201, "{}", body_json(&response));
    assert_eq!(body_json(&response)["session_id"], SAMPLE_SESSION);
}

#[tokio::test]
async fn create_session_bad_input_sample_gets_400() {
    let store = store().await;

    let response = create_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/create-session-bad-input.json"))).await;

    assert_error(&response, 400, "bad_request");
}

#[tokio::test]
async fn append_turn_and_load_context_samples_work_on_the_sample_session() {
    let store = store().await;
    create_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/create-session.json"))).await;

    let appended = append_turn::handle(&*store, &default_redactor(), store.config(), event_request(include_str!("../events/append-turn.json"))).await;
    let retried = append_turn::handle(&*store, &default_redactor(), store.config(), event_request(include_str!("../events/append-turn.json"))).await;
    let loaded = load_context::handle(&*store, event_request(include_str!("../events/load-context.json"))).await;

    assert_eq!(appended.status(), 201, "{}", body_json(&appended));
    assert_eq!(retried.status(), 200);
    assert_eq!(loaded.status(), 200);
    let context = body_json(&loaded);
    assert_eq!(context["turns"][0]["content"], "Is volume 3 of Frieren back in stock?");
    assert_eq!(context["turns"][0]["intent"], "stock_check");
    assert_eq!(context["session"]["page_context"]["page"], "/manga/frieren/vol-3");
}

#[tokio::test]
async fn bad_input_samples_are_rejected_and_write_nothing() {
    let store = store().await;
    create_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/create-session.json"))).await;

    let append = append_turn::handle(&*store, &default_redactor(), store.config(), event_request(include_str!("../events/append-turn-bad-input.json"))).await;
    let load = load_context::handle(&*store, event_request(include_str!("../events/load-context-bad-input.json"))).await;

    assert_error(&append, 422, "validation_failed");
    assert_error(&load, 400, "bad_request");
    let session = Uuid::parse_str(SAMPLE_SESSION).unwrap();
    let context = store
        .load_context(&alice(), session, tidewater_tests::newest(10, true))
        .await
        .unwrap();
    assert_eq!(context.session.unwrap().turn_count, 0);
}
