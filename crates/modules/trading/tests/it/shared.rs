//! Cluster mode's desk: two members of one venue on the CI machine's
//! PostgreSQL (`PLEXUS_TEST_POSTGRES_URL`), one leading and one following,
//! order entry forwarded in-process (the binary forwards over NATS). The
//! leader's database session is then killed: the follower takes the lead,
//! no acknowledged order is lost, and the old leader cannot write again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use plexus_trading::cluster::{ForwardError, Forwarder, SharedVenue};
use plexus_trading::desk::{Desk, DeskError, OrderRef, OrderReport, Status};
use plexus_trading::types::Side;
use sqlx::Connection;

use super::desk::{config, limit};

/// Forwarding between desks of this process, by node id.
#[derive(Default)]
struct Router(Mutex<HashMap<String, Desk>>);

#[async_trait::async_trait]
impl Forwarder for Router {
    async fn send(&self, node: &str, body: Vec<u8>) -> Result<Vec<u8>, ForwardError> {
        let desk = self.0.lock().get(node).cloned();
        match desk {
            Some(d) => Ok(d.serve(&body).await),
            None => Err(ForwardError::Unreached(node.to_owned())),
        }
    }
}

fn postgres() -> Option<String> {
    match std::env::var("PLEXUS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(std::env::var_os("CI").is_none(), "CI must set PLEXUS_TEST_POSTGRES_URL");
            eprintln!("PLEXUS_TEST_POSTGRES_URL is not set: skipping the shared-venue test (it needs PostgreSQL)");
            None
        }
    }
}

async fn member(url: &str, node: &str, venue: &str, router: &Arc<Router>) -> Desk {
    let shared = Arc::new(SharedVenue::connect(url, node, venue).await.unwrap());
    let desk = Desk::open_shared(config(Path::new("/nonexistent")), shared, Arc::clone(router) as Arc<dyn Forwarder>)
        .await
        .unwrap();
    router.0.lock().insert(node.to_owned(), desk.clone());
    desk
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn book(desk: &Desk) -> Vec<(String, f64, f64)> {
    let mut out = Vec::new();
    for a in ["alpha", "beta", "gamma"] {
        for p in desk.positions(a).unwrap() {
            out.push((format!("{a}/{}", p.symbol), p.qty, p.avg_price));
        }
        for o in desk.open_orders(a).unwrap() {
            out.push((format!("{a}/open/{}", o.order_id.unwrap()), o.remaining_qty, o.price.unwrap_or(0.0)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_writes_followers_forward_and_a_killed_leader_loses_nothing() {
    let Some(url) = postgres() else { return };
    let venue = format!("test-{}-{}", std::process::id(), rand_tag());
    let router = Arc::new(Router::default());

    let a = member(&url, "a", &venue, &router).await;
    until("a to lead", || a.leads()).await;
    let b = member(&url, "b", &venue, &router).await;
    assert!(!b.leads(), "two leaders");

    // An order through the follower is forwarded, and the follower reads it
    // back at once (it waits until it has applied what the leader wrote).
    let sell = b.place(limit("beta", Side::Sell, 3000.0, 300.0)).await.unwrap();
    assert_eq!(sell.status, Status::New, "{sell:?}");
    assert!(sell.risk.is_some(), "the leader's risk figures travel back");
    let open = b.open_orders("beta").unwrap();
    assert_eq!(open.iter().map(|o| o.order_id).collect::<Vec<_>>(), vec![sell.order_id]);
    // Through the leader, with a client order id.
    let mut buy = limit("alpha", Side::Buy, 3005.0, 200.0);
    buy.client_order_id = Some("買い-1".into());
    let filled = a.place(buy.clone()).await.unwrap();
    assert_eq!((filled.status, filled.executed_qty, filled.avg_price), (Status::Filled, 200.0, Some(3000.0)));
    // The same client order id through the follower: the same order, not a second one.
    let again = b.place(buy).await.unwrap();
    assert_eq!((again.order_id, again.repeated), (filled.order_id, true));
    // Unknown orders are refused with the leader's reason.
    let e = b.cancel("alpha", OrderRef::Client("なし".into())).await.unwrap_err();
    assert!(matches!(e, DeskError::Unknown { what: "order", .. }), "{e}");
    until("b to follow a", || b.applied() == a.applied()).await;
    assert_eq!(book(&a), book(&b));
    assert!(!book(&a).is_empty());

    // Kill the leader's database session (as if its node died): its lock goes.
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let killed: Vec<bool> =
        sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1")
            .bind(format!("plexus trading {venue} a"))
            .fetch_all(&mut admin)
            .await
            .unwrap();
    assert_eq!(killed, vec![true]);
    // The old leader does not know yet. Its next write fails (its session
    // is gone, and with it the lock): the batch's outcome is reported
    // unknown, never acknowledged, and the member rebuilds from the journal.
    let mut late = limit("alpha", Side::Sell, 3100.0, 100.0);
    late.client_order_id = Some("late".into());
    let first = a.place(late.clone()).await;
    assert!(matches!(first, Err(DeskError::Unsettled)), "a wrote without its lock: {first:?}");
    // Clients carry on through the other member; the venue has one leader again.
    let t0 = Instant::now();
    let mut after = limit("gamma", Side::Buy, 3000.0, 100.0);
    after.client_order_id = Some("after-kill".into());
    let taken: OrderReport = b.place(after).await.unwrap();
    eprintln!("failover: an order through b was accepted {:?} after a's session was killed", t0.elapsed());
    assert_eq!(taken.status, Status::Filled, "gamma bought the rest of beta's sell: {taken:?}");
    until("one leader", || a.leads() != b.leads()).await;
    // The refused write was not kept: sent again, it is a new order.
    let resent = a.place(late).await.unwrap();
    assert_eq!((resent.status, resent.repeated), (Status::New, false), "{resent:?}");
    until("a and b to agree", || a.applied() == b.applied()).await;
    assert_eq!(book(&a), book(&b));

    // A third member replays the shared journal to the same book.
    let c = member(&url, "c", &venue, &router).await;
    until("c to catch up", || c.applied() == b.applied()).await;
    assert_eq!(book(&c), book(&b));
    let o = c.order("gamma", &OrderRef::Client("after-kill".into())).unwrap();
    assert_eq!((o.status, o.executed_qty), (Status::Filled, 100.0));

    // A planned stop of the leader hands the venue over.
    let (name, leader, rest) = if a.leads() { ("a", &a, [&b, &c]) } else { ("b", &b, [&a, &c]) };
    leader.close();
    router.0.lock().remove(name);
    until("another member to lead", || rest.iter().any(|d| d.leads())).await;
    let next = c.place(limit("beta", Side::Sell, 3200.0, 100.0)).await.unwrap();
    assert_eq!(next.status, Status::New);
    for d in [&a, &b, &c] {
        d.close();
    }
    let _ = sqlx::query("DELETE FROM trading_journal WHERE venue = $1").bind(&venue).execute(&mut admin).await;
    let _ = sqlx::query("DELETE FROM trading_leaders WHERE venue = $1").bind(&venue).execute(&mut admin).await;
}

fn rand_tag() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}
