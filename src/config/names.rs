//! Where host names are looked up: `/etc/resolv.conf` and `/etc/hosts`, and name servers on
//! port 53. Knative always has them there; the variables exist for tests, which point the
//! resolver at a name server of their own on a loopback address (and, the same way, move the
//! Istio sidecar's port).

use std::path::PathBuf;

use super::env::Env;
use crate::error::Error;

pub const HEARTBEATS_RESOLV_CONF: &str = "HEARTBEATS_RESOLV_CONF";
pub const HEARTBEATS_HOSTS: &str = "HEARTBEATS_HOSTS";
pub const HEARTBEATS_DNS_PORT: &str = "HEARTBEATS_DNS_PORT";

/// The resolver's files and the name servers' port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameService {
    pub resolv_conf: PathBuf,
    pub hosts: PathBuf,
    pub port: u16,
}

impl NameService {
    pub fn from_env(env: Env) -> Result<NameService, Error> {
        let path = |name: &str, default: &str| -> Result<PathBuf, Error> {
            Ok(PathBuf::from(env.get(name)?.as_deref().unwrap_or(default)))
        };
        Ok(NameService {
            resolv_conf: path(HEARTBEATS_RESOLV_CONF, "/etc/resolv.conf")?,
            hosts: path(HEARTBEATS_HOSTS, "/etc/hosts")?,
            port: port(env, HEARTBEATS_DNS_PORT, 53)?,
        })
    }
}

/// The port variable `name` (for tests), else `default`.
pub fn port(env: Env, name: &str, default: u16) -> Result<u16, Error> {
    match env.get(name)? {
        None => Ok(default),
        Some(text) => text
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::invalid(name, &text, "expected a port from 1 to 65535")),
    }
}
