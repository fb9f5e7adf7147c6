//! `serde` support (feature `serde`): public keys serialise as their
//! validated byte encoding. Ciphertexts need the public key to be validated,
//! so they serialise as bytes but are deserialised with
//! [`crate::HePublicKey::ciphertext_from_bytes`].

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{HePublicKey, OuCiphertext, OuPublicKey, PaillierCiphertext, PaillierPublicKey};

macro_rules! pk_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.to_bytes())
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let bytes: Vec<u8> = serde::de::Deserialize::deserialize(d)?;
                <$t>::from_bytes(&bytes).map_err(D::Error::custom)
            }
        }
    };
}

pk_serde!(PaillierPublicKey);
pk_serde!(OuPublicKey);

impl Serialize for PaillierCiphertext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_bytes())
    }
}

impl Serialize for OuCiphertext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_bytes())
    }
}
