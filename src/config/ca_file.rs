//! `ca_file:` of a notification endpoint: a PEM file of extra trusted root certificates. The
//! file is read when the config is loaded (so a missing, unreadable or certificate-less file is
//! a config error at its line) and again by each send that uses it ([`crate::notify::send`]),
//! so a replaced CA file is picked up without a reload.
//!
//! Owns: reading the file and pulling the certificates out of it. Must not: decide trust (the
//! sender builds the TLS configuration).

use std::path::{Path, PathBuf};

/// Why a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read CA file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CA file {} is not valid PEM: {reason}", .path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("CA file {} holds no certificate (expected `-----BEGIN CERTIFICATE-----` blocks)", .path.display())]
    Empty { path: PathBuf },
}

/// The certificates (DER) in the PEM file at `path`; at least one. Other PEM blocks (a
/// private key left in the same file) are ignored.
pub fn load(path: &Path) -> Result<Vec<Vec<u8>>, CaFileError> {
    let text = std::fs::read(path).map_err(|source| CaFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&text) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c.der().to_vec()),
            Ok(_) => {}
            Err(e) => {
                return Err(CaFileError::Pem {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
            }
        }
    }
    if certs.is_empty() {
        return Err(CaFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_an_empty_and_a_certificate_less_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        assert!(matches!(load(&missing), Err(CaFileError::Read { .. })));
        assert!(matches!(load(dir.path()), Err(CaFileError::Read { .. })));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(matches!(load(&empty), Err(CaFileError::Empty { .. })));
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "just some text\n").unwrap();
        assert!(load(&junk).is_err());
    }
}
