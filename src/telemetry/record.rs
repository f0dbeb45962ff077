//! What telemetry keeps of an attempt, and where the attempts went: the records the metrics
//! store and the tracer both take.

use std::time::Duration;

use crate::config::url::SinkUrl;
use crate::report::ErrorType;

/// One HTTP attempt as measured: how it ended and what it cost.
#[derive(Debug, Clone, Copy)]
pub struct AttemptRecord {
    /// The response status, when one came.
    pub status: Option<u16>,
    /// `error.type`: the status for 4xx/5xx, else what failed when no response came.
    pub error_type: Option<ErrorType>,
    pub duration: Duration,
    pub body_size: usize,
}

/// Where the attempts went: `server.address`, `server.port`, `url.scheme`.
#[derive(Debug, Clone)]
pub struct Server {
    pub address: String,
    pub port: u16,
    pub scheme: &'static str,
}

impl Server {
    pub fn of(sink: &SinkUrl) -> Server {
        let (host, port) = sink.host_port();
        Server {
            address: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            scheme: if sink.is_https() { "https" } else { "http" },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_the_sinks_host_without_brackets_and_its_port_or_the_schemes() {
        let server = |url: &str| {
            let sink = SinkUrl::parse("K_SINK", url).unwrap();
            let s = Server::of(&sink);
            (s.address, s.port, s.scheme)
        };
        assert_eq!(
            server("http://sink.test/e"),
            ("sink.test".into(), 80, "http")
        );
        assert_eq!(
            server("https://sink.test/e"),
            ("sink.test".into(), 443, "https")
        );
        assert_eq!(
            server("https://u:p@[::1]:8443/"),
            ("::1".into(), 8443, "https")
        );
    }
}
