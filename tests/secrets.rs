//! The secrets fail closed: a function that holds one does not start without it, reads it
//! from Secrets Manager through its ARN, and a store without a receipt salt erases nothing.
use std::cell::Cell;

use tidewater::{secret, Caller, Config, CursorKey, DynamoStore, Error, NewSession, NewTurn, SessionCreator, TurnAppender};
use tidewater_tests::*;

const CURSOR_SECRET_ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:CursorSecret-AbCdEf";

async fn no_secrets_manager(arn: String) -> Result<String, Error> {
    panic!("no GetSecretValue expected, got one for {arn}")
}

/// What the init of a function that pages (list-sessions, export-turns, list-memory) does
/// with the environment `env` for its cursor key, with `fetch` standing in for GetSecretValue.
async fn start_paging_function<F, Fut>(env: impl Fn(&str) -> Option<String>, fetch: F) -> Result<(Config, CursorKey), Error>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<String, Error>>,
{
    let config = Config::from_lookup(&env)?;
    let key = CursorKey::new(&secret::read("CURSOR_SECRET", &env, fetch).await?)?;
    Ok((config, key))
}

/// What the init of a function that names customers by hash (create-session, purges,
/// receipts, memory, ...) does with the environment `env` for its receipt salt.
async fn start_naming_function(env: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
    Ok(Config::from_lookup(&env)?.with_receipt_salt(secret::read("RECEIPT_SALT", &env, no_secrets_manager).await?))
}

fn environment(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
}

fn config_error<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Config(message)) => message,
        other => panic!("expected the function to refuse to start, got {other:?}"),
    }
}

#[tokio::test]
async fn a_function_refuses_to_start_without_its_secret_and_says_which() {
    let lambda_env = environment(&[("TABLE_NAME", "tidewater"), ("AWS_LAMBDA_FUNCTION_NAME", "list-sessions")]);

    let paging = config_error(start_paging_function(&lambda_env, no_secrets_manager).await);
    let naming = config_error(start_naming_function(&lambda_env).await);

    assert!(paging.starts_with("CURSOR_SECRET is not set") && paging.contains("CURSOR_SECRET_ARN"), "{paging}");
    assert!(naming.starts_with("RECEIPT_SALT is not set") && naming.contains("RECEIPT_SALT_ARN"), "{naming}");
}

#[tokio::test]
async fn a_function_refuses_a_secret_shorter_than_32_bytes() {
    let short = environment(&[("CURSOR_SECRET", "tidewater-cursor-secret-31bytes"), ("RECEIPT_SALT", "tidewater-receipts-v1")]);

    let paging = config_error(start_paging_function(&short, no_secrets_manager).await);
    let naming = config_error(start_naming_function(&short).await);

    assert_eq!(paging, "CURSOR_SECRET must be at least 32 bytes, it has 31");
    assert_eq!(naming, "RECEIPT_SALT must be at least 32 bytes, it has 21");
}

#[tokio::test]
async fn in_aws_the_secret_is_read_once_from_secrets_manager_through_its_arn() {
    let deployed = environment(&[("TABLE_NAME", "tidewater"), ("CURSOR_SECRET_ARN", CURSOR_SECRET_ARN)]);
    let calls = Cell::new(0);
    let fetch = |arn: String| {
        calls.set(calls.get() + 1);
        async move {
            assert_eq!(arn, CURSOR_SECRET_ARN);
            Ok("GeneratedBySecretsManager0123456789abcdefghijklmnopqrstuvwxyzABCD".to_owned())
        }
    };

    let (_, key) = start_paging_function(&deployed, fetch).await.unwrap();

    assert_eq!(calls.get(), 1);
    let cursor = key.seal("resume:alice", &7u64);
    assert_eq!(key.open::<u64>("resume:alice", &cursor).unwrap(), 7);
    assert!(test_cursor_key().open::<u64>("resume:alice", &cursor).is_err(), "another key opens no cursor of this one");
}

#[tokio::test]
async fn a_secret_manager_failure_or_a_short_stored_secret_stops_the_start() {
    let deployed = environment(&[("CURSOR_SECRET_ARN", CURSOR_SECRET_ARN)]);

    let denied = start_paging_function(&deployed, |_| async {
        Err(Error::Config("CURSOR_SECRET: reading the secret failed: AccessDeniedException".to_owned()))
    });
    let short = start_paging_function(&deployed, |_| async { Ok("too short".to_owned()) });

    assert!(config_error(denied.await).contains("AccessDeniedException"));
    assert!(config_error(short.await).contains("at least 32 bytes"));
}

#[tokio::test]
async fn a_store_without_a_receipt_salt_creates_erases_and_reveals_nothing() {
    let salted = fresh_store(Config::default()).await;
    let alice = Caller::new("alice", Vec::<String>::new());
    let session = salted.create_session(&alice, NewSession::default()).await.unwrap().session_id;
    let turn = NewTurn { response_id: "r1".into(), role: "user".into(), content: "hello".into(), intent: None, token_count: None, item: None };
    salted.append_turn(&alice, session, turn.validate(salted.config()).unwrap()).await.unwrap();
    let unsalted = DynamoStore::new(
        salted.client().clone(),
        Config { table_name: salted.config().table_name.clone(), receipt_salt: None, ..Config::default() },
    );
    let before = scan_table(&salted).await.len();

    let create = api_request(Some(&alice), "POST", "/sessions", "/sessions", &[], Some("{}"));
    let purge = api_request(Some(&alice), "DELETE", "/customers/me", "/customers/me", &[], None);
    let delete_path = format!("/sessions/{session}");
    let delete = api_request(Some(&alice), "DELETE", "/sessions/{id}", &delete_path, &[], None);
    let receipt_path = format!("/receipts/{}", uuid::Uuid::new_v4());
    let receipt = api_request(Some(&alice), "GET", "/receipts/{receipt_id}", &receipt_path, &[], None);

    assert_error(&create_session::handle(&unsalted, &default_redactor(), create).await, 500, "internal");
    assert_error(&purge_customer::handle(&unsalted, purge).await, 500, "internal");
    assert_error(&delete_session::handle(&unsalted, delete).await, 500, "internal");
    assert_error(&get_receipt::handle(&unsalted, receipt).await, 500, "internal");
    assert_eq!(scan_table(&salted).await.len(), before, "nothing written or deleted");
}
