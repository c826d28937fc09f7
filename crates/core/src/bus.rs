//! The in-process event bus: resource and list changes fan out to every
//! transport's subscribers. In cluster mode an adapter bridges it to NATS.

use tokio::sync::broadcast;

use crate::context::Notification;

/// A cloneable handle on the bus.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Notification>,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl Bus {
    /// A bus that buffers up to `capacity` events for slow subscribers;
    /// a subscriber that falls further behind skips ahead (and is told so).
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }

    pub fn publish(&self, n: Notification) {
        // No subscriber is not an error: nobody is listening.
        let _ = self.tx.send(n);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.tx.subscribe()
    }
}
