//! The ureq agents: one for the sink (keep-alive pool, per-attempt timeout, the proxy) and one
//! for telemetry's exports (no proxy, small buffers). Both share what every request here needs:
//! a status is an answer, not an error; redirects are not followed; our user agent, our TCP
//! transport and our TLS.

use std::sync::Arc;
use std::time::Duration;

use ureq::Agent;
use ureq::config::ConfigBuilder;
use ureq::typestate::AgentScope;
use ureq::unversioned::transport::Connector;

use super::head::MAX_HEAD;
use super::tls::TlsConnector;
use super::transport::{ConnectorResolves, TcpConnector, system_lookup};
use crate::config::proxy::Proxy;

/// Idle keep-alive connections are kept this long, as Go's `http.Transport`.
const MAX_IDLE: Duration = Duration::from_secs(90);
/// The export agent's input and output buffers: a collector's answer is small.
const EXPORT_BUFFER: usize = 16 * 1024;
const USER_AGENT: &str = concat!("heartbeats/", env!("CARGO_PKG_VERSION"));

/// The sink's agent: each attempt within `timeout`, through `proxy` if any.
pub fn sink(timeout: Duration, proxy: Option<Proxy>, tls: &Arc<rustls::ClientConfig>) -> Agent {
    let settings = Agent::config_builder()
        .timeout_global(Some(timeout))
        .max_idle_age(MAX_IDLE)
        // As much head as the input buffer holds: twice ureq's default (Go takes 10 MB).
        .max_response_header_size(MAX_HEAD);
    agent(settings, proxy.map(Arc::new), tls)
}

/// The exports' agent: the sink's TLS trust, no proxy, small buffers.
pub fn export(tls: &Arc<rustls::ClientConfig>) -> Agent {
    let settings = Agent::config_builder()
        .input_buffer_size(EXPORT_BUFFER)
        .output_buffer_size(EXPORT_BUFFER)
        .max_response_header_size(EXPORT_BUFFER);
    agent(settings, None, tls)
}

fn agent(
    settings: ConfigBuilder<AgentScope>,
    proxy: Option<Arc<Proxy>>,
    tls: &Arc<rustls::ClientConfig>,
) -> Agent {
    let config = settings
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(USER_AGENT)
        // Proxies are our connector's (see the tunnel module).
        .proxy(None)
        .build();
    let tcp = TcpConnector {
        proxy,
        lookup: system_lookup,
    };
    let connector = ().chain(tcp).chain(TlsConnector(tls.clone()));
    Agent::with_parts(config, connector, ConnectorResolves)
}
