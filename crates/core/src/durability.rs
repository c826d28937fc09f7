//! A call's flushes to disk, awaited together before its answer.
//!
//! A call that writes waits for two flushes before it is answered: the
//! store's (its commit reaching the disk) and the audit log's (its record).
//! They are flushes of different files, so they need not wait for each
//! other. The audit layer runs each call in a [`Barrier`]'s scope; a store
//! that has committed a call's writes and must still wait for them to reach
//! the disk may hand that wait to the barrier ([`by_answer`]) instead of
//! awaiting it, and the audit layer awaits the barrier alongside the audit
//! record's append. The answer still waits for both, so no caller is ever
//! told of a write that is not durable; what the barrier changes is that the
//! rest of the call (and the next call of the same task) may run before the
//! write is on disk, as another connection's reader already may.
//!
//! Only writes whose code does nothing outside the process before the
//! answer (no message to another system, no notification that outlives a
//! crash) may hand their wait over; a store offers it as a separate way to
//! finish a write, never by default. Outside a barrier's scope (a spawned
//! task, a test, a call that is not audited) [`by_answer`] awaits at once.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

tokio::task_local! {
    static BARRIER: Barrier;
}

/// A store's wait for its flush: `Err(reason)` if the flush failed.
type Wait = BoxFuture<'static, Result<(), String>>;

/// Waits handed over by the writes of one call (see the module
/// documentation).
#[derive(Clone, Default)]
pub struct Barrier {
    waits: Arc<parking_lot::Mutex<Vec<Wait>>>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier").field("waits", &self.waits.lock().len()).finish()
    }
}

impl Barrier {
    /// Run `f` with this barrier as its task's: writes in it may hand their
    /// waits to it.
    pub async fn scope<F: Future>(&self, f: F) -> F::Output {
        BARRIER.scope(self.clone(), f).await
    }

    /// Whether no write handed a wait over (so far).
    pub fn is_empty(&self) -> bool {
        self.waits.lock().is_empty()
    }

    /// Await every wait handed over so far, together: the first failure's
    /// reason if one failed (all of them run to the end either way).
    pub async fn wait(&self) -> Result<(), String> {
        let waits = std::mem::take(&mut *self.waits.lock());
        futures::future::join_all(waits).await.into_iter().collect()
    }
}

/// Make sure `wait` (a store's flush of writes it has committed) is over
/// before the current call is answered: hand it to the call's barrier if the
/// task runs in one (and return at once), else await it now.
pub async fn by_answer<F>(wait: F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    match BARRIER.try_with(Barrier::clone) {
        Ok(barrier) => {
            barrier.waits.lock().push(Box::pin(wait));
            Ok(())
        }
        Err(_) => wait.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inside a scope a wait is handed over (it has not run when
    /// `by_answer` returns) and runs in `wait`, whose result is the first
    /// failure; outside a scope it runs at once.
    #[tokio::test]
    async fn waits_run_at_the_barrier_inside_a_scope_and_at_once_outside() {
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let wait = |ok: bool| {
            let ran = ran.clone();
            async move {
                ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if ok { Ok(()) } else { Err("the disk said no".to_owned()) }
            }
        };
        let barrier = Barrier::default();
        barrier
            .scope(async {
                assert_eq!(by_answer(wait(true)).await, Ok(()));
                assert_eq!(by_answer(wait(false)).await, Ok(()), "handed over, not yet run");
            })
            .await;
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert!(!barrier.is_empty());
        assert_eq!(barrier.wait().await, Err("the disk said no".to_owned()));
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 2, "both ran");
        assert!(barrier.is_empty());

        assert_eq!(by_answer(wait(false)).await, Err("the disk said no".to_owned()), "no scope: at once");
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
