//! https sinks: the rustls client configuration (the roots of [`roots`], the versions, suites
//! and groups of the `TLS_*` settings) and the ureq connector that wraps a TCP transport in it.
//! ureq's own rustls connector cannot add CAs to the bundled roots nor set a minimum version, so
//! this module replaces it.

mod roots;

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use ureq::unversioned::transport::{
    Buffers as UreqBuffers, ConnectionDetails, Connector, Either, NextTimeout, Transport,
    TransportAdapter, time,
};

use super::buffers::{Buffers, LineRoom};
use super::head::HeadReader;
use crate::config::Named;
use crate::config::tls::{Group, TLS_CIPHER_SUITES, TlsSettings, TlsVersion, Trust};
use crate::error::Error;

/// The rustls client configuration for https, with a warning for each file of trust that was
/// skipped. `extra` is the PEM text that must hold a certificate (`K_CA_CERTS`/`--cacerts`).
pub fn client_config(
    trust: &Trust,
    extra: Option<&Named>,
    settings: &TlsSettings,
) -> Result<(Arc<ClientConfig>, Vec<String>), Error> {
    let mut warnings = Vec::new();
    let roots = roots::root_store(trust, extra, &mut warnings)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match (settings.min, settings.max) {
        (TlsVersion::V12, TlsVersion::V13) => &[&rustls::version::TLS13, &rustls::version::TLS12],
        (TlsVersion::V12, TlsVersion::V12) => &[&rustls::version::TLS12],
        _ => &[&rustls::version::TLS13],
    };
    let config = ClientConfig::builder_with_provider(Arc::new(provider(settings)))
        .with_protocol_versions(versions)
        .map_err(|e| Error::unusable(TLS_CIPHER_SUITES, e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(config), warnings))
}

/// The TLS configuration of exports to one collector: `base` (the sink's trust), or only the
/// CAs of `tls.ca`; with a client certificate when `tls.client` names one (mTLS); offering
/// `alpn`. A file that cannot be used is the error, named by its variable.
pub fn export_config(
    base: &Arc<ClientConfig>,
    (trust, extra): (&Trust, Option<&Named>),
    tls: &crate::config::observability::ExportTls,
    settings: &TlsSettings,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &std::path::Path, what: &str| {
        crate::files::read(path, 1024 * 1024)
            .map_err(|e| format!("OTEL_EXPORTER_OTLP_*{what} {}: {e}", path.display()))
    };
    let mut config = if tls.ca.is_none() && tls.client.is_none() {
        (**base).clone()
    } else {
        let roots = match &tls.ca {
            Some(path) => {
                let pem = read(path, "CERTIFICATE")?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|_| {
                        format!(
                            "OTEL_EXPORTER_OTLP_*CERTIFICATE {}: not PEM certificates",
                            path.display()
                        )
                    })?;
                    roots.add(cert).map_err(|e| {
                        format!("OTEL_EXPORTER_OTLP_*CERTIFICATE {}: {e}", path.display())
                    })?;
                }
                if roots.is_empty() {
                    return Err(format!(
                        "OTEL_EXPORTER_OTLP_*CERTIFICATE {}: no PEM certificate found",
                        path.display()
                    ));
                }
                roots
            }
            None => roots::root_store(trust, extra, &mut Vec::new()).map_err(|e| e.to_string())?,
        };
        let builder = ClientConfig::builder_with_provider(Arc::new(provider(settings)))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        match &tls.client {
            Some((cert, key)) => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(&read(cert, "CLIENT_CERTIFICATE")?)
                        .collect::<Result<_, _>>()
                        .map_err(|_| {
                            format!(
                                "OTEL_EXPORTER_OTLP_*CLIENT_CERTIFICATE {}: not PEM",
                                cert.display()
                            )
                        })?;
                let key =
                    PrivateKeyDer::from_pem_slice(&read(key, "CLIENT_KEY")?).map_err(|_| {
                        format!(
                            "OTEL_EXPORTER_OTLP_*CLIENT_KEY {}: no PEM private key",
                            key.display()
                        )
                    })?;
                builder.with_client_auth_cert(chain, key).map_err(|_| {
                    "OTEL_EXPORTER_OTLP_*CLIENT_KEY does not go with its certificate".to_owned()
                })?
            }
            None => builder.with_no_client_auth(),
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Whether `extra` (`K_CA_CERTS`/`--cacerts`) holds a usable certificate, without building a
/// configuration or reading a file: for an http sink, where it is only worth a warning.
pub fn check_extra(extra: &Named) -> Result<(), Error> {
    roots::check_extra(extra)
}

/// The crypto provider with the suites and groups `settings` allow.
fn provider(settings: &TlsSettings) -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::kx_group;
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(allowed) = &settings.cipher_suites {
        provider.cipher_suites.retain(|s| {
            matches!(s, rustls::SupportedCipherSuite::Tls13(_)) || allowed.contains(&s.suite())
        });
    }
    if let Some(groups) = &settings.curves {
        provider.kx_groups = groups
            .iter()
            .map(|group| match group {
                Group::X25519 => kx_group::X25519,
                Group::P256 => kx_group::SECP256R1,
                Group::P384 => kx_group::SECP384R1,
            })
            .collect();
    }
    provider
}

/// Wraps the TCP transport of https connections in rustls with our [`ClientConfig`]; the
/// plaintext buffers are as long as `room` says, and take heads of up to `max_head` bytes.
/// Without a configuration (nothing https was configured) an https URL is refused.
pub struct TlsConnector {
    pub config: Option<Arc<ClientConfig>>,
    pub room: LineRoom,
    pub max_head: usize,
}

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
        let Some(config) = &self.config else {
            return Err(ureq::Error::TlsRequired);
        };
        let host = details.uri.host().unwrap_or_default();
        // An IPv6 literal comes bracketed in the URI; the server name is the bare address.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ureq::Error::BadUri(format!("not a TLS server name: {host}")))?;
        let mut conn = ClientConnection::new(config.clone(), name).map_err(io_error)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = Buffers::new(self.room.clone(), self.max_head);
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
    buffers: Buffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
    head: HeadReader,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn UreqBuffers {
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

    #[test]
    fn the_provider_keeps_tls_1_3_suites_and_the_named_1_2_ones_and_groups_in_order() {
        let settings = TlsSettings {
            min: TlsVersion::V12,
            max: TlsVersion::V13,
            cipher_suites: Some(vec![
                rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            ]),
            curves: Some(vec![Group::P384, Group::X25519]),
        };
        let provider = provider(&settings);
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
