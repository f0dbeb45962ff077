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

/// What an answer to our question says, read as Go's resolver reads it (`checkHeader`,
/// `skipToAnswer`, then the records).
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// This server's word on the question: the records of the type asked for, in order, and
    /// whether the answer broke off after them (Go keeps what it could read, and asks no other
    /// server; with nothing read, the question fails).
    Records {
        addresses: Vec<IpAddr>,
        broken: bool,
    },
    /// The name does not exist, or has no record of that type: another server will not know
    /// better.
    NoSuchHost,
    /// Cut to fit a UDP datagram: ask again over TCP.
    Truncated,
    /// The server cannot answer now (SERVFAIL, a referral without recursion, a code that makes
    /// no sense for our query, an answer that cannot be read): ask the next one. The text says
    /// which, for the log.
    TryAnother(&'static str),
}

/// Reads `message` at the positions a parser walks.
struct Reader<'a> {
    message: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn word(&self, at: usize) -> Option<u16> {
        Some(u16::from_be_bytes(
            self.message.get(at..at + 2)?.try_into().ok()?,
        ))
    }

    /// A resource record's header at the current position: its type, and where its data is.
    /// `None` when it cannot be read.
    fn record(&mut self) -> Option<(u16, std::ops::Range<usize>)> {
        let (_, after_name) = read_name(self.message, self.at)?;
        let kind = self.word(after_name)?;
        let length = usize::from(self.word(after_name + 8)?);
        let start = after_name + 10;
        self.message.get(start..start + length)?;
        self.at = start + length;
        Some((kind, start..start + length))
    }
}

/// What `message` says, when it answers our question (`id`, `name` of `qtype`): a response with
/// that id and that question (its name compared without case). `None` when it does not (another
/// id or question, not a response, no question that can be read): Go ignores it, as a forgery
/// may, and keeps waiting for the answer. Once it does answer, what cannot be read in it is
/// this server failing, or (after records of the type asked for) the end of the answer. Over
/// TCP a truncated answer is read as it is, as glibc and Go do.
pub fn answer(message: &[u8], id: u16, name: &str, qtype: u16, over_tcp: bool) -> Option<Answer> {
    let mut r = Reader { message, at: 0 };
    let flags = r.word(2)?;
    if r.word(0)? != id || flags & FLAG_RESPONSE == 0 || r.word(4)? == 0 {
        return None;
    }
    let (asked, after) = read_name(message, HEADER)?;
    if !asked.eq_ignore_ascii_case(name.as_bytes()) || r.word(after)? != qtype {
        return None;
    }
    if r.word(after + 2)? != CLASS_IN {
        return None;
    }
    if r.word(4)? != 1 {
        return Some(Answer::TryAnother("invalid DNS response"));
    }
    r.at = after + 4;
    if flags & FLAG_TRUNCATED != 0 && !over_tcp {
        return Some(Answer::Truncated);
    }
    let (answers, additional) = (r.word(6)?, r.word(10)?);
    let rcode = extended_rcode(message, &r, flags & 0xf)?;
    if rcode == RCODE_NAME_ERROR {
        return Some(Answer::NoSuchHost);
    }
    let unreadable = Answer::TryAnother("cannot unmarshal DNS message");
    let records_start = r.at;
    if answers > 0 && r.record().is_none() {
        return Some(unreadable);
    }
    r.at = records_start;
    let recursive = flags & (FLAG_AUTHORITATIVE | FLAG_RECURSION_AVAILABLE) != 0;
    if rcode == 0 && answers == 0 && !recursive && additional == 0 {
        // A referral from a server that does not recurse: libresolv and Go ask the next one.
        return Some(Answer::TryAnother("lame referral"));
    }
    match rcode {
        0 => {}
        RCODE_SERVER_FAILURE => return Some(Answer::TryAnother("server failure")),
        _ => return Some(Answer::TryAnother("server misbehaving")),
    }
    // Go's skipToAnswer, then its loop over the records: those of the type asked for are
    // taken in order, others passed over; what cannot be read ends the answer there.
    let mut addresses = Vec::new();
    let mut seen = false;
    for _ in 0..answers {
        let Some((kind, data)) = r.record() else {
            return Some(if seen {
                Answer::Records {
                    addresses,
                    broken: true,
                }
            } else {
                unreadable
            });
        };
        if kind != qtype {
            continue;
        }
        seen = true;
        match (qtype, &message[data]) {
            (TYPE_A, &[a, b, c, d]) => addresses.push(IpAddr::V4(Ipv4Addr::new(a, b, c, d))),
            (TYPE_AAAA, bytes) if bytes.len() == 16 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(bytes);
                addresses.push(IpAddr::V6(Ipv6Addr::from(octets)));
            }
            _ => {
                return Some(Answer::Records {
                    addresses,
                    broken: true,
                });
            }
        }
    }
    if !seen {
        return Some(Answer::NoSuchHost);
    }
    Some(Answer::Records {
        addresses,
        broken: false,
    })
}

/// The response code, with the high bits an EDNS(0) OPT record in the additional section holds
/// (RFC 6891 §6.1.3), as Go's `extractExtendedRCode`; `None` when the sections before it cannot
/// be walked (the answer is then read without it).
fn extended_rcode(message: &[u8], r: &Reader, rcode: u16) -> Option<u16> {
    let mut walk = Reader { message, at: r.at };
    let (answers, authorities, additional) = (r.word(6)?, r.word(8)?, r.word(10)?);
    for _ in 0..answers + authorities {
        if walk.record().is_none() {
            return Some(rcode);
        }
    }
    for _ in 0..additional {
        let before = walk.at;
        let Some((kind, _)) = walk.record() else {
            return Some(rcode);
        };
        if kind == TYPE_OPT {
            // The OPT record's TTL: extended RCODE (8 bits), version, flags.
            let (_, after_name) = read_name(message, before)?;
            let high = u16::from(*message.get(after_name + 4)?);
            return Some(high << 4 | rcode);
        }
    }
    Some(rcode)
}

/// The most compression pointers followed in one name, as Go's DNS parser allows.
const MAX_POINTERS: usize = 10;

/// The name at `at` in `message`, absolute (`a.b.`), as bytes, and where what follows it starts.
/// Compression pointers (RFC 1035 §4.1.4) are followed, at most [`MAX_POINTERS`]; a label of a
/// reserved type (over 63 bytes), a name over 255 bytes or one that runs off the end is `None`.
fn read_name(message: &[u8], at: usize) -> Option<(Vec<u8>, usize)> {
    let mut name = Vec::new();
    let (mut position, mut end, mut pointers) = (at, None, 0);
    loop {
        let length = usize::from(*message.get(position)?);
        match length {
            0 => {
                if name.is_empty() {
                    name.push(b'.');
                }
                return Some((name, end.unwrap_or(position + 1)));
            }
            0xc0.. => {
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return None;
                }
                let low = usize::from(*message.get(position + 1)?);
                end.get_or_insert(position + 2);
                position = ((length & 0x3f) << 8) | low;
            }
            1..=63 => {
                let label = message.get(position + 1..position + 1 + length)?;
                name.extend_from_slice(label);
                name.push(b'.');
                position += 1 + length;
            }
            _ => return None,
        }
        if name.len() > 255 {
            return None;
        }
    }
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
            answer(&r, 7, "SINK.", TYPE_A, false),
            Some(Answer::Records {
                addresses: expected,
                broken: false
            })
        );
        // Another id, another name, another type: not an answer to this question.
        assert_eq!(answer(&r, 8, "sink.", TYPE_A, false), None);
        assert_eq!(answer(&r, 7, "other.", TYPE_A, false), None);
        assert_eq!(answer(&r, 7, "sink.", TYPE_AAAA, false), None);
        // Our own query, echoed: not a response.
        assert_eq!(answer(&q, 7, "sink.", TYPE_A, false), None);
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
            answer(&r6, 9, "sink.", TYPE_AAAA, false),
            Some(Answer::Records {
                addresses: vec![v6],
                broken: false
            })
        );
    }

    #[test]
    fn codes_and_flags_say_whether_to_ask_another_server() {
        let q = query(1, "x.", TYPE_A).unwrap();
        let cases = [
            (OK | RCODE_NAME_ERROR, Answer::NoSuchHost),
            (FLAG_RESPONSE | RCODE_NAME_ERROR, Answer::NoSuchHost),
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
                answer(&reply(&q, flags, &[]), 1, "x.", TYPE_A, false),
                Some(expected)
            );
        }
    }

    #[test]
    fn what_does_not_answer_our_question_is_ignored() {
        let q = query(1, "x.", TYPE_A).unwrap();
        let r = reply(&q, OK, &[(TYPE_A, &[10, 0, 0, 1])]);
        // Cut before the question ends: not (yet) an answer to it.
        for cut in 0..q.len() - 11 {
            assert_eq!(
                answer(&r[..cut], 1, "x.", TYPE_A, false),
                None,
                "cut at {cut}"
            );
        }
        // A pointer loop in the question name.
        let mut looped = r.clone();
        looped[12..14].copy_from_slice(&[0xc0, 12]);
        assert_eq!(answer(&looped, 1, "x.", TYPE_A, false), None);
    }

    /// Go's reading of an answer that matches the question but breaks further on: before any
    /// record of the type asked for, the server failed (ask the next one); after some, they
    /// are its word, and the rest is passed over.
    #[test]
    fn an_answer_that_breaks_off_is_a_failure_or_the_records_read_before() {
        let q = query(1, "x.", TYPE_A).unwrap();
        let unreadable = Some(Answer::TryAnother("cannot unmarshal DNS message"));
        // More answers counted than present, none readable: the next server.
        let mut short = reply(&q, OK, &[]);
        short[6..8].copy_from_slice(&[0, 2]);
        assert_eq!(answer(&short, 1, "x.", TYPE_A, false), unreadable);
        // Two A records, then a third counted and missing: the two, broken off.
        let mut two = reply(
            &q,
            OK,
            &[(TYPE_A, &[10, 0, 0, 1]), (TYPE_A, &[10, 0, 0, 2])],
        );
        two[6..8].copy_from_slice(&[0, 3]);
        let expected = Answer::Records {
            addresses: vec![IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2])],
            broken: true,
        };
        assert_eq!(answer(&two, 1, "x.", TYPE_A, false), Some(expected));
        // A compression loop in the first record's owner name: the next server.
        let mut looped = reply(&q, OK, &[(TYPE_A, &[10, 0, 0, 1])]);
        let owner = q.len() - 11;
        looped[owner..owner + 2].copy_from_slice(&[0xc0, owner as u8]);
        assert_eq!(answer(&looped, 1, "x.", TYPE_A, false), unreadable);
        // An A record that is not four bytes: nothing read, broken.
        let odd = reply(&q, OK, &[(TYPE_A, &[10, 0, 0])]);
        assert_eq!(
            answer(&odd, 1, "x.", TYPE_A, false),
            Some(Answer::Records {
                addresses: vec![],
                broken: true
            })
        );
        // Truncated over UDP is to be asked over TCP; over TCP it is read as it is.
        let cut = reply(&q, OK | FLAG_TRUNCATED, &[(TYPE_A, &[10, 0, 0, 1])]);
        assert_eq!(
            answer(&cut, 1, "x.", TYPE_A, false),
            Some(Answer::Truncated)
        );
        assert!(matches!(
            answer(&cut, 1, "x.", TYPE_A, true),
            Some(Answer::Records { .. })
        ));
    }

    #[test]
    fn an_extended_rcode_in_the_opt_record_is_a_server_misbehaving() {
        let q = query(1, "x.", TYPE_A).unwrap();
        let mut r = reply(&q, OK, &[(TYPE_A, &[10, 0, 0, 1])]);
        r[10..12].copy_from_slice(&[0, 1]);
        // OPT: root, type 41, payload size, extended rcode 1 (BADVERS with the header's 0).
        r.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(
            answer(&r, 1, "x.", TYPE_A, false),
            Some(Answer::TryAnother("server misbehaving"))
        );
    }
}
