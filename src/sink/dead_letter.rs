//! The dead-letter sink (`--dead-letter-sink`): an event whose attempts ran out goes there, with
//! the extensions Knative's dispatcher adds (`knativeerrordest`, `knativeerrorcode`,
//! `knativeerrordata`), set as it sets them (pkg/kncloudevents: `dispatchExecutionInfoTransformers`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The most characters `knativeerrordata` holds (Knative's `KnativeErrorDataExtensionMaxLength`).
pub const MAX_ERROR_DATA: usize = 1024;
/// The most bytes of an answer's body kept for it: as many as 1,024 base64 characters hold.
pub const MAX_ANSWER_KEPT: usize = MAX_ERROR_DATA / 4 * 3;
/// Knative's code when no answer came: it reports a failed dispatch as a 500.
const NO_ANSWER_CODE: u16 = 500;

/// The last answer of a failed delivery: its status and the start of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The three extensions, as `ce-*` headers, for an event that failed at `destination` (the URL
/// as sent, never with its credentials) with `answer`, or with no answer because of `reason`:
/// Knative then says code 500 and `dispatch error: <reason>` as the data.
pub fn extensions(
    destination: &str,
    answer: Option<&Answer>,
    reason: &str,
) -> [(&'static str, String); 3] {
    let (code, data) = match answer {
        Some(answer) => (
            answer.status,
            STANDARD.encode(&answer.body[..answer.body.len().min(MAX_ANSWER_KEPT)]),
        ),
        None => (
            NO_ANSWER_CODE,
            STANDARD.encode(format!("dispatch error: {reason}")),
        ),
    };
    let mut data = data;
    data.truncate(MAX_ERROR_DATA);
    [
        ("ce-knativeerrordest", destination.to_owned()),
        ("ce-knativeerrorcode", code.to_string()),
        ("ce-knativeerrordata", data),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extensions_are_knatives_with_the_data_bounded() {
        let answer = Answer {
            status: 503,
            body: b"busy".to_vec(),
        };
        let [dest, code, data] = extensions("http://sink.test/e", Some(&answer), "HTTP 503");
        assert_eq!(
            dest,
            ("ce-knativeerrordest", "http://sink.test/e".to_owned())
        );
        assert_eq!(code, ("ce-knativeerrorcode", "503".to_owned()));
        assert_eq!(data, ("ce-knativeerrordata", "YnVzeQ==".to_owned()));
        let long = Answer {
            status: 500,
            body: vec![b'x'; 5000],
        };
        let [_, _, (_, data)] = extensions("http://s/", Some(&long), "");
        assert_eq!(data.len(), MAX_ERROR_DATA);
        assert_eq!(STANDARD.decode(&data).unwrap(), vec![b'x'; MAX_ANSWER_KEPT]);
        let [_, (_, code), (_, data)] = extensions("http://s/", None, "connection refused");
        assert_eq!(code, "500");
        assert_eq!(
            STANDARD.decode(data).unwrap(),
            b"dispatch error: connection refused"
        );
    }
}
