//! Capacity units are exact, so these budgets are tested (timings never are).
use tidewater::{ContextLoader, NewSession, NewTurn, SessionCreator, SummaryWriter, TurnAppender};
use tidewater_tests::*;

/// About 1 KB of English chat text, different for every turn.
fn chat_text(turn: u64) -> String {
    const SENTENCES: [&str; 8] = [
        "I am looking for the next volume of the series my daughter started last month.",
        "The shop has the deluxe hardcover edition in stock, and the paperback arrives on Friday.",
        "Could you tell me whether the box set includes the bonus chapter that was published online?",
        "Shipping to Manchester usually takes two working days, and tracking is sent by email.",
        "We also recommend a similar fantasy adventure with a quiet, thoughtful main character.",
        "If the order is placed before noon, it leaves the warehouse on the same afternoon.",
        "The first printing came with a poster, but later printings only include the cover art.",
        "Gift wrapping is available at the checkout for a small extra charge per item.",
    ];
    let mut text = format!("Turn {turn}. ");
    let mut i = turn as usize;
    while text.len() < 1000 {
        text.push_str(SENTENCES[i % SENTENCES.len()]);
        text.push(' ');
        i = i * 7 + 3;
    }
    text.truncate(1000);
    text
}

#[tokio::test]
async fn a_context_load_of_a_long_session_costs_at_most_one_and_a_half_rcu() {
    let store = store().await;
    let session = store.create_session(&alice(), NewSession::default()).await.unwrap().session_id;
    for turn in 1..=200 {
        let draft = NewTurn {
            response_id: format!("r{turn}"),
            role: if turn % 2 == 1 { "user" } else { "assistant" }.into(),
            content: chat_text(turn),
            intent: None,
            token_count: Some(250),
        };
        store.append_turn(&alice(), session, draft.validate(store.config()).unwrap()).await.unwrap();
    }
    store.put_summary(session, 200, &chat_text(0)).await.unwrap();
    store.reset_consumed();

    let context = store.load_context(&alice(), session, 10, false).await.unwrap();

    let used = store.consumed();
    println!("load-context, 200 turns of 1 KB, N=10, with summary: {} RCU", used.read_units);
    assert_eq!(context.turns.len(), 10);
    assert!(context.summary.is_some());
    assert!(used.read_units <= 1.5, "{} RCU", used.read_units);
    assert_eq!(used.write_units, 0.0);
}

#[tokio::test]
async fn an_append_of_a_1_kb_turn_and_its_retry() {
    let store = store().await;
    let session = store.create_session(&alice(), NewSession::default()).await.unwrap().session_id;
    let draft = || {
        NewTurn { response_id: "r1".into(), role: "user".into(), content: chat_text(1), intent: None, token_count: None }
            .validate(store.config())
            .unwrap()
    };
    store.reset_consumed();

    store.append_turn(&alice(), session, draft()).await.unwrap();
    let append = store.consumed();
    store.reset_consumed();
    let retry = store.append_turn(&alice(), session, draft()).await.unwrap();
    let duplicate = store.consumed();

    println!(
        "append of a 1 KB turn as DynamoDB Local reports it: {} RCU, {} WCU; duplicate retry: {} RCU, {} WCU",
        append.read_units, append.write_units, duplicate.read_units, duplicate.write_units
    );
    assert!(retry.duplicate);
    assert_eq!(duplicate.write_units, 0.0);
}
