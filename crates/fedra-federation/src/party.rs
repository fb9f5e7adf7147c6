//! Party names and message tags.

use std::fmt;
use std::sync::Arc;

use crate::FedError;

/// The name of a party in a job, e.g. `guest` or `host-1`.
///
/// Party ids double as the DNS name in the party's TLS certificate (that is how a
/// peer's identity is bound to its certificate), so they follow DNS label rules:
/// 1–63 characters of `a-z`, `0-9` and `-`, starting with a letter and not ending
/// with `-`. (TLS refuses a name that could be read as a number, such as `123` or
/// `0x1f`; starting with a letter rules those out with one simple rule.)
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartyId(Arc<str>);

impl serde::Serialize for PartyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl PartyId {
    /// Validates and wraps a party name.
    pub fn new(name: &str) -> Result<Self, FedError> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && !name.ends_with('-');
        if valid {
            Ok(Self(Arc::from(name)))
        } else {
            Err(FedError::InvalidPartyId {
                name: name.chars().take(80).collect(),
            })
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for PartyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PartyId::new(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl AsRef<str> for PartyId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The address of a message within a job: task, round and message name.
///
/// Two messages collide only if all three are equal; the job id is carried by the
/// channel itself. Rounds are per task (a task with no rounds uses 0).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tag {
    task: Arc<str>,
    round: u64,
    name: Arc<str>,
}

impl Tag {
    /// Creates a tag.
    pub fn new(task: impl AsRef<str>, round: u64, name: impl AsRef<str>) -> Self {
        Self {
            task: Arc::from(task.as_ref()),
            round,
            name: Arc::from(name.as_ref()),
        }
    }

    /// The task name (unique within a job).
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The round within the task.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The message name within the round.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same task and name in another round.
    pub fn with_round(&self, round: u64) -> Self {
        Self {
            task: self.task.clone(),
            round,
            name: self.name.clone(),
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.task, self.round, self.name)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn party_ids_follow_dns_label_rules() {
        for ok in ["guest", "host-1", "a", "b2b", "x0", &"x".repeat(63)] {
            assert!(PartyId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Guest",
            "-a",
            "a-",
            "a_b",
            "a.b",
            &"x".repeat(64),
            "gäst",
            // Names TLS would read as numbers, so no certificate could carry them.
            "0",
            "123",
            "0x1f",
            "1st",
        ] {
            assert!(PartyId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_differ_by_every_component() {
        let t = Tag::new("psi", 1, "blinded");
        assert_ne!(t, Tag::new("psi2", 1, "blinded"));
        assert_ne!(t, t.with_round(2));
        assert_ne!(t, Tag::new("psi", 1, "double"));
        assert_eq!(t.to_string(), "psi/1/blinded");
    }
}
