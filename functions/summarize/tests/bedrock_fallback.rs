//! The Bedrock summariser as Lambda builds it from the environment, with its endpoint on a
//! closed port: it must fall back to the extractive summary. One test in its own binary,
//! because it sets environment variables.
use summarize::AnySummarizer;
use tidewater::{ExtractiveSummarizer, Role, Summarizer, SummaryInput, Turn};

#[tokio::test]
async fn bedrock_chosen_by_env_falls_back_to_extractive_when_unreachable() {
    // Given SUMMARIZER=bedrock and a Bedrock endpoint that nothing listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
    for (name, value) in [
        ("SUMMARIZER", "bedrock".to_owned()),
        ("BEDROCK_MODEL_ID", "anthropic.claude-3-haiku-20240307-v1:0".to_owned()),
        ("BEDROCK_TIMEOUT_MS", "5000".to_owned()),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", format!("http://127.0.0.1:{port}")),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
    ] {
        std::env::set_var(name, value);
    }
    let summarizer = AnySummarizer::from_env().await.unwrap();
    assert!(matches!(summarizer, AnySummarizer::Bedrock(_)));
    let turns = vec![Turn {
        turn_index: 21,
        role: Role::User,
        content: "Do you have \"Dungeon Meshi\" volume 2?".to_owned(),
        intent: Some("availability".to_owned()),
        token_count: None,
        created_at: "2026-11-26T19:00:00Z".to_owned(),
        item: None,
        retracted_at: None,
    }];
    let input = SummaryInput { previous: Some("Questions: Is Frieren in stock?"), turns: &turns };

    // When it summarises
    let summary = summarizer.summarize(input).await.unwrap();

    // Then the summary is the extractive one
    assert_eq!(summary, ExtractiveSummarizer::default().summarize_now(input));
}
