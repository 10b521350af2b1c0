//! Test hooks, compiled only for this crate's own tests (`cfg(test)`, the tests in `held`): no
//! build of the library that anything else links contains them.
//!
//! The [`Gate`] holds RPCs at one point of their life: after they took their concurrency permit
//! and their pack snapshot, before anything is decided. Tests use it to make "an RPC in
//! flight" a state they can reach without sleeping: hold the next `n` RPCs, wait until `n` are
//! held, do something (reload the pack, send more RPCs), then release them.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

/// Holds the next RPCs after their pack snapshot until released. Inert until
/// [`hold_next`](Gate::hold_next) is called.
#[derive(Debug)]
pub struct Gate {
    /// How many of the next RPCs to hold.
    tickets: AtomicUsize,
    /// RPCs that reached the gate and were held, since the server started.
    held: watch::Sender<usize>,
    /// Whether held RPCs may go on.
    open: watch::Sender<bool>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            tickets: AtomicUsize::new(0),
            held: watch::Sender::new(0),
            open: watch::Sender::new(true),
        }
    }
}

impl Gate {
    /// Holds the next `n` RPCs (counted from now) at the gate until [`release`](Gate::release);
    /// later ones pass.
    pub fn hold_next(&self, n: usize) {
        self.open.send_replace(false);
        self.tickets.store(n, Ordering::SeqCst);
    }

    /// Resolves once `n` RPCs in all have been held since the server started.
    pub async fn wait_held(&self, n: usize) {
        let mut rx = self.held.subscribe();
        let _ = rx.wait_for(|held| *held >= n).await;
    }

    /// Lets every held RPC go on.
    pub fn release(&self) {
        self.tickets.store(0, Ordering::SeqCst);
        self.open.send_replace(true);
    }

    /// Called by every RPC after its pack snapshot: waits while it is one of the held ones.
    pub(crate) async fn pass(&self) {
        let took = self
            .tickets
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| t.checked_sub(1))
            .is_ok();
        if !took {
            return;
        }
        let mut open = self.open.subscribe();
        self.held.send_modify(|h| *h += 1);
        let _ = open.wait_for(|o| *o).await;
    }
}
