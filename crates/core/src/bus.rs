//! The in-process event bus: resource and list changes fan out to every
//! transport's subscribers. In cluster mode a [`Relay`] carries the node's
//! own events to the other nodes (NATS), and their events come back in
//! through [`Bus::deliver`].

use std::sync::{Arc, OnceLock};

use tokio::sync::broadcast;

use crate::context::Notification;

/// Carries this node's events to the other nodes of a cluster. `forward`
/// is called on the publisher's path: it must not block (queue and return).
pub trait Relay: Send + Sync + 'static {
    fn forward(&self, n: &Notification);
}

/// A cloneable handle on the bus.
#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<Notification>,
    relay: Arc<OnceLock<Arc<dyn Relay>>>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("relayed", &self.relay.get().is_some()).finish_non_exhaustive()
    }
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
        Self { tx, relay: Arc::new(OnceLock::new()) }
    }

    /// An event of this node: to its own subscribers at once (they never
    /// wait for, or depend on, the cluster), and through the relay, if
    /// any, to the other nodes.
    pub fn publish(&self, n: Notification) {
        if let Some(relay) = self.relay.get() {
            relay.forward(&n);
        }
        // No subscriber is not an error: nobody is listening.
        let _ = self.tx.send(n);
    }

    /// An event of another node: to this node's subscribers only (never
    /// relayed again, so events do not loop).
    pub fn deliver(&self, n: Notification) {
        let _ = self.tx.send(n);
    }

    /// Relay this node's events from now on (once: false if a relay is set).
    pub fn set_relay(&self, relay: Arc<dyn Relay>) -> bool {
        self.relay.set(relay).is_ok()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder(parking_lot::Mutex<Vec<Notification>>);

    impl Relay for Recorder {
        fn forward(&self, n: &Notification) {
            self.0.lock().push(n.clone());
        }
    }

    #[test]
    fn own_events_are_relayed_and_delivered_others_only_delivered() {
        let bus = Bus::default();
        let mut rx = bus.subscribe();
        let relay = Arc::new(Recorder::default());
        assert!(bus.set_relay(relay.clone()));
        assert!(!bus.clone().set_relay(Arc::new(Recorder::default())), "one relay per bus, clones included");
        bus.publish(Notification::ResourceUpdated("shared://config/a.json".into()));
        bus.deliver(Notification::ResourceUpdated("shared://config/b.json".into()));
        assert_eq!(*relay.0.lock(), [Notification::ResourceUpdated("shared://config/a.json".into())]);
        assert_eq!(rx.try_recv().unwrap(), Notification::ResourceUpdated("shared://config/a.json".into()));
        assert_eq!(rx.try_recv().unwrap(), Notification::ResourceUpdated("shared://config/b.json".into()));
    }
}
