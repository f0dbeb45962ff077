//! The TLS variables of `knative.dev/pkg/network/tls` (`TLS_MIN_VERSION`, `TLS_MAX_VERSION`,
//! `TLS_CIPHER_SUITES`, `TLS_CURVE_PREFERENCES`) with Go's names, checked against what this
//! build's crypto provider (rustls on ring) can do, and where trusted certificates come from
//! besides the roots compiled in.

use std::path::PathBuf;

use super::env::Env;
use crate::error::Error;

pub const TLS_MIN_VERSION: &str = "TLS_MIN_VERSION";
pub const TLS_MAX_VERSION: &str = "TLS_MAX_VERSION";
pub const TLS_CIPHER_SUITES: &str = "TLS_CIPHER_SUITES";
pub const TLS_CURVE_PREFERENCES: &str = "TLS_CURVE_PREFERENCES";
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
pub const SSL_CERT_DIR: &str = "SSL_CERT_DIR";
/// For tests: Knative always mounts trust bundles at [`TRUST_BUNDLE_DIR`].
pub const HEARTBEATS_TRUST_BUNDLE_DIR: &str = "HEARTBEATS_TRUST_BUNDLE_DIR";
/// Where Knative mounts trust bundles (ConfigMaps labelled as such) into sources.
pub const TRUST_BUNDLE_DIR: &str = "/knative-custom-certs";

/// A TLS protocol version, as `TLS_MIN_VERSION` and `TLS_MAX_VERSION` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V12,
    V13,
}

impl TlsVersion {
    /// `1.2` or `1.3`, as Knative's `network/tls` reads them.
    fn parse(variable: &str, text: &str) -> Result<TlsVersion, Error> {
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

/// A key exchange group rustls on ring offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    X25519,
    P256,
    P384,
}

/// The TLS settings, as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub min: TlsVersion,
    pub max: TlsVersion,
    /// `TLS_CIPHER_SUITES`: the TLS 1.2 suites allowed (the list constrains TLS 1.2 only, as in
    /// Go); `None` when unset.
    pub cipher_suites: Option<Vec<rustls::CipherSuite>>,
    /// `TLS_CURVE_PREFERENCES`, in order; `None` when unset.
    pub curves: Option<Vec<Group>>,
}

impl Default for TlsSettings {
    /// Knative's: TLS 1.3 only, the provider's suites and groups.
    fn default() -> Self {
        TlsSettings {
            min: TlsVersion::V13,
            max: TlsVersion::V13,
            cipher_suites: None,
            curves: None,
        }
    }
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
const CURVES: [(&str, Option<Group>); 9] = [
    ("X25519", Some(Group::X25519)),
    ("CurveP256", Some(Group::P256)),
    ("P-256", Some(Group::P256)),
    ("CurveP384", Some(Group::P384)),
    ("P-384", Some(Group::P384)),
    ("CurveP521", None),
    ("P-521", None),
    ("X25519MLKEM768", None),
    ("SecP256r1MLKEM768", None),
];

impl TlsSettings {
    /// The settings from the environment. Min defaults to 1.3 as Knative's, max to 1.3; an
    /// unknown name, or one this build cannot do, is an error naming its variable.
    pub fn from_env(env: Env) -> Result<TlsSettings, Error> {
        let version = |name: &str, default: TlsVersion| {
            env.get(name)?
                .map_or(Ok(default), |text| TlsVersion::parse(name, &text))
        };
        let min = version(TLS_MIN_VERSION, TlsVersion::V13)?;
        let max = version(TLS_MAX_VERSION, TlsVersion::V13)?;
        if min > max {
            return Err(Error::invalid(
                TLS_MIN_VERSION,
                min.name(),
                format!("above {TLS_MAX_VERSION} {}", max.name()),
            ));
        }
        // A list with no names (`,`) is no list: Go's crypto/tls takes an empty one as its
        // defaults.
        let cipher_suites = env
            .get(TLS_CIPHER_SUITES)?
            .map(|text| names(TLS_CIPHER_SUITES, &text, &CIPHER_SUITES, true))
            .transpose()?
            .filter(|names| !names.is_empty())
            .map(|suites| suites.into_iter().flatten().collect());
        let curves = env
            .get(TLS_CURVE_PREFERENCES)?
            .map(|text| names(TLS_CURVE_PREFERENCES, &text, &CURVES, false))
            .transpose()?
            .filter(|names| !names.is_empty())
            .map(|groups| groups.into_iter().flatten().collect());
        Ok(TlsSettings {
            min,
            max,
            cipher_suites,
            curves,
        })
    }
}

/// The comma list `text` of `variable`, each name looked up in `known`. A name without a value
/// there is one this build cannot do: an error, unless `unused_ok` (TLS 1.3 suites, which Go
/// accepts and ignores).
fn names<T: Copy>(
    variable: &str,
    text: &str,
    known: &[(&str, Option<T>)],
    unused_ok: bool,
) -> Result<Vec<Option<T>>, Error> {
    let mut out = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some((_, value)) = known.iter().find(|(k, _)| *k == name) else {
            let all: Vec<&str> = known.iter().map(|(k, _)| *k).collect();
            return Err(Error::invalid(
                variable,
                name,
                format!("unknown; expected one of {}", all.join(", ")),
            ));
        };
        if value.is_none() && !unused_ok {
            return Err(Error::invalid(
                variable,
                name,
                "not supported by this build's TLS library (rustls on ring)",
            ));
        }
        out.push(*value);
    }
    Ok(out)
}

/// Where trusted CA certificates come from, besides Mozilla's roots compiled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// Extra CAs as PEM text: env `K_CA_CERTS`, else `--cacerts`; with that name.
    pub extra: Option<super::Named>,
    /// `SSL_CERT_FILE`: one PEM file, as Go and OpenSSL read it.
    pub cert_file: Option<PathBuf>,
    /// `SSL_CERT_DIR`: colon-separated directories of PEM files (not searched below).
    pub cert_dirs: Vec<PathBuf>,
    /// Knative's trust bundles, searched recursively: [`TRUST_BUNDLE_DIR`], or env
    /// `HEARTBEATS_TRUST_BUNDLE_DIR` (for tests).
    pub bundle_dir: PathBuf,
}

impl Trust {
    pub fn from_env(env: Env, extra: Option<super::Named>) -> Result<Trust, Error> {
        Ok(Trust {
            extra,
            cert_file: env.get(SSL_CERT_FILE)?.map(PathBuf::from),
            cert_dirs: env
                .get(SSL_CERT_DIR)?
                .map(|dirs| {
                    dirs.split(':')
                        .filter(|d| !d.is_empty())
                        .map(PathBuf::from)
                        .collect()
                })
                .unwrap_or_default(),
            bundle_dir: PathBuf::from(
                env.get(HEARTBEATS_TRUST_BUNDLE_DIR)?
                    .as_deref()
                    .unwrap_or(TRUST_BUNDLE_DIR),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::FakeHost;

    fn parse(vars: &[(&'static str, &str)]) -> Result<TlsSettings, String> {
        let host = FakeHost::new(vars);
        TlsSettings::from_env(Env(&host)).map_err(|e| e.to_string())
    }

    #[test]
    fn versions_default_to_1_3_and_min_may_not_pass_max() {
        let s = parse(&[]).unwrap();
        assert_eq!((s.min, s.max), (TlsVersion::V13, TlsVersion::V13));
        let s = parse(&[(TLS_MIN_VERSION, "1.2")]).unwrap();
        assert_eq!((s.min, s.max), (TlsVersion::V12, TlsVersion::V13));
        assert_eq!(
            parse(&[(TLS_MAX_VERSION, "1.2")]).unwrap_err(),
            "invalid TLS_MIN_VERSION \"1.3\": above TLS_MAX_VERSION 1.2"
        );
        assert!(
            parse(&[(TLS_MAX_VERSION, "1.4")])
                .unwrap_err()
                .starts_with("invalid TLS_MAX_VERSION \"1.4\"")
        );
    }

    #[test]
    fn lists_without_names_are_the_defaults_as_in_go() {
        let s = parse(&[(TLS_CIPHER_SUITES, " , "), (TLS_CURVE_PREFERENCES, ",")]).unwrap();
        assert_eq!((s.cipher_suites, s.curves), (None, None));
    }

    #[test]
    fn suites_and_curves_take_go_names_and_refuse_what_ring_cannot_do() {
        let s = parse(&[
            (
                TLS_CIPHER_SUITES,
                " TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305 , TLS_AES_128_GCM_SHA256",
            ),
            (TLS_CURVE_PREFERENCES, "CurveP256,X25519, P-384"),
        ])
        .unwrap();
        assert_eq!(s.curves.unwrap(), [Group::P256, Group::X25519, Group::P384]);
        assert_eq!(
            s.cipher_suites.unwrap(),
            [rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256]
        );
        for (vars, expected) in [
            (
                [(TLS_CIPHER_SUITES, "TLS_RSA_WITH_AES_128_CBC_SHA")],
                "invalid TLS_CIPHER_SUITES \"TLS_RSA_WITH_AES_128_CBC_SHA\": unknown",
            ),
            (
                [(TLS_CURVE_PREFERENCES, "CurveP521")],
                "invalid TLS_CURVE_PREFERENCES \"CurveP521\": not supported",
            ),
            (
                [(TLS_CURVE_PREFERENCES, "X25519MLKEM768")],
                "invalid TLS_CURVE_PREFERENCES \"X25519MLKEM768\": not supported",
            ),
            (
                [(TLS_CURVE_PREFERENCES, "Curve25519")],
                "invalid TLS_CURVE_PREFERENCES \"Curve25519\": unknown",
            ),
        ] {
            let error = parse(&vars).unwrap_err();
            assert!(error.starts_with(expected), "{error}");
        }
    }
}
