//! The ureq agents: one for the sink (keep-alive pool, per-attempt timeout, the proxy) and one
//! for telemetry's exports (no proxy, small buffers). Both share what every request here needs:
//! a status is an answer, not an error; redirects are not followed; our user agent, our TCP
//! transport and our TLS.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use ureq::Agent;
use ureq::config::{Config, ConfigBuilder};
use ureq::typestate::AgentScope;
use ureq::unversioned::transport::Connector;

use super::buffers::LineRoom;
use super::head::MAX_HEAD;
use super::resolve::Resolver;
use super::tls::TlsConnector;
use super::transport::{ConnectorResolves, TcpConnector};
use crate::config::proxy::Proxy;
use crate::wait::{OnStop, Waiter};

/// Idle keep-alive connections are kept this long, as Go's `http.Transport`.
const MAX_IDLE: Duration = Duration::from_secs(90);
/// The longest line an export may write (its request line, with the collector's path), and the
/// longest head it reads: a collector's answer is small.
const EXPORT_LINE: usize = 16 * 1024;
const USER_AGENT: &str = concat!("heartbeats/", env!("CARGO_PKG_VERSION"));

/// Where an agent's connections come from: its proxies, if any, how names are looked up, the
/// waiter its sockets wait through, what a stop signal does to its exchanges, and how long
/// their output buffers are.
pub struct Connections {
    pub proxies: Vec<Proxy>,
    pub resolver: Resolver,
    pub waiter: Arc<Waiter>,
    pub on_stop: OnStop,
    pub room: LineRoom,
}

/// The sink's agent: each attempt within `timeout`.
pub fn sink(timeout: Duration, connections: Connections, tls: Option<Arc<ClientConfig>>) -> Agent {
    agent(sink_config(timeout), connections, tls, MAX_HEAD)
}

/// The sink agent's settings.
pub fn sink_config(timeout: Duration) -> Config {
    let settings = Agent::config_builder()
        .timeout_global(Some(timeout))
        .max_idle_age(MAX_IDLE)
        // Twice ureq's default (Go takes 10 MB); the input buffer grows to it only when needed.
        .max_response_header_size(MAX_HEAD);
    shared(settings)
}

/// The exports' agent: the sink's TLS trust, a small head limit.
pub fn export(mut connections: Connections, tls: Option<Arc<ClientConfig>>) -> Agent {
    connections.room = LineRoom::new(EXPORT_LINE);
    agent(export_config(), connections, tls, EXPORT_LINE)
}

/// The export agent's settings.
pub fn export_config() -> Config {
    shared(Agent::config_builder().max_response_header_size(EXPORT_LINE))
}

/// What every agent here has: a status is an answer, redirects are not followed, our user
/// agent, no proxy of ureq's own.
fn shared(settings: ConfigBuilder<AgentScope>) -> Config {
    settings
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(USER_AGENT)
        // Proxies are our connector's (see the tunnel module).
        .proxy(None)
        .build()
}

/// An agent of `config` whose connections read heads of up to `max_head` bytes; https only
/// with `tls`.
fn agent(
    config: Config,
    connections: Connections,
    tls: Option<Arc<ClientConfig>>,
    max_head: usize,
) -> Agent {
    let tcp = TcpConnector {
        proxies: connections.proxies.into_iter().map(Arc::new).collect(),
        resolver: connections.resolver,
        waiter: connections.waiter,
        on_stop: connections.on_stop,
        room: connections.room.clone(),
        max_head,
    };
    let tls = TlsConnector {
        config: tls,
        room: connections.room,
        max_head,
    };
    let connector = ().chain(tcp).chain(tls);
    Agent::with_parts(config, connector, ConnectorResolves)
}
