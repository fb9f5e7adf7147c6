//! Packing several small non-negative integers into one plaintext.
//!
//! Slot `i` occupies bits `[i·slot_bits, (i+1)·slot_bits)` of the
//! plaintext, with `slot_bits = value_bits + headroom_bits` and
//! `headroom_bits = ⌈log2(max_additions)⌉`: the sum of up to
//! `max_additions` packed plaintexts (each slot `< 2^value_bits`) cannot
//! carry from one slot into the next. Signed inputs must be offset-shifted
//! by the caller (e.g. `g + 2^(value_bits-1)`), and the offset times the
//! number of summands subtracted after unpacking.
//!
//! Packed plaintexts are non-negative, so after decryption a negative value
//! or bits beyond the layout mean the homomorphic computation overflowed
//! (or was not a plain sum); [`Packer::unpack`] reports that as
//! [`HeError::UnpackOverflow`].

use crate::error::HeError;
use crate::plaintext::Plaintext;

/// Slot layout for packing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packer {
    value_bits: u32,
    headroom_bits: u32,
    slots: u32,
    max_additions: u64,
}

impl Packer {
    /// Layout for `slots` values of `value_bits` bits each that may be
    /// summed over up to `max_additions` plaintexts (≥ 1). Slots are at
    /// most 128 bits wide.
    pub fn new(value_bits: u32, max_additions: u64, slots: u32) -> Result<Self, HeError> {
        if value_bits == 0 {
            return Err(HeError::InvalidParameter {
                name: "value_bits",
                reason: "must be positive",
            });
        }
        if max_additions == 0 {
            return Err(HeError::InvalidParameter {
                name: "max_additions",
                reason: "must be at least 1",
            });
        }
        if slots == 0 {
            return Err(HeError::InvalidParameter {
                name: "slots",
                reason: "must be positive",
            });
        }
        // ceil(log2(max_additions))
        let headroom_bits = 64 - (max_additions - 1).leading_zeros();
        if value_bits + headroom_bits > 128 {
            return Err(HeError::InvalidParameter {
                name: "value_bits",
                reason: "slot (value + headroom) wider than 128 bits",
            });
        }
        Ok(Packer {
            value_bits,
            headroom_bits,
            slots,
            max_additions,
        })
    }

    /// Bits per value.
    pub fn value_bits(&self) -> u32 {
        self.value_bits
    }

    /// Headroom bits per slot.
    pub fn headroom_bits(&self) -> u32 {
        self.headroom_bits
    }

    /// Width of one slot.
    pub fn slot_bits(&self) -> u32 {
        self.value_bits + self.headroom_bits
    }

    /// Number of slots.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Maximum number of summands.
    pub fn max_additions(&self) -> u64 {
        self.max_additions
    }

    /// Total bits used by the layout.
    pub fn total_bits(&self) -> u32 {
        self.slot_bits().saturating_mul(self.slots)
    }

    /// Checks that the layout fits a scheme's plaintext capacity
    /// (see [`crate::HePublicKey::plaintext_capacity_bits`]).
    pub fn check_capacity(&self, capacity_bits: u32) -> Result<(), HeError> {
        if self.total_bits() > capacity_bits {
            return Err(HeError::PackCapacity {
                needed_bits: self.total_bits(),
                capacity_bits,
            });
        }
        Ok(())
    }

    /// Packs up to `slots` values (slot 0 = least significant). Unused slots
    /// are zero.
    pub fn pack(&self, values: &[u128]) -> Result<Plaintext, HeError> {
        if values.len() > self.slots as usize {
            return Err(HeError::TooManyValues {
                count: values.len(),
                slots: self.slots,
            });
        }
        let total = self.total_bits() as usize;
        let mut le = vec![0u8; total.div_ceil(8)];
        let sb = self.slot_bits() as usize;
        for (i, &v) in values.iter().enumerate() {
            let bits = 128 - v.leading_zeros();
            if bits > self.value_bits {
                return Err(HeError::PackOverflow {
                    slot: i,
                    bits,
                    max_bits: self.value_bits,
                });
            }
            for b in 0..bits as usize {
                if (v >> b) & 1 == 1 {
                    let pos = i * sb + b;
                    if let Some(byte) = le.get_mut(pos / 8) {
                        *byte |= 1 << (pos % 8);
                    }
                }
            }
        }
        le.reverse();
        Ok(Plaintext::from_sign_magnitude_be(false, &le))
    }

    /// Unpacks all slots. Errors if the plaintext is negative or has bits
    /// beyond the layout (overflow).
    pub fn unpack(&self, p: &Plaintext) -> Result<Vec<u128>, HeError> {
        if p.is_negative() {
            return Err(HeError::UnpackOverflow {
                slot: None,
                reason: "packed plaintext decrypted to a negative value",
            });
        }
        if p.bits() > self.total_bits() {
            return Err(HeError::UnpackOverflow {
                slot: None,
                reason: "packed plaintext exceeds the layout width",
            });
        }
        let be = p.magnitude_be();
        let bit_at = |pos: usize| -> bool {
            let byte_from_end = pos / 8;
            if byte_from_end >= be.len() {
                return false;
            }
            be.get(be.len() - 1 - byte_from_end)
                .is_some_and(|b| (b >> (pos % 8)) & 1 == 1)
        };
        let sb = self.slot_bits() as usize;
        Ok((0..self.slots as usize)
            .map(|i| {
                let mut v = 0u128;
                for b in 0..sb {
                    if bit_at(i * sb + b) {
                        v |= 1u128 << b;
                    }
                }
                v
            })
            .collect())
    }

    /// Like [`Packer::unpack`], and additionally checks that the plaintext
    /// is a sum of `summands` packed values: `summands <= max_additions`
    /// and every slot is at most `summands · (2^value_bits - 1)`.
    pub fn unpack_sum(&self, p: &Plaintext, summands: u64) -> Result<Vec<u128>, HeError> {
        if summands == 0 || summands > self.max_additions {
            return Err(HeError::InvalidParameter {
                name: "summands",
                reason: "must be in 1..=max_additions",
            });
        }
        let vals = self.unpack(p)?;
        let max_value = u128::MAX >> (128 - self.value_bits);
        let bound = max_value.saturating_mul(u128::from(summands));
        for (i, &v) in vals.iter().enumerate() {
            if v > bound {
                return Err(HeError::UnpackOverflow {
                    slot: Some(i),
                    reason: "slot exceeds summands * max value",
                });
            }
        }
        Ok(vals)
    }
}
