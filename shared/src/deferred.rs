//! Start-up work that runs beside the rest of init: a value whose making starts at once, in a
//! task of its own, and that the first request needing it waits for.
//!
//! A function's init ends when it first asks the Runtime API for an event. Work that waits on
//! the network, such as a Secrets Manager call, need not hold that up: started here, it
//! overlaps the rest of init and the delivery of the first event, and a request that needs the
//! value waits for what is left of it. It fails closed: a request never gets a value that
//! failed to be made, only the error. A failure is not kept: the next request starts the work
//! again, as Lambda would run a failed init again.
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::Error;

type Start<T> = Box<dyn Fn() -> JoinHandle<Result<T, Error>> + Send + Sync>;

enum Slot<T> {
    Making(JoinHandle<Result<T, Error>>),
    Made(Arc<T>),
}

/// A value made in the background from init on; [`Deferred::get`] waits for it.
pub struct Deferred<T> {
    slot: Mutex<Slot<T>>,
    start: Start<T>,
}

impl<T: Send + Sync + 'static> Deferred<T> {
    /// Starts `make` now, on the current Tokio runtime, and again after each failure.
    pub fn start<F, Fut>(make: F) -> Deferred<T>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let start: Start<T> = Box::new(move || tokio::spawn(make()));
        Deferred { slot: Mutex::new(Slot::Making(start())), start }
    }

    /// The value, once made; the error of an attempt that failed, after which the next call
    /// waits for a new attempt.
    pub async fn get(&self) -> Result<Arc<T>, Error> {
        let mut slot = self.slot.lock().await;
        if let Slot::Making(making) = &mut *slot {
            let made = making.await;
            match made {
                Ok(Ok(value)) => *slot = Slot::Made(Arc::new(value)),
                failed => {
                    *slot = Slot::Making((self.start)());
                    return Err(match failed {
                        Ok(Err(error)) => error,
                        _ => Error::Config("a start-up task ended without its value".to_owned()),
                    });
                }
            }
        }
        match &*slot {
            Slot::Made(value) => Ok(Arc::clone(value)),
            Slot::Making(_) => Err(Error::Config("a start-up task ended without its value".to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn the_work_starts_before_anyone_asks_for_the_value() {
        let (started, mut told) = tokio::sync::mpsc::unbounded_channel();
        let deferred = Deferred::start(move || {
            let started = started.clone();
            async move {
                let _ = started.send(());
                Ok(7)
            }
        });
        told.recv().await.expect("the work ran without a get");
        assert_eq!(*deferred.get().await.unwrap(), 7);
        assert_eq!(*deferred.get().await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_failure_is_returned_never_a_value_and_the_next_request_tries_again() {
        let attempts = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&attempts);
        let deferred = Deferred::start(move || {
            let attempt = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                match attempt {
                    0 => Err(Error::Config("RECEIPT_SALT: reading the secret failed: timed out".to_owned())),
                    _ => Ok("salt"),
                }
            }
        });
        let error = deferred.get().await.unwrap_err();
        assert!(matches!(&error, Error::Config(message) if message.contains("timed out")), "{error}");
        assert_eq!(*deferred.get().await.unwrap(), "salt");
        assert_eq!(*deferred.get().await.unwrap(), "salt");
        assert_eq!(attempts.load(Ordering::SeqCst), 2, "made once more after the failure, then kept");
    }

    #[tokio::test]
    async fn a_task_that_panics_is_an_error_not_a_value() {
        let deferred: Deferred<u8> = Deferred::start(|| async { panic!("bad start-up") });
        assert!(matches!(deferred.get().await, Err(Error::Config(_))));
    }
}
