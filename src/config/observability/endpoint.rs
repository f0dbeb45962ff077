//! Where OTLP goes and what it carries: the endpoint of each signal from the config or the
//! standard `OTEL_EXPORTER_OTLP_*ENDPOINT` variables, as the OTel Go SDK resolves them, and the
//! extra headers of `OTEL_EXPORTER_OTLP_*HEADERS`, which are never quoted back (API keys).

use super::{DEFAULT_OTLP_BASE, MAX_SHOWN, Otlp};
use crate::log::Bounded;

/// The OTLP URL for one signal (`METRICS`, `TRACES`): `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`
/// as it is, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `path`, else the config's endpoint (a bare
/// `host:port` means https, as in Go; no path means `path`), else the SDK's localhost default.
pub fn otlp(
    endpoint: &str,
    signal: &str,
    path: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Otlp, String> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let specific = format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT");
    let (url, from) = if let Some(url) = set(&specific) {
        (url, specific.clone())
    } else if let Some(base) = set("OTEL_EXPORTER_OTLP_ENDPOINT") {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        (url, "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned())
    } else if !endpoint.is_empty() {
        let url = if endpoint.contains("://") {
            endpoint.to_owned()
        } else {
            format!("https://{endpoint}")
        };
        (with_default_path(&url, path), "endpoint".to_owned())
    } else {
        (format!("{DEFAULT_OTLP_BASE}{path}"), "default".to_owned())
    };
    let url = url.trim().to_owned();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "{from} {} is not an http:// or https:// URL",
            Bounded(&crate::config::url::redact_userinfo(&url), MAX_SHOWN)
        ));
    }
    let mut all = headers(set("OTEL_EXPORTER_OTLP_HEADERS"))?;
    all.extend(headers(set(&format!(
        "OTEL_EXPORTER_OTLP_{signal}_HEADERS"
    )))?);
    Ok(Otlp { url, headers: all })
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `name=value` pairs separated by commas, values
/// percent-decoded. Values are never quoted back: they hold API keys.
fn headers(value: Option<String>) -> Result<Vec<(String, String)>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((name, value)) = pair.split_once('=') else {
            return Err("OTEL_EXPORTER_OTLP_HEADERS has an entry without '='".to_owned());
        };
        let name = name.trim();
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        let value = crate::config::url::unescape(value.trim())
            .and_then(|v| String::from_utf8(v).ok())
            .filter(|v| v.chars().all(|c| c == '\t' || (' '..='~').contains(&c)));
        match value {
            Some(value) if !name.is_empty() && name.chars().all(token) => {
                out.push((name.to_ascii_lowercase(), value));
            }
            _ => {
                return Err(format!(
                    "OTEL_EXPORTER_OTLP_HEADERS entry {} is not a valid header (its value is not \
                     shown)",
                    Bounded(name, MAX_SHOWN)
                ));
            }
        }
    }
    Ok(out)
}

fn with_default_path(url: &str, path: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) if url.len() > after_scheme + slash + 1 => url.to_owned(),
        Some(_) => format!("{}{path}", url.trim_end_matches('/')),
        None => format!("{url}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, parse};
    use super::super::*;

    #[test]
    fn otlp_endpoints_follow_the_config_then_the_otel_variables() {
        let json = r#"{"metrics":{"protocol":"http/protobuf","endpoint":"http://c:4318","exportInterval":5000000000},
                       "tracing":{"protocol":"http/protobuf","endpoint":"c:4318/custom","samplingRate":0.5}}"#;
        let (settings, warnings) = config(json);
        assert!(warnings.is_empty(), "{warnings:?}");
        let Metrics::Otlp { endpoint, interval } = &settings.metrics else {
            panic!("{settings:?}")
        };
        assert_eq!(endpoint.url, "http://c:4318/v1/metrics");
        assert_eq!(*interval, Duration::from_secs(5));
        let Tracing::Otlp { endpoint, sampling } = &settings.tracing else {
            panic!("{settings:?}")
        };
        assert_eq!(endpoint.url, "https://c:4318/custom");
        assert_eq!(*sampling, 0.5);

        let (settings, _) = parse(&[
            (CONFIG_VAR, json),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318/"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/x"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "Api-Key=a%20b, x-tenant=7"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
        ]);
        let Metrics::Otlp { endpoint, interval } = &settings.metrics else {
            panic!()
        };
        assert_eq!(endpoint.url, "http://base:4318/v1/metrics");
        assert_eq!(
            endpoint.headers,
            [
                ("api-key".into(), "a b".into()),
                ("x-tenant".into(), "7".into())
            ]
        );
        assert_eq!(*interval, Duration::from_millis(1500));
        let Tracing::Otlp { endpoint, .. } = &settings.tracing else {
            panic!()
        };
        assert_eq!(endpoint.url, "http://t:1/x");
        // No endpoint anywhere: the SDK's default.
        let (settings, _) = config(r#"{"tracing":{"protocol":"http/protobuf"}}"#);
        let Tracing::Otlp { endpoint, sampling } = &settings.tracing else {
            panic!()
        };
        assert_eq!(endpoint.url, "https://localhost:4318/v1/traces");
        assert_eq!(*sampling, 0.0);
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
        assert!(settings.is_off());
        assert!(warnings[0].contains("authorization"), "{warnings:?}");
        assert!(!warnings[0].contains("secret"), "{warnings:?}");
    }
}
