//! PingSource is the oracle of what a schedule or a payload may be: every line of
//! tests/vectors/ping-accept.jsonl (knative/eventing's own `PingSourceSpec.Validate`, robfig/cron
//! and the adapter's body, `just ping-vectors`) runs through the real binary. A schedule must be
//! accepted or refused as PingSource does and fire first when it fires; a payload must be
//! refused, naming the flag of the field Go names, or sent byte for byte as the adapter sends
//! it. The places where we answer otherwise on purpose are listed in [`DIFFERENCES`].

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use support::{Sink, heartbeats, heartbeats_to, one_shot, run};

const VECTORS: &str = include_str!("vectors/ping-accept.jsonl");

/// The instant the vectors' `next` counts from.
const FROM: &str = "2026-03-01T00:00:00Z";

/// Lines where we answer otherwise on purpose: (the schedule of a schedule line, or the content
/// type of a payload line; whether we accept it; why).
const DIFFERENCES: [(&str, bool, &str); 3] = [
    (
        "@every 1h",
        true,
        "PingSource refuses @every; we take it, as robfig does (a period on the schedule's \
         grammar)",
    ),
    (
        "application/json; charset=utf-8",
        false,
        "PingSource checks the data only when contentType is exactly application/json; we check \
         any spelling of that media type, with parameters too: a body labelled JSON that is not \
         JSON is malformed on the wire",
    ),
    ("Application/JSON", false, "the same"),
];

#[derive(Deserialize)]
struct Line {
    schedule: String,
    timezone: String,
    content_type: String,
    data: String,
    data_base64: String,
    accepted: bool,
    #[serde(default)]
    error: String,
    #[serde(default)]
    sends: String,
    #[serde(default)]
    next: String,
}

impl Line {
    /// A payload case (the schedule is PingSource's default) rather than a schedule case.
    fn is_payload(&self) -> bool {
        self.schedule == "* * * * *"
    }

    fn context(&self) -> String {
        let data = if self.data.len() > 60 {
            format!("{}... ({} bytes)", &self.data[..20], self.data.len())
        } else {
            self.data.clone()
        };
        format!(
            "schedule {:?} timezone {:?} content type {:?} data {data:?} dataBase64 {:?}",
            self.schedule, self.timezone, self.content_type, self.data_base64
        )
    }

    /// Whether we accept this line otherwise than PingSource, on purpose.
    fn differs_on_purpose(&self) -> Option<bool> {
        let key = if self.is_payload() {
            &self.content_type
        } else {
            &self.schedule
        };
        DIFFERENCES
            .iter()
            .find(|(what, _, _)| what == key)
            .map(|(_, accepted, _)| *accepted)
    }
}

fn lines() -> Vec<Line> {
    let lines: Vec<Line> = VECTORS
        .lines()
        .map(|line| serde_json::from_str(line).expect("a vector line"))
        .collect();
    assert!(lines.len() >= 79, "the vectors are all there");
    lines
}

/// The flag our refusal must name for Go's error, which ends with the field's name.
fn flag_for(go_error: &str) -> &'static str {
    let field = go_error.rsplit(": ").next().unwrap_or_default();
    match field {
        "schedule" => "--schedule",
        "timezone" => "--timezone",
        "data" => "--data",
        "dataBase64" => "--data-base64",
        // "expected exactly one, got both: data, dataBase64"
        "data, dataBase64" => "--data",
        other => panic!("a field the test does not know: {other}"),
    }
}

#[test]
fn every_schedule_is_accepted_or_refused_as_pingsource_does_and_fires_as_it_would() {
    let mut wrong = Vec::new();
    for line in lines().iter().filter(|l| !l.is_payload()) {
        let mut command = heartbeats();
        command.args(["--next", "1", "--from", FROM, "--schedule", &line.schedule]);
        if !line.timezone.is_empty() {
            command.args(["--timezone", &line.timezone]);
        }
        let finished = run(&mut command);
        let accepted = finished.code() == Some(0);
        let expected = line.differs_on_purpose().unwrap_or(line.accepted);
        if accepted != expected {
            wrong.push(format!(
                "{}: accepted {accepted}, {}",
                line.context(),
                finished.stderr
            ));
            continue;
        }
        if !accepted {
            let flag = flag_for(&line.error);
            // A bad zone is named by the flag that gave it: --timezone, or the schedule's prefix.
            let named = finished.stderr.contains(&format!("invalid {flag}"))
                || flag == "--timezone" && finished.stderr.contains("invalid --schedule");
            if !named {
                wrong.push(format!(
                    "{}: not {flag}: {}",
                    line.context(),
                    finished.stderr
                ));
            }
        } else if line.accepted && !finished.stdout.starts_with(&line.next) {
            let first = finished
                .stdout
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            wrong.push(format!("{}: {first}, Go {}", line.context(), line.next));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_payload_is_refused_as_pingsource_does_or_sent_as_its_adapter_sends_it() {
    let mut wrong = Vec::new();
    for line in lines().iter().filter(|l| l.is_payload()) {
        let sink = Sink::start(vec![]);
        let mut command = heartbeats_to(&sink);
        command.args([
            &format!("--data={}", line.data),
            &format!("--data-base64={}", line.data_base64),
            &format!("--content-type={}", line.content_type),
        ]);
        let finished = one_shot(&mut command);
        let accepted = finished.code() == Some(0);
        let expected = line.differs_on_purpose().unwrap_or(line.accepted);
        if accepted != expected {
            wrong.push(format!(
                "{}: accepted {accepted}, {}",
                line.context(),
                finished.stderr
            ));
            continue;
        }
        if !accepted {
            let flag = match line.error.as_str() {
                // One of ours: the data is refused as JSON.
                "" => "--data",
                error => flag_for(error),
            };
            let both = flag == "--data" && finished.stderr.contains("invalid --data-base64");
            if !finished.stderr.contains(flag) && !both {
                wrong.push(format!(
                    "{}: not {flag}: {}",
                    line.context(),
                    finished.stderr
                ));
            }
            assert!(sink.drain().is_empty(), "{}: sent", line.context());
            continue;
        }
        let request = sink.expect();
        let body = STANDARD.decode(&line.sends).expect("base64 in the vectors");
        if request.body != body {
            wrong.push(format!("{}: sent {:?}", line.context(), request.body_str()));
        }
        let content_type = (!body.is_empty() && !line.content_type.is_empty())
            .then_some(line.content_type.as_str());
        let sent_type = request
            .has_header("content-type")
            .then(|| request.header("content-type"));
        if sent_type != content_type {
            wrong.push(format!("{}: Content-Type {sent_type:?}", line.context()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_differences_name_lines_that_exist_and_differ() {
    let lines = lines();
    for (what, _, _) in DIFFERENCES {
        assert!(
            lines.iter().any(|l| l.differs_on_purpose().is_some()
                && (l.schedule == what || l.content_type == what)),
            "{what} is in no line"
        );
    }
    for line in &lines {
        if let Some(ours) = line.differs_on_purpose() {
            assert_ne!(ours, line.accepted, "{}", line.context());
        }
    }
}
