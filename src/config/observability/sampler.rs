//! `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, as the OpenTelemetry SDK's environment
//! specification reads them (and the Go image's SDK, when `OTEL_TRACES_SAMPLER` is set):
//! `always_on`, `always_off`, `traceidratio` and the three `parentbased_` samplers, the argument
//! being the ratio of the two ratio samplers (1 when not given). Every event starts a trace of
//! its own, so a parent-based sampler samples as its root sampler does. Alone, the argument
//! takes the place of `samplingRate`: knative.dev/pkg means it to, but only does so when it is
//! 1 or more. An unknown sampler or an argument that is not a ratio is a warning, and the
//! config's rate stands.

use super::CONFIG_VAR;
use crate::log::Bounded;

pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
/// The most characters of a sampler name or argument a warning quotes.
const MAX_SHOWN: usize = 40;

/// The fraction of events traced: `rate` (the config's) as the variables change it.
pub fn from_env(
    rate: f64,
    var: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> f64 {
    let argument = var(OTEL_TRACES_SAMPLER_ARG).map(|text| {
        let ratio = text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r));
        (text, ratio)
    });
    let mut bad_argument = |text: &str| {
        warnings.push(format!(
            "{OTEL_TRACES_SAMPLER_ARG} {} is not a ratio from 0 to 1; the sampling rate of \
             {CONFIG_VAR} stands",
            Bounded(text, MAX_SHOWN)
        ));
        rate
    };
    let Some(sampler) = var(OTEL_TRACES_SAMPLER) else {
        return match argument {
            None => rate,
            Some((_, Some(ratio))) => ratio,
            Some((text, None)) => bad_argument(&text),
        };
    };
    match sampler.trim() {
        "always_on" | "parentbased_always_on" => 1.0,
        "always_off" | "parentbased_always_off" => 0.0,
        "traceidratio" | "parentbased_traceidratio" => match argument {
            None => 1.0,
            Some((_, Some(ratio))) => ratio,
            Some((text, None)) => bad_argument(&text),
        },
        other => {
            warnings.push(format!(
                "{OTEL_TRACES_SAMPLER} {} is not always_on, always_off, traceidratio or their \
                 parentbased_ forms; the sampling rate of {CONFIG_VAR} stands",
                Bounded(other, MAX_SHOWN)
            ));
            rate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(rate: f64, vars: &[(&str, &str)]) -> (f64, usize) {
        let var = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let mut warnings = Vec::new();
        let rate = from_env(rate, &var, &mut warnings);
        (rate, warnings.len())
    }

    #[test]
    fn the_six_samplers_and_their_argument_as_the_specification_says() {
        let cases = [
            ("always_on", None, 1.0),
            ("always_off", None, 0.0),
            ("parentbased_always_on", None, 1.0),
            ("parentbased_always_off", None, 0.0),
            ("traceidratio", Some("0.25"), 0.25),
            ("traceidratio", None, 1.0),
            ("parentbased_traceidratio", Some("0"), 0.0),
            ("always_off", Some("0.7"), 0.0),
        ];
        for (sampler, argument, expected) in cases {
            let mut vars = vec![(OTEL_TRACES_SAMPLER, sampler)];
            vars.extend(argument.map(|a| (OTEL_TRACES_SAMPLER_ARG, a)));
            assert_eq!(
                sampling(0.5, &vars),
                (expected, 0),
                "{sampler} {argument:?}"
            );
        }
    }

    #[test]
    fn the_argument_alone_replaces_the_configs_rate() {
        assert_eq!(sampling(0.5, &[]), (0.5, 0));
        assert_eq!(sampling(0.5, &[(OTEL_TRACES_SAMPLER_ARG, "0.1")]), (0.1, 0));
        assert_eq!(sampling(1.0, &[(OTEL_TRACES_SAMPLER_ARG, "0")]), (0.0, 0));
    }

    #[test]
    fn an_unknown_sampler_or_a_bad_argument_is_a_warning_and_the_rate_stands() {
        for vars in [
            &[(OTEL_TRACES_SAMPLER, "jaeger_remote")][..],
            &[(OTEL_TRACES_SAMPLER, "xray")],
            &[
                (OTEL_TRACES_SAMPLER, "traceidratio"),
                (OTEL_TRACES_SAMPLER_ARG, "half"),
            ],
            &[(OTEL_TRACES_SAMPLER_ARG, "1.5")],
            &[(OTEL_TRACES_SAMPLER_ARG, "-0.1")],
        ] {
            assert_eq!(sampling(0.3, vars), (0.3, 1), "{vars:?}");
        }
    }
}
