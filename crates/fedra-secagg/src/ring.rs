//! The rings `Z_{2^32}` and `Z_{2^64}` in which inputs are masked and summed.
//!
//! All arithmetic wraps: masking, summing and unmasking are exact in the
//! ring, so the protocol output is bit-for-bit the wrapping sum of the
//! survivors' inputs. Whether that wrapping sum is the *integer* sum is the
//! business of the quantizer (see [`crate::quant`]).

use std::fmt;

use crate::error::{Error, Result};

/// Which ring inputs live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ring {
    /// `Z_{2^32}`, stored as `u32`.
    U32,
    /// `Z_{2^64}`, stored as `u64`.
    U64,
}

impl Ring {
    /// `k` in `Z_{2^k}`.
    pub fn bits(self) -> u32 {
        match self {
            Self::U32 => 32,
            Self::U64 => 64,
        }
    }

    /// Bytes per element.
    pub fn word_bytes(self) -> usize {
        match self {
            Self::U32 => 4,
            Self::U64 => 8,
        }
    }

    pub(crate) fn tag(self) -> u8 {
        match self {
            Self::U32 => 4,
            Self::U64 => 8,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            4 => Some(Self::U32),
            8 => Some(Self::U64),
            _ => None,
        }
    }
}

impl fmt::Display for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Z_2^{}", self.bits())
    }
}

/// A vector over [`Ring`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingVec {
    /// Elements of `Z_{2^32}`.
    U32(Vec<u32>),
    /// Elements of `Z_{2^64}`.
    U64(Vec<u64>),
}

impl RingVec {
    /// The zero vector.
    pub fn zeros(ring: Ring, dim: usize) -> Self {
        match ring {
            Ring::U32 => Self::U32(vec![0; dim]),
            Ring::U64 => Self::U64(vec![0; dim]),
        }
    }

    /// The ring of the elements.
    pub fn ring(&self) -> Ring {
        match self {
            Self::U32(_) => Ring::U32,
            Self::U64(_) => Ring::U64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Self::U32(v) => v.len(),
            Self::U64(v) => v.len(),
        }
    }

    /// Whether the vector has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` widened to `u64`, if in range.
    pub fn get(&self, i: usize) -> Option<u64> {
        match self {
            Self::U32(v) => v.get(i).map(|&x| u64::from(x)),
            Self::U64(v) => v.get(i).copied(),
        }
    }

    /// Checks ring and dimension.
    ///
    /// # Errors
    /// [`Error::RingMismatch`] or [`Error::DimensionMismatch`].
    pub fn check_shape(&self, ring: Ring, dim: usize) -> Result<()> {
        if self.ring() != ring {
            return Err(Error::RingMismatch {
                expected: ring,
                got: self.ring(),
            });
        }
        if self.len() != dim {
            return Err(Error::DimensionMismatch {
                expected: dim,
                got: self.len(),
            });
        }
        Ok(())
    }

    /// `self += other` in the ring.
    ///
    /// # Errors
    /// If the shapes differ.
    pub fn wrapping_add_assign(&mut self, other: &Self) -> Result<()> {
        other.check_shape(self.ring(), self.len())?;
        match (self, other) {
            (Self::U32(a), Self::U32(b)) => a
                .iter_mut()
                .zip(b)
                .for_each(|(x, y)| *x = x.wrapping_add(*y)),
            (Self::U64(a), Self::U64(b)) => a
                .iter_mut()
                .zip(b)
                .for_each(|(x, y)| *x = x.wrapping_add(*y)),
            _ => {}
        }
        Ok(())
    }

    /// The wrapping sum of `vectors`, all of shape (`ring`, `dim`).
    ///
    /// # Errors
    /// If any shape differs.
    pub fn wrapping_sum<'a>(
        ring: Ring,
        dim: usize,
        vectors: impl IntoIterator<Item = &'a Self>,
    ) -> Result<Self> {
        let mut acc = Self::zeros(ring, dim);
        for v in vectors {
            acc.wrapping_add_assign(v)?;
        }
        Ok(acc)
    }
}
