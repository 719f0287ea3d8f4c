//! The watch a holder keeps on its own etcd keys (`lock::etcd::guard`), against a real
//! one-member etcd on 127.0.0.1, through the library: a key put by someone else is reported
//! taken, a deleted key deleted, our own key never; with the member stopped the hold goes
//! unproven (never "fine", never "broken"), and once it is back a fresh read proves it again.
//! End to end (`locks break` stopping a run) is in tests/etcd.rs.
//!
//! Needs etcd-server and etcd-client (scripts/deps.sh installs them).
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backupmanager::config::coord::EtcdSettings;
use backupmanager::lock::etcd::guard::{KeyGuard, Owned};
use backupmanager::lock::etcd::lease::Lease;
use backupmanager::lock::etcd::{Acquire, EtcdLocks};
use backupmanager::lock::{Identity, Record};
use backupmanager::sys::clock;
use support::etcd::EtcdCluster;

const ROUND: Duration = Duration::from_millis(1000);

fn locks(cluster: &EtcdCluster) -> Arc<EtcdLocks> {
    Arc::new(EtcdLocks::new(&EtcdSettings {
        endpoints: cluster.endpoints(),
        ca_file: None,
        cert_file: None,
        key_file: None,
        user: None,
        password_file: None,
        prefix: "/bmguard".into(),
        lease_ttl: Duration::from_secs(60),
    }))
}

/// Takes `key` under a new lease and starts guarding it.
fn hold(c: &Arc<EtcdLocks>, key: &str) -> (Lease, KeyGuard) {
    let lease = Lease::grant(c).expect("grant");
    let record = Record::new(&Identity::current(), "push", "run-1", c.lease_ttl);
    let sent = clock::boottime();
    let Acquire::Held { revision } = c
        .try_acquire(&[key.to_string()], &[], &record, lease.id)
        .expect("acquire")
    else {
        panic!("{key} is not free")
    };
    let owned = vec![Owned {
        key: key.into(),
        create_revision: Some(revision),
    }];
    let guard = KeyGuard::start(c, owned, lease.id, sent, ROUND);
    (lease, guard)
}

fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "no {what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_key_taken_or_deleted_is_reported_and_our_own_never() {
    let cluster = EtcdCluster::start(1);
    let c = locks(&cluster);
    let (_l1, taken) = hold(&c, "/bmguard/locks/h:/a");
    let (_l2, deleted) = hold(&c, "/bmguard/locks/h:/b");
    // Several rounds (a read, then a watch) on our own keys: proven, nothing reported.
    std::thread::sleep(3 * ROUND);
    for g in [&taken, &deleted] {
        assert_eq!(g.broken(), None);
        let (_, quiet) = g.unproven().unwrap();
        assert!(quiet < 2 * ROUND + Duration::from_secs(1), "{quiet:?}");
    }
    // Someone else's put (no lease, another value) and a delete, while the watches run.
    cluster.ctl(&["put", "/bmguard/locks/h:/a", "someone else"]);
    cluster.ctl(&["del", "/bmguard/locks/h:/b"]);
    let b = wait_for(Duration::from_secs(5), "taken report", || taken.broken());
    assert_eq!(b.key, "/bmguard/locks/h:/a");
    assert!(
        b.how
            .contains("was taken by a key not written by backupmanager"),
        "{b:?}"
    );
    let b = wait_for(Duration::from_secs(5), "deleted report", || {
        deleted.broken()
    });
    assert_eq!(b.key, "/bmguard/locks/h:/b");
    assert!(b.how.starts_with("was deleted"), "{b:?}");
    // A read after a stop says the same.
    assert_eq!(deleted.verify_now().unwrap(), Some(b));
}

#[test]
fn with_the_member_gone_the_hold_is_unproven_until_a_read_proves_it_again() {
    let mut cluster = EtcdCluster::start(1);
    let c = locks(&cluster);
    let (_lease, guard) = hold(&c, "/bmguard/locks/h:/c");
    std::thread::sleep(2 * ROUND);
    cluster.stop(0);
    // Fail closed: the watch and the reads fail, so the last proof only gets older; nothing
    // claims the key is still ours, nor that it was broken.
    wait_for(Duration::from_secs(15), "an unproven hold", || {
        let (_, quiet) = guard.unproven().unwrap();
        (quiet >= Duration::from_secs(4)).then_some(())
    });
    assert_eq!(guard.broken(), None);
    assert!(guard.verify_now().is_err());
    cluster.restart(0);
    // The member is back (with the key, and the lease kept alive): a fresh read proves it.
    wait_for(Duration::from_secs(20), "a fresh proof", || {
        let (_, quiet) = guard.unproven().unwrap();
        (quiet < Duration::from_secs(2)).then_some(())
    });
    assert_eq!(guard.broken(), None);
    assert_eq!(guard.verify_now().unwrap(), None);
}
