//! JSON as the variables Knative writes hold it: an object's members read in document order with
//! repeated keys kept, so that a caller can decide as Go's `encoding/json` would (the last one
//! wins) or refuse a repeat (`K_CE_OVERRIDES` names must be unique).

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The members of a JSON object in order, repeated keys kept, each value still as its text.
pub struct Members(pub Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_their_order_and_repeats() {
        let members: Members = serde_json::from_str(r#"{"b":1,"a":"x","b":[2]}"#).unwrap();
        let got: Vec<(&str, &str)> = members
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.get()))
            .collect();
        assert_eq!(got, [("b", "1"), ("a", "\"x\""), ("b", "[2]")]);
        assert!(serde_json::from_str::<Members>("[1]").is_err());
    }
}
