//! The deterministic lifecycle simulation (tests/support/sim): a few hundred seeded steps of
//! a session's life against DynamoDB Local through the fault proxy, every README guarantee
//! checked after every step. `make sim SEED=… STEPS=…` runs it long.
use tidewater_tests::sim::{run, Settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_lifecycle_keeps_every_guarantee_after_every_step() {
    let settings = Settings::from_env(20_261_207, 400);

    let report = run(&settings).await;

    println!("{}", report.summary(&settings));
    assert!(report.failure.is_none(), "{}", report.summary(&settings));
}
