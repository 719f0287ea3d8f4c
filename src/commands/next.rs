//! `backupmanager next`: upcoming fire times of the configured jobs or of one expression.

use std::path::Path;

use jiff::{tz::TimeZone, Timestamp};

use crate::config;
use crate::exit;
use crate::schedule::format::rfc3339;
use crate::schedule::Schedule;

pub fn run(
    path: &Path,
    jobs: &[String],
    expr: Option<&str>,
    from: Option<&str>,
    count: usize,
) -> i32 {
    // The zone the daemon would use. For a bare expression a missing config is fine.
    let loaded = config::load(path);
    let tz = match &loaded.config {
        Some(c) => c.timezone.tz.clone(),
        None if expr.is_some() => crate::config::zone::system(),
        None => {
            eprintln!("{}", loaded.render());
            eprintln!("{}: invalid: {} error(s)", path.display(), loaded.errors());
            return exit::CONFIG;
        }
    };
    let after = match from {
        None => Timestamp::now(),
        Some(s) => match parse_instant(s, &tz) {
            Some(t) => t,
            None => {
                eprintln!("error: --from `{s}` is not a time; use RFC 3339 such as 2026-03-29T01:00:00+01:00");
                return exit::USAGE;
            }
        },
    };

    if let Some(expr) = expr {
        let schedule = match Schedule::parse(expr) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: invalid cron expression `{}`: {e}", expr.trim());
                return exit::USAGE;
            }
        };
        if schedule.is_reboot() {
            println!("@reboot: runs once when the daemon starts");
            return exit::OK;
        }
        for t in schedule.upcoming(after, &tz, count) {
            println!("{}", rfc3339(t, &tz));
        }
        return exit::OK;
    }

    let config = loaded.config.expect("checked above");
    for id in jobs {
        if config.job(id).is_none() {
            return super::unknown_job(path, &config, id);
        }
    }
    for job in &config.jobs {
        if jobs.is_empty() && !job.enabled || !jobs.is_empty() && !jobs.contains(&job.id) {
            continue;
        }
        if job.schedule.is_reboot() {
            println!("{}\t@reboot (once when the daemon starts)", job.id);
            continue;
        }
        for t in job.schedule.upcoming(after, &tz, count) {
            println!("{}\t{}\t{}", job.id, rfc3339(t, &tz), job.schedule.expr());
        }
    }
    exit::OK
}

/// RFC 3339 with an offset, or a civil time (`2026-03-29T01:00`) read in `tz`.
fn parse_instant(s: &str, tz: &TimeZone) -> Option<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    let civil: jiff::civil::DateTime = s.parse().ok()?;
    civil.to_zoned(tz.clone()).ok().map(|z| z.timestamp())
}
