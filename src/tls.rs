//! https sinks: the rustls client configuration (Mozilla's roots compiled in, plus Knative's trust
//! bundle directory and `K_CA_CERTS`, with the minimum version from `TLS_MIN_VERSION`) and the
//! ureq connector that wraps a TCP transport in it. ureq's own rustls connector cannot add CAs to
//! the bundled roots nor set a minimum version, so this module replaces it.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter, time,
};

use crate::error::Error;
use crate::head::HeadReader;

/// Where Knative mounts trust bundles (ConfigMaps labelled as such) into sources.
pub const TRUST_BUNDLE_DIR: &str = "/knative-custom-certs";

/// Directory depth searched below [`TRUST_BUNDLE_DIR`].
const MAX_BUNDLE_DEPTH: usize = 8;

/// A TLS protocol version, as `TLS_MIN_VERSION` and `TLS_MAX_VERSION` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V12,
    V13,
}

impl TlsVersion {
    /// `1.2` or `1.3`, as Knative's `network/tls` reads them.
    pub fn parse(variable: &str, text: &str) -> Result<TlsVersion, Error> {
        match text {
            "1.2" => Ok(TlsVersion::V12),
            "1.3" => Ok(TlsVersion::V13),
            _ => Err(Error::invalid(variable, text, "expected 1.2 or 1.3")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::V12 => "1.2",
            TlsVersion::V13 => "1.3",
        }
    }
}

/// What `knative.dev/pkg/network/tls` reads from the environment, checked against what this
/// build's crypto provider (rustls on ring) can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub min: TlsVersion,
    pub max: TlsVersion,
    /// `TLS_CIPHER_SUITES` as Go's names; they constrain TLS 1.2 only, as in Go.
    pub cipher_suites: Option<Vec<&'static str>>,
    /// `TLS_CURVE_PREFERENCES`, as our names for the key exchange groups, in order.
    pub curves: Option<Vec<&'static str>>,
}

/// Go's names of the TLS 1.2 suites rustls can do (with Go's short aliases), and the TLS 1.3
/// suites, which Go accepts in the list and ignores.
const CIPHER_SUITES: [(&str, Option<rustls::CipherSuite>); 11] = {
    use rustls::CipherSuite as S;
    [
        (
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            Some(S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            Some(S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            Some(S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            Some(S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            Some(S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            Some(S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            Some(S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
            Some(S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
        ),
        ("TLS_AES_128_GCM_SHA256", None),
        ("TLS_AES_256_GCM_SHA384", None),
        ("TLS_CHACHA20_POLY1305_SHA256", None),
    ]
};

/// Go's curve names (and the `P-256` style), each with the group rustls on ring offers, if any.
const CURVES: [(&str, Option<&str>); 9] = [
    ("X25519", Some("X25519")),
    ("CurveP256", Some("P-256")),
    ("P-256", Some("P-256")),
    ("CurveP384", Some("P-384")),
    ("P-384", Some("P-384")),
    ("CurveP521", None),
    ("P-521", None),
    ("X25519MLKEM768", None),
    ("SecP256r1MLKEM768", None),
];

impl TlsSettings {
    /// The settings from the variables' values (`None`: unset). Min defaults to 1.3 as
    /// Knative's, max to 1.3; an unknown name, or one this build cannot do, names itself.
    pub fn parse(
        min: Option<&str>,
        max: Option<&str>,
        cipher_suites: Option<&str>,
        curves: Option<&str>,
    ) -> Result<TlsSettings, Error> {
        let min = min.map_or(Ok(TlsVersion::V13), |v| {
            TlsVersion::parse("TLS_MIN_VERSION", v)
        })?;
        let max = max.map_or(Ok(TlsVersion::V13), |v| {
            TlsVersion::parse("TLS_MAX_VERSION", v)
        })?;
        if min > max {
            return Err(Error::invalid(
                "TLS_MIN_VERSION",
                min.name(),
                format!("above TLS_MAX_VERSION {}", max.name()),
            ));
        }
        let list =
            |variable: &str, text: &str, known: &[&'static str], usable: &dyn Fn(&str) -> bool| {
                let mut names = Vec::new();
                for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let Some(known) = known.iter().find(|k| **k == name) else {
                        return Err(Error::invalid(
                            variable,
                            name,
                            format!("unknown; expected one of {}", known.join(", ")),
                        ));
                    };
                    if !usable(name) {
                        return Err(Error::invalid(
                            variable,
                            name,
                            "not supported by this build's TLS library (rustls on ring)",
                        ));
                    }
                    names.push(*known);
                }
                Ok(names)
            };
        let suite_names: Vec<&'static str> = CIPHER_SUITES.iter().map(|(n, _)| *n).collect();
        let curve_names: Vec<&'static str> = CURVES.iter().map(|(n, _)| *n).collect();
        let cipher_suites = cipher_suites
            .map(|text| list("TLS_CIPHER_SUITES", text, &suite_names, &|_| true))
            .transpose()?;
        let curves = curves
            .map(|text| {
                list("TLS_CURVE_PREFERENCES", text, &curve_names, &|name| {
                    CURVES
                        .iter()
                        .any(|(n, group)| *n == name && group.is_some())
                })
            })
            .transpose()?;
        Ok(TlsSettings {
            min,
            max,
            cipher_suites,
            curves,
        })
    }

    /// The crypto provider with the suites and groups these settings allow.
    fn provider(&self) -> rustls::crypto::CryptoProvider {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(names) = &self.cipher_suites {
            let allowed: Vec<rustls::CipherSuite> = CIPHER_SUITES
                .iter()
                .filter(|(n, _)| names.contains(n))
                .filter_map(|(_, suite)| *suite)
                .collect();
            provider.cipher_suites.retain(|s| {
                matches!(s, rustls::SupportedCipherSuite::Tls13(_)) || allowed.contains(&s.suite())
            });
        }
        if let Some(names) = &self.curves {
            use rustls::crypto::ring::kx_group;
            let groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = names
                .iter()
                .filter_map(|n| CURVES.iter().find(|(name, _)| name == n)?.1)
                .map(|group| match group {
                    "X25519" => kx_group::X25519,
                    "P-256" => kx_group::SECP256R1,
                    _ => kx_group::SECP384R1,
                })
                .collect();
            provider.kx_groups = groups;
        }
        provider
    }
}

/// Where trusted CA certificates come from, besides Mozilla's roots compiled in.
#[derive(Debug, Clone, Copy)]
pub struct TrustSources<'a> {
    /// PEM text with the name of the flag or variable it came from; it must hold a certificate.
    pub extra: Option<(&'a str, &'a str)>,
    /// Knative's trust bundles, searched recursively.
    pub bundle_dir: &'a Path,
    /// `SSL_CERT_FILE`: one PEM file, as Go and OpenSSL read it.
    pub cert_file: Option<&'a Path>,
    /// `SSL_CERT_DIR`: directories of PEM files (not searched below).
    pub cert_dirs: &'a [PathBuf],
}

/// The rustls client configuration for https sinks, with a warning for each file of trust that
/// was skipped.
pub fn client_config(
    trust: TrustSources,
    settings: &TlsSettings,
) -> Result<(Arc<ClientConfig>, Vec<String>), Error> {
    let mut warnings = Vec::new();
    let roots = root_store(trust, &mut warnings)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match (settings.min, settings.max) {
        (TlsVersion::V12, TlsVersion::V13) => &[&rustls::version::TLS13, &rustls::version::TLS12],
        (TlsVersion::V12, TlsVersion::V12) => &[&rustls::version::TLS12],
        _ => &[&rustls::version::TLS13],
    };
    let config = ClientConfig::builder_with_provider(Arc::new(settings.provider()))
        .with_protocol_versions(versions)
        .map_err(|e| Error::unusable("TLS_CIPHER_SUITES", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(config), warnings))
}

/// Mozilla's roots, then `extra`, `SSL_CERT_FILE`, `SSL_CERT_DIR`, and every PEM file below the
/// bundle directory.
fn root_store(trust: TrustSources, warnings: &mut Vec<String>) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some((name, pem)) = trust.extra {
        let added = add_pem(&mut roots, pem.as_bytes()).map_err(|e| Error::unusable(name, e))?;
        if added == 0 {
            return Err(Error::unusable(name, "no PEM certificate found"));
        }
    }
    let mut walk = BundleWalk {
        roots: &mut roots,
        warnings,
        visited: Vec::new(),
        read: Vec::new(),
    };
    if let Some(file) = trust.cert_file {
        walk.file("SSL_CERT_FILE", file);
    }
    for dir in trust.cert_dirs {
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    if entry.path().is_file() {
                        walk.file("SSL_CERT_DIR file", &entry.path());
                    }
                }
            }
            Err(e) => walk.warnings.push(format!(
                "SSL_CERT_DIR directory {} skipped: {}",
                dir.display(),
                e.kind()
            )),
        }
    }
    walk.dir(trust.bundle_dir, 0);
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

/// Where `needle` (not empty) first occurs in `haystack`. Candidates are found by their first
/// byte: comparing a window at every position was three quarters of loading a CA bundle.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(offset) = haystack[from..].iter().position(|&b| b == first) {
        let at = from + offset;
        if haystack[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
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
    /// (device, inode) of every file read: a certificate linked under two names (a c_rehash
    /// directory such as /etc/ssl/certs, or SSL_CERT_FILE inside SSL_CERT_DIR) is parsed once.
    read: Vec<(u64, u64)>,
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
                self.file("trust bundle file", &path);
            }
        }
    }

    fn file(&mut self, what: &str, path: &Path) {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let id = (meta.dev(), meta.ino());
            if self.read.contains(&id) {
                return;
            }
            self.read.push(id);
        }
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
            self.warnings
                .push(format!("{what} {} skipped: {why}", path.display()));
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

    #[test]
    fn find_gives_the_first_whole_occurrence() {
        assert_eq!(find(b"-----END X-----", b"-----END "), Some(0));
        assert_eq!(find(b"ab\n-", b"\n"), Some(2));
        assert_eq!(find(b"aaab", b"aab"), Some(1));
        assert_eq!(find(b"xx-----END", b"-----END "), None);
        assert_eq!(find(b"abc", b"abcd"), None);
        assert_eq!(find(b"", b"a"), None);
    }

    fn trust<'a>(extra: Option<(&'a str, &'a str)>, dir: &'a Path) -> TrustSources<'a> {
        TrustSources {
            extra,
            bundle_dir: dir,
            cert_file: None,
            cert_dirs: &[],
        }
    }

    fn roots(extra: Option<(&str, &str)>, dir: &Path) -> (Result<usize, Error>, Vec<String>) {
        let mut warnings = Vec::new();
        let store = root_store(trust(extra, dir), &mut warnings).map(|r| r.len());
        (store, warnings)
    }

    fn settings(min: &str, max: &str) -> TlsSettings {
        TlsSettings::parse(Some(min), Some(max), None, None).unwrap()
    }

    #[test]
    fn missing_bundle_dir_and_no_extra_give_the_bundled_roots() {
        let dir = Path::new("/nonexistent/heartbeats");
        let config = client_config(trust(None, dir), &settings("1.2", "1.3"));
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
    fn symlinked_directories_are_entered_once_and_linked_files_read_once() {
        let dir = temp_dir("links");
        std::fs::write(dir.join("ca.pem"), ca_pem()).unwrap();
        // As c_rehash names a certificate: a hash link beside the file.
        std::os::unix::fs::symlink("ca.pem", dir.join("9d66eef0.0")).unwrap();
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
            read: Vec::new(),
        };
        walk.dir(&dir, 0);
        assert_eq!(walk.visited.len(), 1);
        assert_eq!(store.len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;

    fn parse(vars: [Option<&str>; 4]) -> Result<TlsSettings, String> {
        TlsSettings::parse(vars[0], vars[1], vars[2], vars[3]).map_err(|e| e.to_string())
    }

    #[test]
    fn versions_default_to_1_3_and_min_may_not_pass_max() {
        let s = parse([None, None, None, None]).unwrap();
        assert_eq!((s.min, s.max), (TlsVersion::V13, TlsVersion::V13));
        let s = parse([Some("1.2"), None, None, None]).unwrap();
        assert_eq!((s.min, s.max), (TlsVersion::V12, TlsVersion::V13));
        assert_eq!(
            parse([None, Some("1.2"), None, None]).unwrap_err(),
            "invalid TLS_MIN_VERSION \"1.3\": above TLS_MAX_VERSION 1.2"
        );
        assert!(
            parse([None, Some("1.4"), None, None])
                .unwrap_err()
                .starts_with("invalid TLS_MAX_VERSION \"1.4\"")
        );
    }

    #[test]
    fn suites_and_curves_take_go_names_and_refuse_what_ring_cannot_do() {
        let s = parse([
            None,
            None,
            Some(" TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305 , TLS_AES_128_GCM_SHA256"),
            Some("CurveP256,X25519, P-384"),
        ])
        .unwrap();
        assert_eq!(s.curves.unwrap(), ["CurveP256", "X25519", "P-384"]);
        assert_eq!(s.cipher_suites.unwrap().len(), 2);
        for (suites, curves, expected) in [
            (
                Some("TLS_RSA_WITH_AES_128_CBC_SHA"),
                None,
                "invalid TLS_CIPHER_SUITES \"TLS_RSA_WITH_AES_128_CBC_SHA\": unknown",
            ),
            (
                None,
                Some("CurveP521"),
                "invalid TLS_CURVE_PREFERENCES \"CurveP521\": not supported",
            ),
            (
                None,
                Some("X25519MLKEM768"),
                "invalid TLS_CURVE_PREFERENCES \"X25519MLKEM768\": not supported",
            ),
            (
                None,
                Some("Curve25519"),
                "invalid TLS_CURVE_PREFERENCES \"Curve25519\": unknown",
            ),
        ] {
            let error = parse([None, None, suites, curves]).unwrap_err();
            assert!(error.starts_with(expected), "{error}");
        }
    }

    #[test]
    fn the_provider_keeps_tls_1_3_suites_and_the_named_1_2_ones_and_groups_in_order() {
        let s = parse([
            Some("1.2"),
            None,
            Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            Some("P-384,X25519"),
        ])
        .unwrap();
        let provider = s.provider();
        let tls12: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|c| matches!(c, rustls::SupportedCipherSuite::Tls12(_)))
            .map(|c| c.suite())
            .collect();
        assert_eq!(
            tls12,
            [rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
        );
        assert_eq!(provider.cipher_suites.len(), 4);
        let groups: Vec<_> = provider.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            groups,
            [rustls::NamedGroup::secp384r1, rustls::NamedGroup::X25519]
        );
    }
}
