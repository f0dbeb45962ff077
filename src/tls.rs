//! https sinks: the rustls client configuration (Mozilla's roots compiled in, plus Knative's trust
//! bundle directory and `K_CA_CERTS`, with the minimum version from `TLS_MIN_VERSION`) and the
//! ureq connector that wraps a TCP transport in it. ureq's own rustls connector cannot add CAs to
//! the bundled roots nor set a minimum version, so this module replaces it.

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter, time,
};

use crate::config::TlsMin;
use crate::error::Error;
use crate::head::HeadReader;

/// Where Knative mounts trust bundles (ConfigMaps labelled as such) into sources.
pub const TRUST_BUNDLE_DIR: &str = "/knative-custom-certs";

/// Directory depth searched below [`TRUST_BUNDLE_DIR`].
const MAX_BUNDLE_DEPTH: usize = 8;

/// The rustls client configuration for https sinks, with a warning for each trust bundle file
/// that was skipped. `extra` is PEM text with the name of the flag or variable it came from; it
/// must hold at least one certificate.
pub fn client_config(
    extra: Option<(&str, &str)>,
    bundle_dir: &Path,
    min: TlsMin,
) -> Result<(Arc<ClientConfig>, Vec<String>), Error> {
    let mut warnings = Vec::new();
    let roots = root_store(extra, bundle_dir, &mut warnings)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match min {
        TlsMin::V12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsMin::V13 => &[&rustls::version::TLS13],
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| Error::unusable("TLS_MIN_VERSION", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(config), warnings))
}

/// Mozilla's roots, then `extra`, then every PEM file below `bundle_dir`.
fn root_store(
    extra: Option<(&str, &str)>,
    bundle_dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some((name, pem)) = extra {
        let added = add_pem(&mut roots, pem.as_bytes()).map_err(|e| Error::unusable(name, e))?;
        if added == 0 {
            return Err(Error::unusable(name, "no PEM certificate found"));
        }
    }
    let mut walk = BundleWalk {
        roots: &mut roots,
        warnings,
        visited: Vec::new(),
    };
    walk.dir(bundle_dir, 0);
    Ok(roots)
}

/// PEM labels shown by name in messages; any other label is shown as "unknown type", since
/// the text of a PEM is never quoted (it may be a private key pasted by mistake).
const KNOWN_LABELS: [&str; 10] = [
    "CERTIFICATE",
    "TRUSTED CERTIFICATE",
    "X509 CRL",
    "CERTIFICATE REQUEST",
    "PUBLIC KEY",
    "PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "OPENSSH PRIVATE KEY",
];

/// Adds every `CERTIFICATE` block of `pem` (other blocks are skipped) and returns how many. On
/// a block that cannot be used, says which (by position and type) and why, without quoting it.
fn add_pem(roots: &mut RootCertStore, pem: &[u8]) -> Result<usize, String> {
    let mut added = 0;
    for (index, block) in pem_blocks(pem).enumerate() {
        let n = index + 1;
        let (label, text) =
            block.map_err(|label| format!("PEM block {n} ({label}) has no END line"))?;
        if label != "CERTIFICATE" {
            continue;
        }
        let bad = |why: &str| format!("PEM block {n} (CERTIFICATE): {why}");
        let cert = CertificateDer::from_pem_slice(text).map_err(|_| bad("not valid base64"))?;
        roots
            .add(cert)
            .map_err(|e| bad(&format!("not a usable CA certificate ({e})")))?;
        added += 1;
    }
    Ok(added)
}

/// The `-----BEGIN X-----` … `-----END X-----` blocks of `pem`, in order, each as its label
/// (one of [`KNOWN_LABELS`] or "unknown type") and its text, markers included; a block without
/// its END line is an error carrying the label, and ends the iteration.
fn pem_blocks(pem: &[u8]) -> impl Iterator<Item = Result<(&'static str, &[u8]), &'static str>> {
    let mut rest = pem;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let begin = find(rest, b"-----BEGIN ")?;
        let line_end = find(&rest[begin..], b"\n").map_or(rest.len(), |i| begin + i);
        let line = rest[begin..line_end].trim_ascii();
        let label = line
            .strip_prefix(b"-----BEGIN ")
            .and_then(|l| l.strip_suffix(b"-----"))
            .unwrap_or_default();
        let shown = KNOWN_LABELS
            .iter()
            .find(|k| k.as_bytes() == label)
            .copied()
            .unwrap_or("unknown type");
        let end_marker = [b"-----END ", label, b"-----"].concat();
        let Some(end) = find(&rest[line_end..], &end_marker).map(|i| line_end + i) else {
            failed = true;
            return Some(Err(shown));
        };
        let block_end = end + end_marker.len();
        let text = &rest[begin..block_end];
        rest = &rest[block_end..];
        Some(Ok((shown, text)))
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The walk of a trust bundle directory: every PEM file below it, recursively. Kubernetes'
/// `..data`-style entries are skipped (the visible names link to the same files), and each
/// directory is entered once however many symlinks lead to it, so a link loop cannot make the
/// walk exponential. A file that cannot be used is skipped with a warning: Knative copies every
/// bundle into every namespace, and one bad file must not stop every source in the cluster.
struct BundleWalk<'a> {
    roots: &'a mut RootCertStore,
    warnings: &'a mut Vec<String>,
    /// (device, inode) of every directory entered.
    visited: Vec<(u64, u64)>,
}

impl BundleWalk<'_> {
    fn dir(&mut self, dir: &Path, depth: usize) {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(dir) else {
            return;
        };
        let id = (meta.dev(), meta.ino());
        if self.visited.contains(&id) {
            return;
        }
        self.visited.push(id);
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().as_encoded_bytes().starts_with(b"..") {
                continue;
            }
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() && depth < MAX_BUNDLE_DEPTH {
                self.dir(&path, depth + 1);
            } else if meta.is_file() {
                self.file(&path);
            }
        }
    }

    fn file(&mut self, path: &Path) {
        let added = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| {
                if find(&pem, b"-----BEGIN ").is_some() {
                    add_pem(self.roots, &pem)
                } else {
                    Ok(0)
                }
            });
        if let Err(why) = added {
            self.warnings.push(format!(
                "trust bundle file {} skipped: {why}",
                path.display()
            ));
        }
    }
}

/// Wraps the TCP transport of https connections in rustls with our [`ClientConfig`].
pub struct TlsConnector(pub Arc<ClientConfig>);

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsConnector")
    }
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details.uri.host().unwrap_or_default();
        // An IPv6 literal comes bracketed in the URI; the server name is the bare address.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ureq::Error::BadUri(format!("not a TLS server name: {host}")))?;
        let mut conn = ClientConnection::new(self.0.clone(), name).map_err(io_error)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        let stream = StreamOwned { conn, sock };
        let head = HeadReader::default();
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream,
            head,
        })))
    }
}

fn io_error(e: rustls::Error) -> ureq::Error {
    ureq::Error::Io(std::io::Error::other(e))
}

/// An established TLS connection.
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
    head: HeadReader,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        self.stream.flush()?;
        self.head.expect_head();
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        // A head may take several reads; together they stay within the attempt's timeout.
        let deadline = Instant::now().checked_add(*timeout.after);
        let stream = &mut self.stream;
        let input = self.buffers.input_append_buf();
        let amount = self.head.read(input, |buf| {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let after = left.map_or(timeout.after, time::Duration::Exact);
            stream
                .get_mut()
                .set_timeout(NextTimeout { after, ..timeout });
            stream.read(buf)
        })?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("heartbeats-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn roots(extra: Option<(&str, &str)>, dir: &Path) -> (Result<usize, Error>, Vec<String>) {
        let mut warnings = Vec::new();
        let store = root_store(extra, dir, &mut warnings).map(|r| r.len());
        (store, warnings)
    }

    #[test]
    fn missing_bundle_dir_and_no_extra_give_the_bundled_roots() {
        let config = client_config(None, Path::new("/nonexistent/heartbeats"), TlsMin::V12);
        assert!(config.is_ok_and(|(_, warnings)| warnings.is_empty()));
    }

    /// A PKCS#8 EC private key as someone might paste by mistake; its text must never be shown.
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETSECRETSECRE\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn extra_text_without_a_usable_certificate_is_refused_by_name_without_quoting_it() {
        let broken =
            format!("{KEY}-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n");
        let cases = [
            (
                "hello SECRET",
                "invalid K_CA_CERTS: no PEM certificate found",
            ),
            (KEY, "invalid K_CA_CERTS: no PEM certificate found"),
            (
                &broken,
                "invalid K_CA_CERTS: PEM block 2 (CERTIFICATE): not valid base64",
            ),
            (
                "-----BEGIN EC PRIVATE KEY-----\nSECRET",
                "invalid K_CA_CERTS: PEM block 1 (EC PRIVATE KEY) has no END line",
            ),
            (
                "-----BEGIN SECRET STUFF-----\nx\n",
                "invalid K_CA_CERTS: PEM block 1 (unknown type) has no END line",
            ),
        ];
        for (pem, expected) in cases {
            let line = roots(Some(("K_CA_CERTS", pem)), Path::new("/nonexistent"))
                .0
                .unwrap_err()
                .to_string();
            assert_eq!(line, expected);
            assert!(!line.contains("SECRET") && !line.contains("MIG"), "{line}");
        }
    }

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn bundle_files_are_found_recursively_and_kubernetes_data_links_skipped() {
        let bundled = webpki_roots::TLS_SERVER_ROOTS.len();
        let dir = temp_dir("bundle");
        std::fs::create_dir_all(dir.join("team/..2026_11_25/")).unwrap();
        std::fs::write(dir.join("team/ca.pem"), ca_pem()).unwrap();
        std::fs::write(dir.join("team/..2026_11_25/ca.pem"), ca_pem()).unwrap();
        std::fs::write(dir.join("notes.txt"), "no certificate here").unwrap();
        assert_eq!(roots(None, &dir), (Ok(bundled + 1), vec![]));
        let two = format!("{}{KEY}{}", ca_pem(), ca_pem());
        assert_eq!(
            roots(Some(("K_CA_CERTS", &two)), &dir),
            (Ok(bundled + 3), vec![])
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_broken_pem_file_in_the_bundle_dir_is_skipped_with_a_warning_naming_it() {
        let dir = temp_dir("broken");
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        std::fs::write(
            dir.join("bundle/bad.pem"),
            format!("{KEY}-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"),
        )
        .unwrap();
        std::fs::write(dir.join("bundle/good.pem"), ca_pem()).unwrap();
        std::fs::write(dir.join("README"), "not a certificate").unwrap();
        let (added, warnings) = roots(None, &dir);
        assert_eq!(added, Ok(webpki_roots::TLS_SERVER_ROOTS.len() + 1));
        let [warning] = &warnings[..] else {
            panic!("{warnings:?}")
        };
        assert!(
            warning
                .ends_with("bundle/bad.pem skipped: PEM block 2 (CERTIFICATE): not valid base64"),
            "{warning}"
        );
        assert!(!warning.contains("MIG"), "{warning}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn symlinked_directories_are_entered_once() {
        let dir = temp_dir("links");
        std::fs::write(dir.join("ca.pem"), ca_pem()).unwrap();
        // Six links to the directory itself: 6^8 paths to walk if links were followed blindly.
        for n in 0..6 {
            std::os::unix::fs::symlink(".", dir.join(format!("l{n}"))).unwrap();
        }
        let mut store = RootCertStore::empty();
        let mut warnings = Vec::new();
        let mut walk = BundleWalk {
            roots: &mut store,
            warnings: &mut warnings,
            visited: Vec::new(),
        };
        walk.dir(&dir, 0);
        assert_eq!(walk.visited.len(), 1);
        assert_eq!(store.len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
