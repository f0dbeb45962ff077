//! Where OTLP goes and how, for one signal: read as the OTel Go SDK's exporters read it (their
//! `otlpconfig`), in their order. First the SDK's defaults (`localhost:4318` over HTTP,
//! `localhost:4317` over gRPC, TLS, a 10 s timeout); then the `OTEL_EXPORTER_OTLP_*` variables,
//! each general one before its per-signal one, which replaces it: `ENDPOINT`, `CERTIFICATE`,
//! `CLIENT_CERTIFICATE` with `CLIENT_KEY`, `INSECURE`, `HEADERS`, `COMPRESSION`, `TIMEOUT`; last
//! the config's endpoint, which knative.dev/pkg passes only when no `ENDPOINT` variable is set
//! and whose scheme then says TLS or not. Header values are never quoted back (API keys).
//!
//! Where Go would go wrong we do not follow it, and the README says so: an endpoint variable
//! without a scheme (`collector:4317`) is a host and port, not a URL Go makes an empty host of;
//! a timeout that is not a positive number of milliseconds is ignored.

use std::path::PathBuf;
use std::time::Duration;

use super::{MAX_SHOWN, Otlp, Protocol};
use crate::log::Bounded;

/// The OTel SDK's timeout of one export.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the SDK's options make of the variables, before the URL is put together.
struct Target {
    /// `host:port`.
    host: String,
    /// HTTP only: credentials in the URL (`user:password`), sent as ureq sends them.
    userinfo: Option<String>,
    /// HTTP only: the request path.
    path: String,
    insecure: bool,
}

/// The OTLP settings for one signal (`METRICS`, `TRACES`), whose HTTP path is `path`, from the
/// config's `endpoint` and the environment; problems that leave a setting at its default go to
/// `warnings`.
pub fn otlp(
    endpoint: &str,
    signal: &str,
    path: &str,
    protocol: Protocol,
    var: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Otlp, String> {
    // As the SDK: a value is set when it is not blank, and is trimmed.
    let set = |name: &str| -> Option<(String, String)> {
        let name = format!("OTEL_EXPORTER_OTLP_{name}");
        let value = var(&name)?.trim().to_owned();
        (!value.is_empty()).then_some((name, value))
    };
    // Each setting from the general variable, then the per-signal one, which wins.
    let both = |name: &str| [set(name), set(&format!("{signal}_{name}"))];
    let default_port = match protocol {
        Protocol::HttpProtobuf => 4318,
        Protocol::Grpc => 4317,
    };
    let mut target = Target {
        host: format!("localhost:{default_port}"),
        path: path.to_owned(),
        insecure: false,
        userinfo: None,
    };
    let mut from_variable = false;
    for (index, found) in both("ENDPOINT").into_iter().enumerate() {
        let Some((name, value)) = found else { continue };
        let Some((scheme, host, url_path, userinfo)) = split_url(&value, default_port) else {
            warnings.push(format!(
                "{name} {} is not a URL; ignored",
                Bounded(&crate::config::url::redact_userinfo(&value), MAX_SHOWN)
            ));
            continue;
        };
        from_variable = true;
        target.insecure = matches!(scheme.as_str(), "http" | "unix");
        target.host = host;
        target.userinfo = userinfo;
        target.path = match index {
            // The general variable is a base: the signal's path goes under it.
            0 => format!("{}{path}", url_path.trim_end_matches('/')),
            // A per-signal variable is the whole URL ("/" when it has no path).
            _ if url_path.is_empty() => "/".to_owned(),
            _ => url_path,
        };
    }
    let mut tls = super::ExportTls::default();
    for (name, file) in both("CERTIFICATE").into_iter().flatten() {
        let _ = name;
        tls.ca = Some(PathBuf::from(file));
    }
    for (prefix, cert, key) in [
        ("", "CLIENT_CERTIFICATE", "CLIENT_KEY"),
        (signal, "CLIENT_CERTIFICATE", "CLIENT_KEY"),
    ] {
        let name = |base: &str| match prefix {
            "" => base.to_owned(),
            signal => format!("{signal}_{base}"),
        };
        if let (Some((_, cert)), Some((_, key))) = (set(&name(cert)), set(&name(key))) {
            tls.client = Some((PathBuf::from(cert), PathBuf::from(key)));
        }
    }
    for (_, value) in both("INSECURE").into_iter().flatten() {
        target.insecure = value.eq_ignore_ascii_case("true");
    }
    let mut headers = Vec::new();
    for (name, value) in both("HEADERS").into_iter().flatten() {
        headers = parse_headers(&name, &value, warnings);
    }
    let mut gzip = false;
    for (_, value) in both("COMPRESSION").into_iter().flatten() {
        gzip = value == "gzip";
    }
    let mut timeout = DEFAULT_TIMEOUT;
    for (name, value) in both("TIMEOUT").into_iter().flatten() {
        match value.parse::<u64>() {
            Ok(ms) if ms > 0 => timeout = Duration::from_millis(ms),
            _ => warnings.push(format!(
                "{name} {} is not a positive number of milliseconds; ignored",
                Bounded(&value, MAX_SHOWN)
            )),
        }
    }
    // knative.dev/pkg's endpoint, when no variable names one: its scheme decides TLS.
    if !from_variable && !endpoint.is_empty() {
        let url = if endpoint.contains("://") {
            endpoint.to_owned()
        } else {
            format!("https://{endpoint}")
        };
        let Some((scheme, host, url_path, userinfo)) = split_url(&url, default_port) else {
            return Err(format!(
                "endpoint {} is not a URL",
                Bounded(&crate::config::url::redact_userinfo(endpoint), MAX_SHOWN)
            ));
        };
        if !matches!(scheme.as_str(), "http" | "https") {
            return Err(format!(
                "endpoint {} is not an http:// or https:// URL",
                Bounded(&crate::config::url::redact_userinfo(endpoint), MAX_SHOWN)
            ));
        }
        target.insecure = scheme != "https";
        target.host = host;
        target.userinfo = userinfo;
        target.path = if url_path.is_empty() || url_path == "/" {
            path.to_owned()
        } else {
            url_path
        };
    }
    let tls_files = tls.ca.is_some() || tls.client.is_some();
    let scheme = match protocol {
        // Go's gRPC exporter: TLS files mean TLS, even for an endpoint said to be insecure.
        Protocol::Grpc if tls_files => "https",
        _ if target.insecure => "http",
        _ => "https",
    };
    if protocol == Protocol::HttpProtobuf && target.insecure && tls_files {
        warnings.push(format!(
            "OTEL_EXPORTER_OTLP_*CERTIFICATE/CLIENT_* are set but the {signal} endpoint is \
             http://; they are not used"
        ));
        tls = super::ExportTls::default();
    }
    let credentials = target.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let url = match protocol {
        Protocol::HttpProtobuf => format!("{scheme}://{credentials}{}{}", target.host, target.path),
        Protocol::Grpc => format!("{scheme}://{}", target.host),
    };
    Ok(Otlp {
        protocol,
        url,
        headers,
        timeout,
        gzip,
        tls,
    })
}

/// `scheme://[userinfo@]host[:port][/path]` → (scheme, host:port, path, userinfo); a value
/// without a scheme is `host[:port]`. The port defaults to `default_port`. The userinfo runs to
/// the last `@`, as logs hide it (a password may hold `/`, `?` or `#`): no part of it is ever
/// taken for the host.
fn split_url(text: &str, default_port: u16) -> Option<(String, String, String, Option<String>)> {
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("https".to_owned(), text),
    };
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (Some(rest[..at].to_owned()), &rest[at + 1..]),
        None => (None, rest),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(at) => (
            &rest[..at],
            rest[at..].split(['?', '#']).next().unwrap_or_default(),
        ),
        None => (rest, ""),
    };
    if authority.is_empty()
        || authority
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let has_port = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].contains(':'),
        None => authority.contains(':'),
    };
    let host = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    };
    Some((scheme, host, path.to_owned(), userinfo))
}

/// `name=value` pairs separated by commas, values percent-decoded and trimmed, as the SDK reads
/// them: an entry that cannot be used is skipped with a warning naming it, never showing its
/// value.
fn parse_headers(variable: &str, value: &str, warnings: &mut Vec<String>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in value.split(',') {
        let Some((name, value)) = pair.split_once('=') else {
            warnings.push(format!(
                "{variable} has an entry without '='; it is skipped"
            ));
            continue;
        };
        let name = name.trim();
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        let value = crate::config::url::unescape(value)
            .and_then(|v| String::from_utf8(v).ok())
            .map(|v| v.trim().to_owned())
            .filter(|v| v.chars().all(|c| c == '\t' || (' '..='~').contains(&c)));
        match value {
            Some(value) if !name.is_empty() && name.chars().all(token) => {
                let name = name.to_ascii_lowercase();
                // As a Go map: the last of a repeated name.
                out.retain(|(n, _)| *n != name);
                out.push((name, value));
            }
            _ => warnings.push(format!(
                "{variable} entry {} is not a valid header (its value is not shown); it is \
                 skipped",
                Bounded(name, MAX_SHOWN)
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, parse};
    use super::super::*;
    use super::*;

    fn resolve(vars: &[(&str, &str)], endpoint: &str, protocol: Protocol) -> (Otlp, Vec<String>) {
        let var = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let mut warnings = Vec::new();
        let otlp = otlp(
            endpoint,
            "TRACES",
            "/v1/traces",
            protocol,
            &var,
            &mut warnings,
        )
        .unwrap();
        (otlp, warnings)
    }

    #[test]
    fn endpoints_are_resolved_in_the_go_sdks_order() {
        use Protocol::{Grpc, HttpProtobuf as Http};
        // (variables, config endpoint, protocol, URL)
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static str,
            Protocol,
            &'static str,
        );
        let cases: [Case; 16] = [
            (&[], "", Http, "https://localhost:4318/v1/traces"),
            (&[], "", Grpc, "https://localhost:4317"),
            (&[], "http://c:4318", Http, "http://c:4318/v1/traces"),
            (&[], "c:4318/custom", Http, "https://c:4318/custom"),
            (&[], "http://c:4317", Grpc, "http://c:4317"),
            (&[], "c:4317", Grpc, "https://c:4317"),
            // The config's scheme wins over INSECURE (knative's option comes last).
            (
                &[("OTEL_EXPORTER_OTLP_INSECURE", "true")],
                "https://c:4317",
                Grpc,
                "https://c:4317",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318/")],
                "http://c:1",
                Http,
                "http://base:4318/v1/traces",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318/x")],
                "",
                Http,
                "http://base:4318/x/v1/traces",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1")],
                "",
                Http,
                "http://t:1/",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://b:1"),
                    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://t:2/p"),
                ],
                "",
                Http,
                "https://t:2/p",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://g:4317")],
                "",
                Grpc,
                "http://g:4317",
            ),
            // INSECURE after an https variable: plain (the variables' own order).
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://g:4317"),
                    ("OTEL_EXPORTER_OTLP_INSECURE", "TRUE"),
                ],
                "",
                Grpc,
                "http://g:4317",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://g"),
                    ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "false"),
                    ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
                ],
                "",
                Grpc,
                "https://g:4317",
            ),
            // No scheme: a host and port (Go would make an empty host of it).
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")],
                "",
                Grpc,
                "https://collector:4317",
            ),
            // Certificates make gRPC use TLS even when insecure, as Go's exporter does.
            (
                &[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem")],
                "http://c:4317",
                Grpc,
                "https://c:4317",
            ),
        ];
        for (vars, endpoint, protocol, url) in cases {
            let (otlp, warnings) = resolve(vars, endpoint, protocol);
            assert_eq!(otlp.url, url, "{vars:?} {endpoint:?}");
            assert!(warnings.is_empty(), "{vars:?}: {warnings:?}");
        }
    }

    #[test]
    fn headers_timeout_compression_and_certificates_follow_the_per_signal_variables() {
        let (otlp, warnings) = resolve(
            &[
                ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=general,x=1"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                    "Api-Key=a%20b , bad name=1,novalue",
                ),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon"),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
                ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/t.pem"),
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/c.pem"),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/c.key"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                    "/only-one.pem",
                ),
            ],
            "https://c:4317",
            Protocol::Grpc,
        );
        // The per-signal headers replace the general ones.
        assert_eq!(otlp.headers, [("api-key".to_owned(), "a b".to_owned())]);
        assert_eq!(otlp.timeout, Duration::from_millis(2500));
        assert!(otlp.gzip);
        assert_eq!(otlp.tls.ca, Some(PathBuf::from("/t.pem")));
        assert_eq!(
            otlp.tls.client,
            Some((PathBuf::from("/c.pem"), PathBuf::from("/c.key")))
        );
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .all(|w| !w.contains("a%20b") && !w.contains("general"))
        );
        // Any other compression is none.
        let (otlp, _) = resolve(
            &[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")],
            "",
            Protocol::Grpc,
        );
        assert!(!otlp.gzip);
        assert_eq!(otlp.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn the_config_chooses_grpc_and_the_environment_where_it_goes() {
        let json = r#"{"metrics":{"protocol":"grpc","endpoint":"http://c:4317","exportInterval":5000000000},
                       "tracing":{"protocol":"grpc","endpoint":"c:4317","samplingRate":0.5}}"#;
        let (settings, warnings) = config(json);
        assert!(warnings.is_empty(), "{warnings:?}");
        let Metrics::Otlp {
            endpoint, interval, ..
        } = &settings.metrics
        else {
            panic!("{settings:?}")
        };
        assert_eq!(
            (endpoint.protocol, endpoint.url.as_str()),
            (Protocol::Grpc, "http://c:4317")
        );
        assert_eq!(*interval, Duration::from_secs(5));
        let Tracing::Otlp { endpoint, .. } = &settings.tracing else {
            panic!()
        };
        assert_eq!(endpoint.url, "https://c:4317");
        let (settings, _) = parse(&[
            (CONFIG_VAR, json),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://m:9/ignored/path",
            ),
        ]);
        let Metrics::Otlp { endpoint, .. } = &settings.metrics else {
            panic!()
        };
        assert_eq!(endpoint.url, "http://m:9");
    }

    #[test]
    fn header_values_are_never_quoted() {
        let (settings, warnings) = parse(&[
            (CONFIG_VAR, r#"{"tracing":{"protocol":"http/protobuf"}}"#),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%0Asecret-token",
            ),
        ]);
        assert!(!settings.is_off());
        assert!(warnings[0].contains("authorization"), "{warnings:?}");
        assert!(!warnings[0].contains("secret"), "{warnings:?}");
    }
}
