//! The daemon's side of `metrics_textfile`: rewritten at start and after every run, on the
//! history writer's thread once the run's record is written (so the file shows the run that
//! just ended, and the scheduler never waits on it).

use std::sync::Arc;

use super::Daemon;

impl Daemon {
    pub(super) fn refresh_metrics(&self) {
        let Some(path) = self.config.metrics_textfile.clone() else {
            return;
        };
        let (config_path, plan) = (self.config_path.clone(), Arc::clone(&self.plan));
        self.history
            .then(move || crate::metrics::textfile::refresh(&config_path, &plan, &path));
    }
}
