//! Stopping on Ctrl-C. Every long-running local tool ends on the first SIGINT or SIGTERM,
//! also when it was started with SIGINT ignored, as a script's background jobs are.
use std::future::Future;

use tokio::signal::unix::{signal, SignalKind};

/// Completes on the first SIGINT or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled, so a signal that arrives in between is not missed.
pub fn requested() -> impl Future<Output = ()> {
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            // No handler could be installed: the default actions still end the process.
            _ => std::future::pending().await,
        }
    }
}
