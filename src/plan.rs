//! Build: validated [`Config`] → [`Plan`], once per config load (start, SIGHUP, `run-job`).
//!
//! A [`JobPlan`] holds everything a run needs, resolved: the transports to other hosts (one
//! per endpoint, sharing ssh settings and ControlMaster sockets), a lock backend and path for
//! every `lock_files` and `blocks_on` entry, and the engine with its rsync commands. A run
//! therefore never re-derives any of it, and a job that cannot be built is reported by name
//! before anything runs ("cannot build job X: ...").
//!
//! Must not: touch the network or the filesystem, or run anything.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Direction, Job, Location, Mode, Remote};
use crate::engine::mirror::Mirror;
use crate::engine::pull;
use crate::engine::snapshot::Snapshots;
use crate::engine::{Engine, Far};
use crate::lock::etcd::EtcdLocks;
use crate::lock::{LocalFiles, LockBackend, RemoteFiles};
use crate::sys::runtime::RuntimeDir;
use crate::transport::{SshConfig, SshError, SshTarget, SshTransport, Transport};

/// Every job of a config, built.
#[derive(Debug)]
pub struct Plan {
    pub config: Arc<Config>,
    pub jobs: Vec<Arc<JobPlan>>,
}

impl Plan {
    pub fn job(&self, id: &str) -> Option<&Arc<JobPlan>> {
        self.jobs.iter().find(|j| j.job.id == id)
    }
}

/// A lock file the job creates, where it lives.
#[derive(Debug, Clone)]
pub struct LockSpec {
    pub backend: Arc<dyn LockBackend>,
    pub path: String,
}

/// A lock file that must be absent, where it lives, and how to wait for it.
#[derive(Debug, Clone)]
pub struct BlockerSpec {
    pub backend: Arc<dyn LockBackend>,
    pub path: String,
    pub wait_time: Duration,
    pub stale_after: Option<Duration>,
}

/// One job, ready to run.
#[derive(Debug)]
pub struct JobPlan {
    pub job: Job,
    pub runtime: RuntimeDir,
    pub locks: Vec<LockSpec>,
    pub blockers: Vec<BlockerSpec>,
    pub engine: Box<dyn Engine>,
    /// Snapshot mode: each sync's series (empty for a mirror), for `snapshots`, `prune` and
    /// `restore`.
    pub series: Vec<crate::snapshot::Series>,
    /// Archive mode: each sync's archive series (empty otherwise), for `snapshots`, `prune`,
    /// `restore` and `verify`.
    pub archives: Vec<crate::archive::ArchiveSeries>,
    /// The job's keys and slots in etcd, when `lock_backend` uses etcd.
    pub etcd: Option<EtcdSpec>,
    /// The job's host, for `where: remote` hooks.
    pub remote: Option<Arc<dyn Transport>>,
    /// Where the run log files are (`BACKUPMANAGER_LOG_FILE` for hooks).
    pub state_dir: std::path::PathBuf,
}

/// What a job holds and waits for in etcd (see [`crate::lock::etcd`]).
#[derive(Debug, Clone)]
pub struct EtcdSpec {
    pub cluster: Arc<EtcdLocks>,
    /// Keys of `lock_files` entries.
    pub own: Vec<String>,
    /// Keys of `blocks_on` entries, each with its `wait_time` (the re-check backstop).
    pub blockers: Vec<(String, Duration)>,
    /// `uses_slots`, each with its size.
    pub slots: Vec<(String, u32)>,
}

/// The canonical name of a lock entry, `<host>:<path>`, the same on either backend: a local
/// entry is on this host (its host name), a remote one on its `host`.
pub fn canonical_lock(location: &Location, path: &str) -> String {
    match location {
        Location::Local => format!("{}:{path}", crate::sys::procfs::hostname()),
        Location::Remote(r) => format!("{}:{path}", r.host),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build job {job}: {source}")]
pub struct BuildError {
    pub job: String,
    #[source]
    pub source: Box<BuildCause>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildCause {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
}

/// Builds every job of `config`.
pub fn build(config: Config) -> Result<Plan, BuildError> {
    let config = Arc::new(config);
    let cluster = match &config.coord.etcd {
        Some(s) if config.coord.lock_backend.uses_etcd() => Some(Arc::new(EtcdLocks::new(s))),
        _ => None,
    };
    let jobs = config
        .jobs
        .iter()
        .map(|j| {
            let mut built = build_job(&config, j)?;
            if let Some(cluster) = &cluster {
                built.etcd = Some(etcd_spec(&config, j, cluster));
                if !config.coord.lock_backend.uses_files() {
                    built.locks.clear();
                    built.blockers.clear();
                }
            }
            Ok(Arc::new(built))
        })
        .collect::<Result<_, _>>()?;
    Ok(Plan { config, jobs })
}

/// The ssh settings of a job, with ControlMaster sockets under the runtime directory.
pub fn ssh_config(runtime: &RuntimeDir, job: &Job) -> SshConfig {
    SshConfig {
        identity_file: job.ssh.identity_file.clone(),
        known_hosts_file: job.ssh.known_hosts_file.clone(),
        extra_options: job.ssh.options.clone(),
        control_dir: Some(runtime.ssh_dir()),
        ..SshConfig::default()
    }
}

/// Transports of one job, one per endpoint.
struct Endpoints {
    ssh: SshConfig,
    built: Vec<(Remote, Arc<dyn Transport>)>,
}

impl Endpoints {
    fn get(&mut self, r: &Remote) -> Result<Arc<dyn Transport>, SshError> {
        if let Some((_, t)) = self.built.iter().find(|(k, _)| k == r) {
            return Ok(Arc::clone(t));
        }
        let target = SshTarget {
            user: r.user.clone(),
            host: r.host.clone(),
            port: r.port,
        };
        let t: Arc<dyn Transport> = Arc::new(SshTransport::new(target, self.ssh.clone())?);
        self.built.push((r.clone(), Arc::clone(&t)));
        Ok(t)
    }

    fn backend(&mut self, loc: &Location) -> Result<Arc<dyn LockBackend>, SshError> {
        Ok(match loc {
            Location::Local => Arc::new(LocalFiles),
            Location::Remote(r) => Arc::new(RemoteFiles {
                transport: self.get(r)?,
            }),
        })
    }
}

fn build_job(config: &Config, job: &Job) -> Result<JobPlan, BuildError> {
    let err = |source: SshError| BuildError {
        job: job.id.clone(),
        source: Box::new(source.into()),
    };
    let runtime = RuntimeDir::new(&config.pid_file_dir);
    let mut ep = Endpoints {
        ssh: ssh_config(&runtime, job),
        built: Vec::new(),
    };
    let remote = job
        .remote
        .as_ref()
        .map(|r| ep.get(r))
        .transpose()
        .map_err(err)?;
    let locks = job
        .lock_files
        .iter()
        .map(|l| {
            Ok(LockSpec {
                backend: ep.backend(&l.location)?,
                path: l.path.clone(),
            })
        })
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let blockers = job
        .blocks_on
        .iter()
        .map(|b| {
            Ok(BlockerSpec {
                backend: ep.backend(&b.location)?,
                path: b.path.clone(),
                wait_time: b.wait_time,
                stale_after: b.stale_after,
            })
        })
        .collect::<Result<_, _>>()
        .map_err(err)?;
    // On shutdown rsync gets SIGTERM and most of shutdown_timeout before SIGKILL; the rest is
    // left for releasing lock files.
    let cancel_grace = config
        .shutdown_timeout
        .saturating_sub(Duration::from_secs(5))
        .max(Duration::from_secs(2));
    let mut series = Vec::new();
    let mut archives = Vec::new();
    // A pull job's engine copies into local dests; pull::pull_from then points each source at
    // the remote host.
    let pull_from = match job.direction {
        Direction::Pull => remote.clone(),
        Direction::Push => None,
    };
    let engine_remote = if pull_from.is_some() {
        None
    } else {
        remote.as_ref()
    };
    let engine: Box<dyn Engine> = match (&job.mode, &job.retention) {
        (Mode::Snapshot, Some(policy)) => {
            let mut e = Snapshots::new(
                &job.syncs,
                engine_remote,
                policy.clone(),
                config.timezone.tz.clone(),
                job.retries,
                cancel_grace,
            )
            .map_err(|e| BuildError {
                job: job.id.clone(),
                source: Box::new(e.into()),
            })?;
            series = e.syncs.iter().map(|s| s.series.clone()).collect();
            if let Some(t) = &pull_from {
                e.syncs
                    .iter_mut()
                    .for_each(|s| pull::pull_from(&mut s.command, t));
                e.far = Some(Far::Source(t.to_string()));
            }
            Box::new(e)
        }
        (Mode::Archive, Some(policy)) => {
            // Refused for pull jobs by the config check: tar runs on this host.
            let e = crate::engine::archive::Archives::new(
                &job.syncs,
                remote.as_ref(),
                policy.clone(),
                job.archive.clone().expect("archive jobs have settings"),
                config.timezone.tz.clone(),
                &config.pid_file_dir,
            );
            archives = e.syncs.iter().map(|s| s.series.clone()).collect();
            Box::new(e)
        }
        _ => {
            let mut e = Mirror::new(&job.syncs, engine_remote, job.retries, cancel_grace);
            if let Some(t) = &pull_from {
                e.syncs
                    .iter_mut()
                    .for_each(|s| pull::pull_from(&mut s.command, t));
                e.far = Some(Far::Source(t.to_string()));
            }
            Box::new(e)
        }
    };
    let engine: Box<dyn Engine> = match pull_from {
        Some(transport) => Box::new(pull::Pull {
            inner: engine,
            syncs: job.syncs.clone(),
            transport,
            risk: match job.mode {
                Mode::Snapshot | Mode::Archive => pull::PullRisk::Snapshot,
                Mode::Mirror => pull::PullRisk::Deletes,
            },
        }),
        None => engine,
    };
    Ok(JobPlan {
        job: job.clone(),
        runtime,
        locks,
        blockers,
        engine,
        series,
        archives,
        etcd: None,
        remote,
        state_dir: config.state_dir.clone(),
    })
}

fn etcd_spec(config: &Config, job: &Job, cluster: &Arc<EtcdLocks>) -> EtcdSpec {
    EtcdSpec {
        cluster: Arc::clone(cluster),
        own: job
            .lock_files
            .iter()
            .map(|l| cluster.lock_key(&canonical_lock(&l.location, &l.path)))
            .collect(),
        blockers: job
            .blocks_on
            .iter()
            .map(|b| {
                (
                    cluster.lock_key(&canonical_lock(&b.location, &b.path)),
                    b.wait_time,
                )
            })
            .collect(),
        slots: job
            .uses_slots
            .iter()
            .filter_map(|s| Some((s.name.clone(), *config.coord.slots.get(&s.name)?)))
            .collect(),
    }
}
