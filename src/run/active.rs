//! Which runs of this process are in progress, so the lock judge can tell this process's live
//! locks from ones its earlier runs failed to release (a network cut during release).
//!
//! Owned by whoever starts runs (the daemon, or `run-job`) and handed to each run; not a
//! global. Must not: be consulted for another process's locks.

use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct ActiveRuns(Arc<Mutex<Vec<String>>>);

/// Marks a run as in progress until dropped.
pub struct ActiveGuard {
    runs: ActiveRuns,
    run_id: String,
}

impl ActiveRuns {
    pub fn register(&self, run_id: &str) -> ActiveGuard {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(run_id.to_string());
        ActiveGuard {
            runs: self.clone(),
            run_id: run_id.to_string(),
        }
    }

    pub fn contains(&self, run_id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|r| r == run_id)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut runs = self.runs.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = runs.iter().position(|r| *r == self.run_id) {
            runs.swap_remove(i);
        }
    }
}
