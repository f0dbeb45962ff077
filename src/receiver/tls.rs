//! HTTPS for the receiver: the certificate chain and key of `--tls-cert` and `--tls-key`, read
//! at start-up (a bad file stops it, naming the flag, never quoting the PEM) and read again
//! when either file changes (cert-manager and Knative rotate them in place). A changed pair
//! that cannot be used leaves the one in use, with one warning until it changes again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::config::TlsFiles;
use crate::error::Error;
use crate::files::{self, Identity};
use crate::log;

/// How often the files are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// The most of a PEM file read.
const MAX_PEM: usize = 1024 * 1024;

/// What tells one version of a file from the next (`None`: it cannot be examined).
type Stamp = Option<Identity>;

pub struct Tls {
    files: TlsFiles,
    stamps: (Stamp, Stamp),
    config: Arc<ServerConfig>,
    next_check: Instant,
}

impl Tls {
    pub fn load(files: &TlsFiles) -> Result<Tls, Error> {
        let stamps = (stamp(&files.cert), stamp(&files.key));
        let config = config(files).map_err(|(flag, reason)| Error::unusable(flag, reason))?;
        Ok(Tls {
            files: files.clone(),
            stamps,
            config,
            next_check: Instant::now() + CHECK_EVERY,
        })
    }

    /// The configuration new connections get.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    pub fn due(&self) -> Instant {
        self.next_check
    }

    /// Reads the files again if either changed since they were last read.
    pub fn refresh(&mut self, now: Instant) {
        if now < self.next_check {
            return;
        }
        self.next_check = now + CHECK_EVERY;
        let stamps = (stamp(&self.files.cert), stamp(&self.files.key));
        if stamps == self.stamps {
            return;
        }
        self.stamps = stamps;
        match config(&self.files) {
            Ok(config) => {
                self.config = config;
                log::line(format_args!(
                    "TLS: {} and {} read again; new connections use them",
                    self.files.cert.display(),
                    self.files.key.display()
                ));
            }
            Err((flag, reason)) => log::line(format_args!(
                "warning: TLS: {flag} changed but cannot be used ({reason}); the previous certificate stays in use"
            )),
        }
    }
}

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path).ok().map(|meta| Identity::of(&meta))
}

/// The server configuration from the two files, or the flag whose file is wrong and why.
fn config(files: &TlsFiles) -> Result<Arc<ServerConfig>, (String, String)> {
    let read = |path: &PathBuf, flag: &str| {
        files::read(path, MAX_PEM)
            .map_err(|e| (format!("{flag} {}", path.display()), e.to_string()))
    };
    let cert_pem = read(&files.cert, "--tls-cert")?;
    let key_pem = read(&files.key, "--tls-key")?;
    let cert_flag = || format!("--tls-cert {}", files.cert.display());
    let key_flag = || format!("--tls-key {}", files.key.display());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| {
            (
                cert_flag(),
                "not a readable PEM certificate chain".to_owned(),
            )
        })?;
    if chain.is_empty() {
        return Err((cert_flag(), "holds no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| (key_flag(), "holds no readable PEM private key".to_owned()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| (cert_flag(), e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|_| {
            (
                key_flag(),
                "does not go with the certificate, or is not usable".to_owned(),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
