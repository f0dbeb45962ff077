//! DNS messages (RFC 1035 §4) as a stub resolver needs them: a query for one name and type,
//! with an EDNS(0) OPT record offering 1232-byte answers (RFC 6891), as Go's resolver sends; and
//! what an answer says, checked against the question it must answer. Written here rather than
//! taken from a crate: a query and the A and AAAA records of an answer are all we read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// The UDP payload offered in the OPT record (the DNS flag day 2020 size, as Go).
pub const MAX_UDP_ANSWER: usize = 1232;
const HEADER: usize = 12;
/// Header flags: a response; truncated; authoritative; recursion desired and available.
const FLAG_RESPONSE: u16 = 0x8000;
const FLAG_AUTHORITATIVE: u16 = 0x0400;
const FLAG_TRUNCATED: u16 = 0x0200;
const FLAG_RECURSION_DESIRED: u16 = 0x0100;
const FLAG_RECURSION_AVAILABLE: u16 = 0x0080;
const RCODE_NAME_ERROR: u16 = 3;
const RCODE_SERVER_FAILURE: u16 = 2;

/// A query for `name` (absolute, ending in `.`) of `qtype`, with id `id`; `None` when the name
/// cannot be a DNS name (an empty label inside, a label over 63 bytes, over 255 in all).
pub fn query(id: u16, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(HEADER + name.len() + 2 + 4 + 11);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RECURSION_DESIRED.to_be_bytes());
    // One question, no answers or authority, one additional record (OPT).
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]);
    let labels = name.strip_suffix('.')?;
    for label in labels.split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() - HEADER > 255 {
        return None;
    }
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    // OPT: root name, type, the UDP payload size as its class, no extended flags, no data.
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&(MAX_UDP_ANSWER as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Some(out)
}

/// What an answer to our question says.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Records of the type asked for.
    Addresses(Vec<IpAddr>),
    /// The name does not exist, or has no record of that type: another server will not know
    /// better.
    NoSuchHost,
    /// Cut to fit a UDP datagram: ask again over TCP.
    Truncated,
    /// The server cannot answer now (SERVFAIL, a referral without recursion, a code that makes
    /// no sense for our query): ask the next one. The text says which, for the log.
    TryAnother(&'static str),
}

/// What `message` says, when it answers our question (`id`, `name` of `qtype`); `None` when it
/// does not (another id, another question, not a response, malformed): ignore it, and keep
/// waiting for the answer.
pub fn answer(message: &[u8], id: u16, name: &str, qtype: u16) -> Option<Answer> {
    let word = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(
            message.get(at..at + 2)?.try_into().ok()?,
        ))
    };
    let flags = word(2)?;
    let opcode = (flags >> 11) & 0xf;
    if word(0)? != id || flags & FLAG_RESPONSE == 0 || opcode != 0 || word(4)? != 1 {
        return None;
    }
    let (asked, mut at) = read_name(message, HEADER)?;
    if !asked.eq_ignore_ascii_case(name) || word(at)? != qtype || word(at + 2)? != CLASS_IN {
        return None;
    }
    at += 4;
    if flags & FLAG_TRUNCATED != 0 {
        return Some(Answer::Truncated);
    }
    let rcode = flags & 0xf;
    let (answers, additional) = (word(6)?, word(10)?);
    match rcode {
        0 => {}
        RCODE_NAME_ERROR => return Some(Answer::NoSuchHost),
        RCODE_SERVER_FAILURE => return Some(Answer::TryAnother("server failure")),
        _ => return Some(Answer::TryAnother("server misbehaving")),
    }
    let recursive = flags & (FLAG_AUTHORITATIVE | FLAG_RECURSION_AVAILABLE) != 0;
    if answers == 0 && !recursive && additional == 0 {
        // A referral from a server that does not recurse: libresolv and Go ask the next one.
        return Some(Answer::TryAnother("lame referral"));
    }
    let mut addresses = Vec::new();
    for _ in 0..answers {
        let (_, after_name) = read_name(message, at)?;
        let (kind, class) = (word(after_name)?, word(after_name + 2)?);
        let length = usize::from(word(after_name + 8)?);
        let data = message.get(after_name + 10..after_name + 10 + length)?;
        at = after_name + 10 + length;
        if class != CLASS_IN || kind != qtype {
            continue;
        }
        match (kind, data.len()) {
            (TYPE_A, 4) => addresses.push(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (TYPE_AAAA, 16) => {
                let bytes: [u8; 16] = data.try_into().ok()?;
                addresses.push(IpAddr::V6(Ipv6Addr::from(bytes)));
            }
            _ => return None,
        }
    }
    if addresses.is_empty() {
        return Some(Answer::NoSuchHost);
    }
    Some(Answer::Addresses(addresses))
}

/// The name at `at` in `message`, absolute (`a.b.`), and where what follows it starts.
/// Compression pointers (RFC 1035 §4.1.4) are followed, at most a few dozen of them.
fn read_name(message: &[u8], at: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let (mut position, mut end) = (at, None);
    for _ in 0..64 {
        let length = usize::from(*message.get(position)?);
        match length {
            0 => {
                if name.is_empty() {
                    name.push('.');
                }
                return Some((name, end.unwrap_or(position + 1)));
            }
            0xc0.. => {
                let low = usize::from(*message.get(position + 1)?);
                end.get_or_insert(position + 2);
                position = ((length & 0x3f) << 8) | low;
            }
            1..=63 => {
                let label = message.get(position + 1..position + 1 + length)?;
                name.push_str(std::str::from_utf8(label).ok()?);
                name.push('.');
                position += 1 + length;
            }
            _ => return None,
        }
        if name.len() > 255 {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer to `q` with `flags`, these records (owner written as a pointer to the question
    /// name, type, data), and `extra` additional-section bytes counted as `additional`.
    fn reply(q: &[u8], flags: u16, records: &[(u16, &[u8])]) -> Vec<u8> {
        let question_end = q.len() - 11;
        let mut out = q[..question_end].to_vec();
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        out[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
        out[10..12].copy_from_slice(&[0, 0]);
        for (kind, data) in records {
            out.extend_from_slice(&[0xc0, 12]);
            out.extend_from_slice(&kind.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&300u32.to_be_bytes());
            out.extend_from_slice(&(data.len() as u16).to_be_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    const OK: u16 = FLAG_RESPONSE | FLAG_RECURSION_DESIRED | FLAG_RECURSION_AVAILABLE;

    #[test]
    fn a_query_is_the_name_in_labels_and_an_opt_record() {
        let q = query(0xbeef, "sink.ns.svc.", TYPE_A).unwrap();
        assert_eq!(&q[..12], &[0xbe, 0xef, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&q[12..25], b"\x04sink\x02ns\x03svc\x00");
        assert_eq!(&q[25..29], &[0, 1, 0, 1]);
        assert_eq!(&q[29..], &[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(query(1, "a..b.", TYPE_A), None);
        assert_eq!(query(1, &format!("{}.", "a".repeat(64)), TYPE_A), None);
        let long = format!("{}.", vec!["a".repeat(60); 5].join("."));
        assert_eq!(query(1, &long, TYPE_A), None);
    }

    #[test]
    fn records_of_the_type_asked_are_read_and_the_question_checked() {
        let q = query(7, "sink.", TYPE_A).unwrap();
        let cname: &[u8] = b"\x05other\x00";
        let r = reply(
            &q,
            OK,
            &[
                (5, cname),
                (TYPE_A, &[10, 0, 0, 1]),
                (TYPE_A, &[10, 0, 0, 2]),
            ],
        );
        let expected = vec![IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2])];
        assert_eq!(
            answer(&r, 7, "SINK.", TYPE_A),
            Some(Answer::Addresses(expected))
        );
        // Another id, another name, another type: not an answer to this question.
        assert_eq!(answer(&r, 8, "sink.", TYPE_A), None);
        assert_eq!(answer(&r, 7, "other.", TYPE_A), None);
        assert_eq!(answer(&r, 7, "sink.", TYPE_AAAA), None);
        // Our own query, echoed: not a response.
        assert_eq!(answer(&q, 7, "sink.", TYPE_A), None);
        let q6 = query(9, "sink.", TYPE_AAAA).unwrap();
        let r6 = reply(
            &q6,
            OK,
            &[(
                TYPE_AAAA,
                &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
            )],
        );
        let v6: IpAddr = "fd00::5".parse().unwrap();
        assert_eq!(
            answer(&r6, 9, "sink.", TYPE_AAAA),
            Some(Answer::Addresses(vec![v6]))
        );
    }

    #[test]
    fn codes_and_flags_say_whether_to_ask_another_server() {
        let q = query(1, "x.", TYPE_A).unwrap();
        let cases = [
            (OK | RCODE_NAME_ERROR, Answer::NoSuchHost),
            (OK, Answer::NoSuchHost),
            (OK | FLAG_TRUNCATED, Answer::Truncated),
            (
                OK | RCODE_SERVER_FAILURE,
                Answer::TryAnother("server failure"),
            ),
            (OK | 5, Answer::TryAnother("server misbehaving")),
            (FLAG_RESPONSE, Answer::TryAnother("lame referral")),
        ];
        for (flags, expected) in cases {
            assert_eq!(
                answer(&reply(&q, flags, &[]), 1, "x.", TYPE_A),
                Some(expected)
            );
        }
    }

    #[test]
    fn malformed_answers_are_not_taken() {
        let q = query(1, "x.", TYPE_A).unwrap();
        let r = reply(&q, OK, &[(TYPE_A, &[10, 0, 0, 1])]);
        for cut in 0..r.len() {
            assert_eq!(answer(&r[..cut], 1, "x.", TYPE_A), None, "cut at {cut}");
        }
        // A pointer loop in the question name.
        let mut looped = r.clone();
        looped[12..14].copy_from_slice(&[0xc0, 12]);
        assert_eq!(answer(&looped, 1, "x.", TYPE_A), None);
        // An A record that is not four bytes.
        let odd = reply(&q, OK, &[(TYPE_A, &[10, 0, 0])]);
        assert_eq!(answer(&odd, 1, "x.", TYPE_A), None);
    }
}
