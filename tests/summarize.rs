//! The summary consumer against DynamoDB Local: the handler with stream events (the samples
//! in events/ among them), the template's filter, and the local stream runner on the real
//! stream.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use tidewater::{
    keys, Caller, ContextLoader, DynamoStore, Error, ExtractiveSummarizer, NewSession, NewTurn, SessionCreator,
    Summarizer, SummaryInput, SummarySource, TurnAppender,
};
use tidewater_local::filter::StreamMapping;
use tidewater_local::stream::{streams_client, StreamRunner};
use tidewater_tests::*;
use uuid::Uuid;

const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");

/// Windows become due as soon as they are complete: these tests are about the pipeline, not
/// the kept recent turns (tests/load_context.rs covers those).
async fn store() -> Arc<DynamoStore> {
    fresh_store(tidewater::Config { summary_keep_recent: 0, ..test_config() }).await
}

fn mapping() -> StreamMapping {
    StreamMapping::load(TEMPLATE, "summarize").expect("the template maps the summarize function")
}

fn turn_content(i: u64) -> (String, &'static str, Option<String>) {
    if i % 2 == 1 {
        (
            format!("Is volume {i} of Frieren in stock?"),
            "user",
            Some(if i < 20 { "availability" } else { "purchase" }.to_owned()),
        )
    } else {
        (format!("Yes, Frieren volume {} is in stock.", i - 1), "assistant", None)
    }
}

async fn session_with_turns(store: &DynamoStore, caller: &Caller, session_id: Option<Uuid>, turns: u64) -> Uuid {
    let request = NewSession { session_id, ..NewSession::default() };
    let session = store.create_session(caller, request).await.unwrap().session_id;
    for i in 1..=turns {
        let (content, role, intent) = turn_content(i);
        let turn = NewTurn { response_id: format!("r{i}"), role: role.into(), content, intent, token_count: None, item: None };
        store.append_turn(caller, session, turn.validate(store.config()).unwrap()).await.unwrap();
    }
    session
}

fn event(records: Vec<Value>) -> Event {
    serde_json::from_value(json!({ "Records": records })).expect("a DynamoDB stream event")
}

fn sample(json: &str) -> Event {
    serde_json::from_str(json).expect("a DynamoDB stream event sample")
}

fn failed(response: &DynamoDbEventResponse) -> Vec<String> {
    response.batch_item_failures.iter().filter_map(|f| f.item_identifier.clone()).collect()
}

async fn handle(store: &DynamoStore, event: Event) -> DynamoDbEventResponse {
    summarize::handle(store, &ExtractiveSummarizer::default(), store.config(), event).await
}

/// The `through_turn` of every SUMMARY item of the session, in order.
async fn summaries(store: &DynamoStore, session: Uuid) -> Vec<u64> {
    let output = store
        .client()
        .query()
        .table_name(&store.config().table_name)
        .key_condition_expression("PK = :pk AND begins_with(SK, :summary)")
        .expression_attribute_values(":pk", AttributeValue::S(keys::session_pk(&session)))
        .expression_attribute_values(":summary", AttributeValue::S(keys::SUMMARY_PREFIX.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    output.items().iter().filter_map(|item| item.get("through_turn")?.as_n().ok()?.parse().ok()).collect()
}

async fn summary_state(store: &DynamoStore, session: Uuid) -> tidewater::SummaryState {
    store.summary_state(session).await.unwrap().expect("the session exists")
}

/// Delegates to the extractive summariser after a pause, so two consumers overlap.
struct SlowSummarizer;

impl Summarizer for SlowSummarizer {
    async fn summarize(&self, input: SummaryInput<'_>) -> Result<String, Error> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ExtractiveSummarizer::default().summarize(input).await
    }
}

#[tokio::test]
async fn a_threshold_crossing_writes_one_summary_that_load_context_returns() {
    // Given a session whose 20th turn set the flag
    let store = store().await;
    let session = session_with_turns(&store, &alice(), None, 20).await;
    assert!(summary_state(&store, session).await.needs_summary);

    // When the consumer gets the record of the crossing
    let response = handle(&store, event(vec![meta_record(session, "100", (19, false), (20, true))])).await;

    // Then one summary covers turns 1-20, META carries it and the flag is down
    assert!(failed(&response).is_empty());
    assert_eq!(summaries(&store, session).await, vec![20]);
    let state = summary_state(&store, session).await;
    assert_eq!((state.summarized_through, state.needs_summary), (20, false));
    let context = store
        .load_context(&alice(), session, tidewater_tests::newest(10, true))
        .await
        .unwrap();
    let summary = context.summary.expect("a summary");
    assert_eq!(summary.through_turn, 20);
    assert!(summary.text.contains("Is volume 19 of Frieren in stock?"), "{}", summary.text);
    assert!(summary.text.contains("availability"), "{}", summary.text);
    assert!(summary.text.contains("Last answer: Yes, Frieren volume 19 is in stock."), "{}", summary.text);
    assert!(context.turns.is_empty(), "the summary covers every turn");
    assert_eq!(context.omitted, None);
}

#[tokio::test]
async fn the_same_batch_delivered_twice_writes_one_summary() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), None, 20).await;
    let batch = vec![meta_record(session, "100", (19, false), (20, true))];

    let first = handle(&store, event(batch.clone())).await;
    let second = handle(&store, event(batch)).await;

    assert!(failed(&first).is_empty() && failed(&second).is_empty());
    assert_eq!(summaries(&store, session).await, vec![20]);
    assert_eq!(summary_state(&store, session).await.summarized_through, 20);
}

#[tokio::test]
async fn two_concurrent_consumers_for_one_session_write_one_summary() {
    // Given two consumers that both read the session before either writes
    let store = store().await;
    let session = session_with_turns(&store, &alice(), None, 20).await;
    let batch = || event(vec![meta_record(session, "100", (19, false), (20, true))]);

    let (a, b) = tokio::join!(
        summarize::handle(&*store, &SlowSummarizer, store.config(), batch()),
        summarize::handle(&*store, &SlowSummarizer, store.config(), batch()),
    );

    // Then both succeed and one summary exists
    assert!(failed(&a).is_empty() && failed(&b).is_empty());
    assert_eq!(summaries(&store, session).await, vec![20]);
    let state = summary_state(&store, session).await;
    assert_eq!((state.summarized_through, state.needs_summary), (20, false));
}

#[tokio::test]
async fn of_two_racing_consumers_exactly_one_writes_and_the_other_sees_it_done() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), None, 20).await;

    let (a, b) = tokio::join!(
        summarize::summarize_session(&*store, &SlowSummarizer, store.config(), session),
        summarize::summarize_session(&*store, &SlowSummarizer, store.config(), session),
    );

    assert_eq!(a.unwrap().written + b.unwrap().written, 1);
    assert_eq!(summaries(&store, session).await, vec![20]);
}

#[tokio::test]
async fn a_session_far_behind_gets_one_rolling_summary_per_window() {
    // Given 45 turns and no summary yet (the consumer was down)
    let store = store().await;
    let session = session_with_turns(&store, &alice(), None, 45).await;

    let response = handle(&store, event(vec![meta_record(session, "100", (19, false), (20, true))])).await;

    // Then windows 1-20 and 21-40 are summarised, the second rolling the first forward
    assert!(failed(&response).is_empty());
    assert_eq!(summaries(&store, session).await, vec![20, 40]);
    let state = summary_state(&store, session).await;
    assert_eq!((state.summarized_through, state.needs_summary), (40, false));
    let text = state.summary.unwrap_or_default();
    assert!(text.contains("Is volume 1 of Frieren in stock?"), "window 1 kept: {text}");
    assert!(text.contains("Is volume 39 of Frieren in stock?"), "window 2 added: {text}");
    assert!(text.contains("availability; purchase"), "{text}");
    assert!(text.contains("Last answer: Yes, Frieren volume 39 is in stock."), "{text}");
}

#[tokio::test]
async fn a_poison_record_is_reported_alone_and_the_rest_of_the_batch_goes_through() {
    // Given the malformed sample: a broken META image, then a good crossing for another session
    let store = store().await;
    let good: Uuid = "5f0c6a1e-0000-4000-8000-000000000021".parse().unwrap();
    session_with_turns(&store, &alice(), Some(good), 20).await;
    let event = sample(include_str!("../events/summarize-malformed.json"));

    let response = handle(&store, event).await;

    // Then only the broken record is reported, by its sequence number
    assert_eq!(failed(&response), vec!["4421584700000000017450439150".to_owned()]);
    assert_eq!(summaries(&store, good).await, vec![20]);
}

#[tokio::test]
async fn records_below_the_threshold_are_filtered_out_and_skipped() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), None, 5).await;
    let below = meta_record(session, "100", (4, false), (5, false));
    let being_summarised = meta_record(session, "101", (24, true), (25, true));
    let turn_insert = json!({
        "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"PK": {"S": keys::session_pk(&session)}, "SK": {"S": keys::turn_sk(5)}},
            "NewImage": {"PK": {"S": keys::session_pk(&session)}, "SK": {"S": keys::turn_sk(5)}, "role": {"S": "user"}},
            "SequenceNumber": "102", "SizeBytes": 100, "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    });

    // The template's filter drops all three
    let filter = mapping().filter;
    for record in [&below, &being_summarised, &turn_insert] {
        assert!(!filter.matches(record), "{record}");
    }
    assert!(filter.matches(&meta_record(session, "103", (19, false), (20, true))));

    // And the handler, given them unfiltered, writes nothing and reports nothing
    let response = handle(&store, event(vec![below, turn_insert])).await;
    assert!(failed(&response).is_empty());
    assert!(summaries(&store, session).await.is_empty());
    assert_eq!(summary_state(&store, session).await.summarized_through, 0);
}

#[tokio::test]
async fn a_flag_no_full_window_justifies_is_cleared_without_a_summary() {
    // Given a flag left set on a session of 5 turns
    let store = store().await;
    let session = session_with_turns(&store, &alice(), None, 5).await;
    update_session_item(&store, session, keys::META)
        .update_expression("SET needs_summary = :t")
        .expression_attribute_values(":t", AttributeValue::Bool(true))
        .send()
        .await
        .unwrap();

    let response = handle(&store, event(vec![meta_record(session, "100", (4, false), (5, true))])).await;

    assert!(failed(&response).is_empty());
    assert!(summaries(&store, session).await.is_empty());
    assert!(!summary_state(&store, session).await.needs_summary);
}

#[tokio::test]
async fn the_insert_sample_is_filtered_out_and_skipped() {
    let store = store().await;
    let session: Uuid = "5f0c6a1e-0000-4000-8000-000000000001".parse().unwrap();
    session_with_turns(&store, &alice(), Some(session), 0).await;
    let event = sample(include_str!("../events/summarize-insert.json"));
    assert!(!mapping().filter.matches_record(&event.records[0]));

    let response = handle(&store, event).await;

    assert!(failed(&response).is_empty());
    assert!(summaries(&store, session).await.is_empty());
}

#[tokio::test]
async fn the_threshold_crossed_sample_passes_the_filter_and_writes_its_summary() {
    let store = store().await;
    let session: Uuid = "5f0c6a1e-0000-4000-8000-000000000020".parse().unwrap();
    session_with_turns(&store, &alice(), Some(session), 20).await;
    let event = sample(include_str!("../events/summarize-threshold-crossed.json"));
    assert!(mapping().filter.matches_record(&event.records[0]));

    let response = handle(&store, event).await;

    assert!(failed(&response).is_empty());
    assert_eq!(summaries(&store, session).await, vec![20]);
}

#[tokio::test]
async fn the_malformed_sample_record_passes_the_filter_and_is_reported() {
    // The filter sees only the flag, so the broken record reaches the function, which reports it.
    let store = store().await;
    let event = sample(include_str!("../events/summarize-malformed.json"));
    assert!(mapping().filter.matches_record(&event.records[0]));

    let response = handle(&store, event).await;

    // The good record's session was never created here, so it is skipped, not failed.
    assert_eq!(failed(&response), vec!["4421584700000000017450439150".to_owned()]);
}

async fn stream_runner(store: &DynamoStore, checkpoint: Option<std::path::PathBuf>) -> StreamRunner {
    StreamRunner::new(store.client().clone(), streams_client().await, &store.config().table_name, mapping(), checkpoint)
        .unwrap()
        .with_retry_delay(Duration::from_millis(10))
}

fn checkpoint_file() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tidewater-test-{}", Uuid::new_v4())).join("stream-checkpoint.json")
}

#[tokio::test]
async fn appending_25_turns_through_the_api_makes_a_summary_appear_through_the_real_stream() {
    // Given a session and 25 turns appended through the append-turn function
    let store = store().await;
    let session = session_with_turns(&store, &alice(), None, 0).await;
    for i in 1..=25 {
        let (content, role, intent) = turn_content(i);
        let mut body = json!({"response_id": format!("r{i}"), "role": role, "content": content});
        if let Some(intent) = intent {
            body["intent"] = json!(intent);
        }
        let body = body.to_string();
        let path = format!("/sessions/{session}/turns");
        let request = api_request(Some(&alice()), "POST", "/sessions/{id}/turns", &path, &[], Some(&body));
        let response = append_turn::handle(&*store, &default_redactor(), store.config(), request).await;
        assert_eq!(response.status(), 201, "turn {i}");
    }

    // When the stream runner polls DynamoDB Local's stream and invokes the handler in-process
    let checkpoint = checkpoint_file();
    let mut runner = stream_runner(&store, Some(checkpoint.clone())).await;
    let invoked = Arc::new(AtomicUsize::new(0));
    let invoke = {
        let store = store.clone();
        let invoked = invoked.clone();
        move |event: Event| {
            let store = store.clone();
            invoked.fetch_add(event.records.len(), Ordering::SeqCst);
            async move { Ok(handle(&store, event).await) }
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let summary = loop {
        runner.poll_once(&invoke).await.unwrap();
        let context = store
            .load_context(&alice(), session, tidewater_tests::newest(10, true))
            .await
            .unwrap();
        if let Some(summary) = context.summary {
            break summary;
        }
        assert!(Instant::now() < deadline, "no summary within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Then load-context returns the summary of turns 1-20, from the one record that crossed
    assert_eq!(summary.through_turn, 20);
    assert!(summary.text.contains("Is volume 19 of Frieren in stock?"), "{}", summary.text);
    assert_eq!(summaries(&store, session).await, vec![20]);
    assert_eq!(invoked.load(Ordering::SeqCst), 1, "only the crossing passes the filter");

    // And a restarted runner resumes from its checkpoint instead of replaying the stream
    for _ in 0..20 {
        // Read what the summary itself wrote (its SUMMARY item and the META update).
        if runner.poll_once(&invoke).await.unwrap().read == 0 {
            break;
        }
    }
    drop(runner);
    let mut restarted = stream_runner(&store, Some(checkpoint.clone())).await;
    assert_eq!(restarted.poll_once(&invoke).await.unwrap().read, 0);
    session_with_more_turns(&store, session, 26..=26).await;
    let mut read = 0;
    for _ in 0..20 {
        read += restarted.poll_once(&invoke).await.unwrap().read;
        if read >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read, 3, "one append writes three items: its response id, its turn and META");
    if let Some(dir) = checkpoint.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

async fn session_with_more_turns(store: &DynamoStore, session: Uuid, turns: std::ops::RangeInclusive<u64>) {
    for i in turns {
        let (content, role, intent) = turn_content(i);
        let turn = NewTurn { response_id: format!("r{i}"), role: role.into(), content, intent, token_count: None, item: None };
        store.append_turn(&alice(), session, turn.validate(store.config()).unwrap()).await.unwrap();
    }
}

#[tokio::test]
async fn the_runner_retries_the_records_a_partial_batch_response_reports() {
    // Given a function that reports every record failed on its first invocation
    let store = store().await;
    let session = session_with_turns(&store, &alice(), None, 20).await;
    let mut runner = stream_runner(&store, None).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let invoke = {
        let store = store.clone();
        let calls = calls.clone();
        move |event: Event| {
            let store = store.clone();
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    let mut response = DynamoDbEventResponse::default();
                    for record in &event.records {
                        let mut failure = DynamoDbBatchItemFailure::default();
                        failure.item_identifier = record.change.sequence_number.clone();
                        response.batch_item_failures.push(failure);
                    }
                    return Ok(response);
                }
                Ok(handle(&store, event).await)
            }
        }
    };

    // When the runner polls
    let mut report = runner.poll_once(&invoke).await.unwrap();
    for _ in 0..20 {
        if report.matched > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        report += runner.poll_once(&invoke).await.unwrap();
    }

    // Then it retried the reported record, and the summary is written once
    assert_eq!((report.matched, report.retries, report.discarded), (1, 1, 0));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(summaries(&store, session).await, vec![20]);
}

#[tokio::test]
async fn records_that_keep_failing_are_given_up_after_the_template_retries() {
    let store = store().await;
    session_with_turns(&store, &alice(), None, 20).await;
    let mut runner = stream_runner(&store, None).await;
    let retries = runner.mapping().maximum_retry_attempts as usize;
    let invoke =
        |_event: Event| async { Err::<DynamoDbEventResponse, _>(Error::Unavailable("the function is down".into())) };

    let mut report = runner.poll_once(&invoke).await.unwrap();
    for _ in 0..20 {
        if report.matched > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        report += runner.poll_once(&invoke).await.unwrap();
    }

    assert_eq!((report.matched, report.invocations, report.discarded), (1, retries + 1, 1));
    assert_eq!(runner.poll_once(&invoke).await.unwrap().read, 0, "the stream moved on");
}
