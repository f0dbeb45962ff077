//! https sinks: the rustls client configuration (Mozilla's roots compiled in, plus Knative's trust
//! bundle directory and `K_CA_CERTS`, with the minimum version from `TLS_MIN_VERSION`) and the
//! ureq connector that wraps a TCP transport in it. ureq's own rustls connector cannot add CAs to
//! the bundled roots nor set a minimum version, so this module replaces it.

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

use crate::config::TlsMin;
use crate::error::Error;

/// Where Knative mounts trust bundles (ConfigMaps labelled as such) into sources.
pub const TRUST_BUNDLE_DIR: &str = "/knative-custom-certs";

/// Directory depth searched below [`TRUST_BUNDLE_DIR`]; a guard against symlink loops.
const MAX_BUNDLE_DEPTH: usize = 8;

/// The rustls client configuration for https sinks. `extra` is PEM text with the name of the flag
/// or variable it came from; it must hold at least one certificate.
pub fn client_config(
    extra: Option<(&str, &str)>,
    bundle_dir: &Path,
    min: TlsMin,
) -> Result<Arc<ClientConfig>, Error> {
    let roots = root_store(extra, bundle_dir)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match min {
        TlsMin::V12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsMin::V13 => &[&rustls::version::TLS13],
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| Error::invalid("TLS_MIN_VERSION", "", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Mozilla's roots, then `extra`, then every PEM file below `bundle_dir`.
fn root_store(extra: Option<(&str, &str)>, bundle_dir: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some((name, pem)) = extra {
        let added = add_pem(&mut roots, pem.as_bytes(), name)?;
        if added == 0 {
            return Err(Error::invalid(name, pem, "no PEM certificate found"));
        }
    }
    add_bundle_dir(&mut roots, bundle_dir, 0)?;
    Ok(roots)
}

/// Adds every certificate in `pem`; a malformed block or certificate is an error naming `name`.
fn add_pem(roots: &mut RootCertStore, pem: &[u8], name: &str) -> Result<usize, Error> {
    let shown = String::from_utf8_lossy(pem);
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| Error::invalid(name, &shown, format!("bad PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Error::invalid(name, &shown, format!("bad certificate: {e}")))?;
        added += 1;
    }
    Ok(added)
}

/// Every PEM file below `dir`, recursively. A missing directory is no bundle. Kubernetes'
/// `..data`-style entries are skipped: the visible names link to the same files.
fn add_bundle_dir(roots: &mut RootCertStore, dir: &Path, depth: usize) -> Result<(), Error> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
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
            add_bundle_dir(roots, &path, depth + 1)?;
        } else if meta.is_file() {
            let pem = std::fs::read(&path).map_err(|e| {
                Error::invalid(
                    "trust bundle file",
                    &path.display().to_string(),
                    e.to_string(),
                )
            })?;
            if pem.windows(11).any(|w| w == b"-----BEGIN ") {
                add_pem(
                    roots,
                    &pem,
                    &format!("trust bundle file {}", path.display()),
                )?;
            }
        }
    }
    Ok(())
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
        Ok(Some(Either::B(TlsTransport { buffers, stream })))
    }
}

fn io_error(e: rustls::Error) -> ureq::Error {
    ureq::Error::Io(std::io::Error::other(e))
}

/// An established TLS connection.
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
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
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
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
    fn missing_bundle_dir_and_no_extra_give_the_bundled_roots() {
        let config = client_config(None, Path::new("/nonexistent/heartbeats"), TlsMin::V12);
        assert!(config.is_ok());
    }

    #[test]
    fn extra_text_without_a_certificate_is_refused_by_name() {
        let error = client_config(
            Some(("K_CA_CERTS", "hello")),
            Path::new("/nonexistent"),
            TlsMin::V13,
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid K_CA_CERTS \"hello\": no PEM"),
            "{error}"
        );
        let broken = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        let error = client_config(
            Some(("--cacerts", broken)),
            Path::new("/nonexistent"),
            TlsMin::V13,
        )
        .unwrap_err();
        assert!(
            error.to_string().starts_with("invalid --cacerts"),
            "{error}"
        );
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
        assert_eq!(root_store(None, &dir).unwrap().len(), bundled + 1);
        let two = format!("{}{}", ca_pem(), ca_pem());
        assert_eq!(
            root_store(Some(("K_CA_CERTS", &two)), &dir).unwrap().len(),
            bundled + 3
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_broken_pem_file_in_the_bundle_dir_is_refused_by_path() {
        let dir = temp_dir("broken");
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        std::fs::write(
            dir.join("bundle/ca.pem"),
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(dir.join("README"), "not a certificate").unwrap();
        let error = client_config(None, &dir, TlsMin::V13).unwrap_err();
        assert!(error.to_string().contains("bundle/ca.pem"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
