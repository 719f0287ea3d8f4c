//! What can go wrong with an archive series, each naming the series and the archive.

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{where_}: manifest {stem}.json is unreadable: {why}")]
    BadManifest {
        where_: String,
        stem: String,
        why: String,
    },
    #[error("{where_}: no archive {what}")]
    NotFound { where_: String, what: String },
    #[error("{where_}: the chain of {target} is broken: {why}")]
    Broken {
        where_: String,
        /// The restore point's id.
        target: String,
        /// The stem of the archive that is missing or damaged.
        culprit: String,
        why: String,
    },
    #[error("{where_}: refusing to remove {stem}: it is the newest archive")]
    RefuseNewest { where_: String, stem: String },
    #[error("{where_}: {op} failed: {message}")]
    Remote {
        where_: String,
        op: String,
        message: String,
    },
    #[error("{0}")]
    Tar(String),
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Refused(String),
}

impl ArchiveError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> ArchiveError {
        ArchiveError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
