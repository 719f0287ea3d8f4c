//! The daemon's side of `metrics_textfile` and of "overdue" notifications. The metrics file is
//! rewritten at start and after every run, on the history writer's thread once the run's
//! record is written (so the file shows the run that just ended, and the scheduler never waits
//! on it); overdue jobs are looked for every 5 minutes, on that thread too.

use std::sync::Arc;

use super::Daemon;

impl Daemon {
    /// Rewrites `metrics_textfile` and recounts the restore points the web page's `/metrics`
    /// serves, on the history writer's thread.
    pub(super) fn refresh_metrics(&self) {
        let path = self.config.metrics_textfile.clone();
        let feed = self.web.as_ref().map(|(feed, _)| Arc::clone(feed));
        if path.is_none() && feed.is_none() {
            return;
        }
        let (config_path, plan) = (self.config_path.clone(), Arc::clone(&self.plan));
        self.history.then(move || {
            use crate::metrics::textfile;
            // One count (listing a remote series is an ssh round trip) for both consumers.
            let points = textfile::restore_points(&plan);
            if let Some(path) = path {
                textfile::write(&path, &textfile::render_for(&config_path, &plan, &points));
            }
            if let Some(feed) = feed {
                feed.set_restore_points(points);
            }
        });
    }
}

/// How often the daemon looks for overdue jobs (`notify_on: [overdue]`).
const OVERDUE_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

impl Daemon {
    /// Every [`OVERDUE_EVERY`]: jobs whose last success is older than their allowance are
    /// reported to the notifier (which tells each once until the next success). The status
    /// snapshot is read on the history writer's thread, never on this loop's.
    pub(super) fn check_overdue(&mut self) {
        let now = std::time::Instant::now();
        if now < self.next_overdue_check {
            return;
        }
        self.next_overdue_check = now + OVERDUE_EVERY;
        let config = Arc::clone(&self.config);
        if !config
            .jobs
            .iter()
            .any(|j| !config.notify_for(j).destinations.is_empty())
        {
            return;
        }
        let (config_path, alerts) = (self.config_path.clone(), Arc::clone(&self.alerts));
        self.history.then(move || {
            let live = crate::store::live::find(&config_path);
            let snap = crate::store::status::snapshot(
                &config_path,
                Some(&config),
                None,
                live.as_ref(),
                jiff::Timestamp::now(),
                &[],
            );
            for j in snap.jobs.iter().filter(|j| j.overdue) {
                alerts.overdue(&j.id, j.check_reason.clone());
            }
        });
    }
}
