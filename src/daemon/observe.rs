//! What the daemon tells the outside: the sd_notify status line, the live state it publishes
//! for `status` (store/live.rs), and the fan-out of run events to its observers.
//!
//! Must not: change the schedule or start runs.

use jiff::Timestamp;
use tracing::warn;

use super::Daemon;
use crate::events::{EventKind, RunEvent};
use crate::schedule::format::rfc3339;
use crate::store::live::{Doing, LiveRun};

impl Daemon {
    pub(super) fn status_line(&self) -> String {
        let next = self.next_job(Timestamp::now());
        let mut s = match next {
            Some((t, id)) => format!("next: {id} at {}", rfc3339(t, self.tz())),
            None => "no scheduled jobs".into(),
        };
        if !self.running.is_empty() {
            let mut names: Vec<String> = self
                .running
                .iter()
                .map(|(id, r)| match &r.doing {
                    Doing::Waiting { reason, .. } => format!("{id} (waiting: {reason})"),
                    _ => id.clone(),
                })
                .collect();
            names.sort();
            s.push_str(&format!("; running: {}", names.join(", ")));
        }
        s
    }

    /// A run's event: keep what the status line needs, then hand it to every observer.
    pub(super) fn run_event(&mut self, ev: &RunEvent) {
        let tz = self.config.timezone.tz.clone();
        let mut changed = false;
        if let Some(r) = self.running.get_mut(&ev.job) {
            if r.run_id.as_deref() != Some(ev.run_id.as_str()) {
                r.run_id = Some(ev.run_id.clone());
                changed = true;
            }
            if let Some(doing) = doing_after(&r.doing, ev, &tz) {
                r.doing = doing;
                changed = true;
            }
        }
        if changed {
            self.publish();
        }
        for o in &self.observers {
            o.on_event(ev);
        }
    }

    /// Rewrites the live state (both places) if it changed.
    pub(super) fn publish(&mut self) {
        self.live.runs = self
            .running
            .iter()
            .map(|(id, r)| {
                let run = LiveRun {
                    run_id: r.run_id.clone(),
                    started: rfc3339(r.started, self.tz()),
                    doing: r.doing.clone(),
                };
                (id.clone(), run)
            })
            .collect();
        if let Err(e) = self.publisher.publish(&self.live) {
            warn!("live state: {e}");
        }
        if let Some((feed, _)) = &self.web {
            feed.set_live(&self.live);
        }
    }

    pub(super) fn update_status(&mut self) {
        let s = self.status_line();
        if s != self.last_status {
            self.notifier.status(&s);
            self.last_status = s;
        }
    }
}

/// What a run does after `ev`, if that changed: a wait (with its lock and holder), holding its
/// locks, or a sync. Output lines, refreshes and the like change nothing.
fn doing_after(now: &Doing, ev: &RunEvent, tz: &jiff::tz::TimeZone) -> Option<Doing> {
    let since = rfc3339(ev.at, tz);
    let next = match &ev.kind {
        EventKind::Waiting {
            reason,
            lock,
            holder,
            ..
        } => {
            let lock = lock.as_ref().map(|l| format!("{} on {}", l.path, l.host));
            if let Doing::Waiting {
                reason: r,
                lock: l,
                holder: h,
                ..
            } = now
            {
                // The same wait, re-reported: keep when it began.
                if (r, l, h) == (reason, &lock, holder) {
                    return None;
                }
            }
            Doing::Waiting {
                reason: reason.clone(),
                lock,
                holder: holder.clone(),
                since,
            }
        }
        EventKind::LockTaken { .. } | EventKind::SyncDone { .. } => {
            if matches!(now, Doing::Running { .. }) {
                return None;
            }
            Doing::Running { since }
        }
        EventKind::SyncStarted {
            index,
            source,
            dest,
            ..
        } => {
            if matches!(now, Doing::Syncing { index: i, .. } if i == index) {
                return None;
            }
            Doing::Syncing {
                index: *index,
                source: source.clone(),
                dest: dest.clone(),
                since,
            }
        }
        // Between whole-run tries nothing is held: say when the next one starts.
        EventKind::RunRetrying {
            attempt,
            wait,
            until,
        } => Doing::Waiting {
            reason: format!(
                "retry: try {attempt} in {}s after a transient failure (tries until {})",
                wait.as_secs(),
                rfc3339(*until, tz)
            ),
            lock: None,
            holder: None,
            since,
        },
        _ => return None,
    };
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn between_tries_a_run_is_waiting_for_its_next_try() {
        let tz = jiff::tz::TimeZone::UTC;
        let at: Timestamp = "2026-11-29T12:00:00Z".parse().unwrap();
        let ev = RunEvent {
            job: "j".into(),
            run_id: "r".into(),
            at,
            kind: EventKind::RunRetrying {
                attempt: 2,
                wait: Duration::from_secs(30),
                until: "2026-11-29T13:00:00Z".parse().unwrap(),
            },
        };
        let now = Doing::Running {
            since: "2026-11-29T11:59:00Z".into(),
        };
        match doing_after(&now, &ev, &tz) {
            Some(Doing::Waiting {
                reason,
                lock: None,
                since,
                ..
            }) => {
                assert_eq!(
                    reason,
                    "retry: try 2 in 30s after a transient failure (tries until 2026-11-29T13:00:00+00:00)"
                );
                assert_eq!(since, "2026-11-29T12:00:00+00:00");
            }
            other => panic!("{other:?}"),
        }
    }
}
