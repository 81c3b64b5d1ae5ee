//! The scheduled janitor (an EventBridge schedule; `make run`'s scheduler locally; `make
//! redrive`): one pass over the work partition, finishing every session deletion, TTL sweep
//! and purge whose work item is overdue ([`tidewater::store::Janitor`]).
//!
//! The event's content is not read: the pass runs at the store's time. It emits the tasks that
//! failed and those stuck (failed [`tidewater::store::STUCK_AFTER_FAILURES`] passes) as
//! metrics. A pass in which a task failed answers an error, so that the function's error alarm
//! fires; the task's work item stays, and the next pass tries it again.
use tidewater::metrics::Metrics;
use tidewater::store::{Janitor, JanitorReport};
use tidewater::Error;

pub async fn handle<S: Janitor + Sync>(store: &S, _event: serde_json::Value) -> Result<JanitorReport, Error> {
    let report = store.janitor_pass(store.now()).await?;
    Metrics::new("janitor").count("JanitorTasksFailed", report.failed).count("JanitorTasksStuck", report.stuck).emit();
    if report.failed > 0 {
        tracing::error!(?report, "the janitor left tasks unfinished");
        return Err(Error::Unavailable(format!("{} janitor tasks failed; they stay for the next pass", report.failed).into()));
    }
    Ok(report)
}
