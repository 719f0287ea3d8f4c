//! Locks and slots as keys in etcd (v3), for fleets that outgrow lock files over ssh.
//!
//! Layout under the configured prefix: `<prefix>/locks/<host>:<path>` (one key per
//! `lock_files`/`blocks_on` entry, the same canonical name either backend uses) and
//! `<prefix>/slots/<name>/<lease id>` (one key per run holding or queueing for a slot). Every
//! key is attached to its run's lease, so a crashed holder's keys vanish when the lease expires;
//! every value is a lock [`Record`] (who holds it).
//!
//! - Acquiring locks is one transaction: none of my blockers' keys and none of my own exist →
//!   put my keys with my lease ([`EtcdLocks::try_acquire`]). The transaction's revision is the
//!   keys' creation revision: the fencing token, and what release checks.
//! - A slot is a counting semaphore: a run puts its key under the slot's prefix and holds the
//!   slot while its key is among the first N by creation revision ([`EtcdLocks::slot_standing`]).
//!   Keys ahead of it only ever go away, so once held a slot stays held while the lease lives.
//! - Release deletes a key only while its creation revision is still ours.
//!
//! etcd's server-side Lock API is not used (etcd-io/etcd#9921: 3.4 can report a lock whose key
//! is gone). The design and what stays unfenced are in DESIGN.md, "Locks on etcd".
//!
//! Must not: wait, keep leases alive or know about jobs (the run does), or delete a key that
//! is not the caller's except through [`EtcdLocks::break_key`] (the operator's `locks break`).

pub mod b64;
pub mod client;
pub mod guard;
pub mod lease;

use std::time::Duration;

use serde_json::{json, Value};

use super::judge::{Foreign, Holder, Observed};
use super::record::Record;
use crate::config::coord::EtcdSettings;
pub use client::{Client, EtcdError, Kv, Watched};

/// The etcd cluster, with the key layout.
#[derive(Debug)]
pub struct EtcdLocks {
    pub client: Client,
    pub prefix: String,
    pub lease_ttl: Duration,
}

/// The outcome of one acquire transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    /// Every own key is ours, created at `revision` (the fencing token).
    Held { revision: i64 },
    /// `key` exists and is not ours; watch it from `revision + 1`.
    Blocked {
        key: String,
        holder: Option<Holder>,
        revision: i64,
    },
}

/// Where a run stands in a slot's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Held,
    /// `ahead` keys come before ours and the slot admits only `n`; watch the slot from
    /// `revision + 1`. The slot is ours once `ahead - n + 1` of `ahead_keys` are gone (keys
    /// only join behind us), so only their deletions need wake this run.
    Waiting {
        ahead: usize,
        ahead_keys: Vec<String>,
        holders: Vec<Holder>,
        revision: i64,
    },
}

/// One key, for `backupmanager locks`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub holder: Holder,
    pub create_revision: i64,
    pub lease: i64,
}

/// Who a key's value says holds it.
pub fn holder_of_value(value: &str) -> Holder {
    match Record::parse(value) {
        Some(r) => Holder::Ours(r),
        None => Holder::Foreign(Foreign::File {
            size: Some(value.len() as u64),
        }),
    }
}

/// Says who holds a key, as lock files do.
pub fn describe(holder: &Holder) -> String {
    match holder {
        Holder::Foreign(_) => "a key not written by backupmanager".into(),
        h => Observed {
            holder: h.clone(),
            age: Duration::ZERO,
        }
        .to_string(),
    }
}

fn put(key: &str, value: &str, lease: i64) -> Value {
    json!({"request_put": {"key": b64::encode(key.as_bytes()), "value": b64::encode(value.as_bytes()), "lease": lease.to_string()}})
}

fn get(key: &str) -> Value {
    json!({"request_range": {"key": b64::encode(key.as_bytes())}})
}

fn absent(key: &str) -> Value {
    json!({"key": b64::encode(key.as_bytes()), "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
}

impl EtcdLocks {
    /// Reads no file and connects nowhere yet: the client is set up on its first request.
    pub fn new(s: &EtcdSettings) -> EtcdLocks {
        EtcdLocks {
            client: Client::new(s),
            prefix: s.prefix.clone(),
            lease_ttl: s.lease_ttl,
        }
    }

    /// The key of a lock_files/blocks_on entry, from its canonical name `<host>:<path>`.
    pub fn lock_key(&self, canonical: &str) -> String {
        format!("{}/locks/{canonical}", self.prefix)
    }

    pub fn slot_prefix(&self, slot: &str) -> String {
        format!("{}/slots/{slot}/", self.prefix)
    }

    pub fn slot_key(&self, slot: &str, lease: i64) -> String {
        format!("{}{lease:016x}", self.slot_prefix(slot))
    }

    /// One transaction: if none of `own` and none of `blockers` exist, put every `own` key with
    /// `record` and `lease`. A retried transaction whose first try was applied finds our own
    /// keys under our lease and counts as held.
    pub fn try_acquire(
        &self,
        own: &[String],
        blockers: &[String],
        record: &Record,
        lease: i64,
    ) -> Result<Acquire, EtcdError> {
        let value = record.to_line();
        let all: Vec<&String> = own.iter().chain(blockers).collect();
        let (ok, revision, responses) = self.client.txn(
            all.iter().map(|k| absent(k)).collect(),
            own.iter().map(|k| put(k, &value, lease)).collect(),
            all.iter().map(|k| get(k)).collect(),
        )?;
        if ok {
            return Ok(Acquire::Held { revision });
        }
        if responses.len() != all.len() {
            return Err(self.malformed("an acquire transaction", "wrong number of responses"));
        }
        let mut ours_at = None;
        for (i, (key, r)) in all.iter().zip(&responses).enumerate() {
            let range = r.get("response_range").unwrap_or(&Value::Null);
            let kvs = self.client.kvs(range, "an acquire transaction")?;
            match kvs.first() {
                None if i < own.len() => {
                    // Some own key is absent while the compare failed: a blocker exists.
                }
                None => {}
                Some(kv) if i < own.len() && kv.lease == lease => {
                    ours_at = Some(kv.create_revision);
                }
                Some(kv) => {
                    return Ok(Acquire::Blocked {
                        key: (*key).clone(),
                        holder: Some(holder_of_value(&kv.value)),
                        revision,
                    })
                }
            }
        }
        let all_ours = own.iter().zip(&responses).all(|(_, r)| {
            r.get("response_range")
                .and_then(|v| self.client.kvs(v, "").ok())
                .is_some_and(|k| k.first().is_some_and(|kv| kv.lease == lease))
        });
        match ours_at {
            Some(rev) if all_ours => Ok(Acquire::Held { revision: rev }),
            // Changed between compare and read (the transaction is atomic, our reading of it
            // is too, so this is a key that came and went): try again at once.
            _ => Ok(Acquire::Blocked {
                key: own
                    .first()
                    .or(blockers.first())
                    .cloned()
                    .unwrap_or_default(),
                holder: None,
                revision,
            }),
        }
    }

    /// Puts this run's key in `slot`'s queue (once; a later call keeps its place).
    pub fn join_slot(&self, slot: &str, record: &Record, lease: i64) -> Result<(), EtcdError> {
        let key = self.slot_key(slot, lease);
        self.client.txn(
            vec![absent(&key)],
            vec![put(&key, &record.to_line(), lease)],
            vec![],
        )?;
        Ok(())
    }

    /// Whether this run's key is among the first `n` of `slot` by creation revision.
    pub fn slot_standing(&self, slot: &str, n: u32, lease: i64) -> Result<Standing, EtcdError> {
        let prefix = self.slot_prefix(slot);
        let (revision, kvs) = self
            .client
            .range(&prefix, Some(&client::prefix_end(&prefix)))?;
        let mine = self.slot_key(slot, lease);
        let Some(pos) = kvs.iter().position(|kv| kv.key == mine) else {
            return Err(self.malformed(
                "a slot range",
                &format!("our key {mine} is missing (lease expired?)"),
            ));
        };
        if pos < n as usize {
            return Ok(Standing::Held);
        }
        Ok(Standing::Waiting {
            ahead: pos,
            ahead_keys: kvs[..pos].iter().map(|kv| kv.key.clone()).collect(),
            holders: kvs[..n as usize]
                .iter()
                .map(|kv| holder_of_value(&kv.value))
                .collect(),
            revision,
        })
    }

    /// Deletes `key` only while its creation revision is `create_revision`. Returns whether it
    /// did.
    pub fn release(&self, key: &str, create_revision: i64) -> Result<bool, EtcdError> {
        let (ok, _, _) = self.client.txn(
            vec![json!({"key": b64::encode(key.as_bytes()), "target": "CREATE", "result": "EQUAL", "create_revision": create_revision.to_string()})],
            vec![json!({"request_delete_range": {"key": b64::encode(key.as_bytes())}})],
            vec![],
        )?;
        Ok(ok)
    }

    /// Every lock and slot key under the prefix.
    pub fn list(&self) -> Result<Vec<Entry>, EtcdError> {
        let p = format!("{}/", self.prefix);
        let (_, kvs) = self.client.range(&p, Some(&client::prefix_end(&p)))?;
        Ok(kvs
            .into_iter()
            .map(|kv| Entry {
                holder: holder_of_value(&kv.value),
                key: kv.key,
                create_revision: kv.create_revision,
                lease: kv.lease,
            })
            .collect())
    }

    /// Deletes `key` whoever holds it (the operator's `locks break`), but only while it is
    /// unchanged since the operator saw it (`mod_revision`), so a key that changed hands after
    /// the confirmation is left alone. Returns whether it deleted it.
    pub fn break_key(&self, key: &str, mod_revision: i64) -> Result<bool, EtcdError> {
        let (ok, _, _) = self.client.txn(
            vec![json!({"key": b64::encode(key.as_bytes()), "target": "MOD", "result": "EQUAL", "mod_revision": mod_revision.to_string()})],
            vec![json!({"request_delete_range": {"key": b64::encode(key.as_bytes())}})],
            vec![],
        )?;
        Ok(ok)
    }

    fn malformed(&self, what: &str, message: &str) -> EtcdError {
        EtcdError::Malformed {
            endpoint: self.client.endpoints(),
            what: what.into(),
            message: message.into(),
        }
    }
}
