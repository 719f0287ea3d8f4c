//! SIGHUP: re-read the config and build a new plan. A valid one replaces the old (running jobs
//! finish under the old one); an invalid one, or one that cannot be built, is logged error by
//! error and the old one stays. The runtime and state directories stay the running daemon's
//! until a restart (DESIGN.md, "Hardening decisions").
//!
//! Must not: stop or start runs.

use std::sync::Arc;

use jiff::Timestamp;
use tracing::{error, info, warn};

use super::{log_diagnostic, Daemon};
use crate::config;
use crate::plan;

impl Daemon {
    pub(super) fn reload(&mut self) {
        self.notifier.reloading();
        info!(
            phase = "reload",
            "SIGHUP: re-reading {}",
            self.config_path.display()
        );
        let loaded = config::load(&self.config_path);
        for d in &loaded.diagnostics {
            log_diagnostic(d);
        }
        match loaded.config {
            None => error!(
                phase = "reload",
                "{}: invalid: {} error(s); keeping the running configuration",
                self.config_path.display(),
                loaded.errors()
            ),
            Some(mut new) => {
                // The pid file cannot move while we run, so neither may what it vouches for:
                // run locks, ssh sockets (under pid_file_dir) and state.json stay where this
                // daemon started until it restarts. Building the new plan on the new dirs
                // moved run locks and state at once, so `status` saw no daemon and `run-job`
                // could start a second copy of a job the daemon was running.
                if new.pid_file_dir != self.config.pid_file_dir
                    || new.state_dir != self.config.state_dir
                {
                    warn!(
                        phase = "reload",
                        "pid_file_dir and state_dir changes take effect at the next restart: until \
                         then this daemon keeps its pid file, run locks and ssh sockets in {} and \
                         its state in {} (the configuration now says {} and {}; `status` and \
                         `run-job` find this daemon's through its registration); restart the \
                         daemon to move them",
                        self.config.pid_file_dir.display(),
                        self.config.state_dir.display(),
                        new.pid_file_dir.display(),
                        new.state_dir.display()
                    );
                    new.pid_file_dir = self.config.pid_file_dir.clone();
                    new.state_dir = self.config.state_dir.clone();
                }
                if new.http != self.config.http {
                    warn!(
                        phase = "reload",
                        "http changes take effect at the next restart: the status page keeps its \
                         listeners and token until then"
                    );
                }
                let plan = match plan::build(new) {
                    Ok(p) => Arc::new(p),
                    Err(e) => {
                        error!(
                            phase = "reload",
                            "{}: {e}; keeping the running configuration",
                            self.config_path.display()
                        );
                        let status = self.status_line();
                        self.notifier.ready(&status);
                        self.last_status = status;
                        return;
                    }
                };
                let new = &*plan.config;
                let old: Vec<&str> = self.config.jobs.iter().map(|j| j.id.as_str()).collect();
                let added: Vec<String> = new
                    .jobs
                    .iter()
                    .filter(|j| !old.contains(&j.id.as_str()))
                    .map(|j| j.id.clone())
                    .collect();
                let removed: Vec<String> = old
                    .iter()
                    .filter(|id| new.job(id).is_none())
                    .map(|s| s.to_string())
                    .collect();
                let now = Timestamp::now();
                for job in new.jobs.iter().filter(|j| j.enabled) {
                    self.state
                        .jobs
                        .entry(job.id.clone())
                        .or_default()
                        .start_scheduling(now);
                }
                self.config = Arc::clone(&plan.config);
                self.plan = plan;
                if let Some((feed, _)) = &self.web {
                    feed.set_config(Arc::clone(&self.config));
                }
                self.alerts.set_config(Arc::clone(&self.config));
                info!(
                    phase = "reload",
                    "configuration reloaded: {} job(s); added: [{}]; removed: [{}]",
                    self.config.jobs.len(),
                    added.join(", "),
                    removed.join(", ")
                );
                self.save_state();
            }
        }
        let status = self.status_line();
        self.notifier.ready(&status);
        self.last_status = status;
    }
}
