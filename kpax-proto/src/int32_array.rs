//! [`Int32Array`]: the Rust type of every `[]INT32` field (replica lists,
//! ISRs, offline replicas, partition indexes).
//!
//! Such arrays are almost always short (a replication factor), and a
//! Metadata response holds two or three per partition: stored as `Vec<i32>`
//! each one is an allocation on decode and a free on drop, which made the
//! allocator half the cost of decoding metadata. `Int32Array` keeps up to
//! [`Int32Array::INLINE`] elements inline (in the same 24 bytes a `Vec`
//! takes) and spills to the heap only beyond that. It dereferences to
//! `[i32]`, converts from and to `Vec<i32>`, and compares with vectors,
//! arrays and slices, so it reads like the `Vec<i32>` it replaces.

use smallvec::SmallVec;
use std::fmt;
use std::ops::{Deref, DerefMut};

/// An array of INT32 values that keeps up to four inline (no allocation).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Int32Array(SmallVec<[i32; 4]>);

impl Int32Array {
    /// How many elements fit without an allocation.
    pub const INLINE: usize = 4;

    /// An empty array (no allocation).
    pub const fn new() -> Self {
        Int32Array(SmallVec::new_const())
    }

    /// An empty array with room for `n` elements (allocates only past
    /// [`Self::INLINE`]).
    pub fn with_capacity(n: usize) -> Self {
        Int32Array(SmallVec::with_capacity(n))
    }

    /// Appends a value.
    pub fn push(&mut self, v: i32) {
        self.0.push(v);
    }

    /// Removes every element, keeping the storage.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The elements as a slice.
    pub fn as_slice(&self) -> &[i32] {
        &self.0
    }

    /// The elements as a `Vec` (a copy).
    pub fn to_vec(&self) -> Vec<i32> {
        self.0.to_vec()
    }

    /// The elements as a `Vec` (no copy when they had spilled to the heap).
    pub fn into_vec(self) -> Vec<i32> {
        self.0.into_vec()
    }

    /// Whether the elements live on the heap (more than [`Self::INLINE`]).
    pub fn spilled(&self) -> bool {
        self.0.spilled()
    }

    /// `n` big-endian INT32s from `src` (which must hold exactly `4 * n`
    /// bytes), in one pass.
    #[inline]
    pub(crate) fn from_be_bytes(src: &[u8]) -> Self {
        let n = src.len() / 4;
        let mut items: SmallVec<[i32; 4]> = SmallVec::with_capacity(n);
        items.extend(
            src.chunks_exact(4)
                .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]])),
        );
        Int32Array(items)
    }
}

impl Deref for Int32Array {
    type Target = [i32];
    fn deref(&self) -> &[i32] {
        &self.0
    }
}

impl DerefMut for Int32Array {
    fn deref_mut(&mut self) -> &mut [i32] {
        &mut self.0
    }
}

impl AsRef<[i32]> for Int32Array {
    fn as_ref(&self) -> &[i32] {
        &self.0
    }
}

impl std::borrow::Borrow<[i32]> for Int32Array {
    fn borrow(&self) -> &[i32] {
        &self.0
    }
}

impl fmt::Debug for Int32Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl From<Vec<i32>> for Int32Array {
    fn from(v: Vec<i32>) -> Self {
        if v.len() <= Self::INLINE {
            Int32Array(SmallVec::from_slice(&v))
        } else {
            Int32Array(SmallVec::from_vec(v))
        }
    }
}

impl From<&[i32]> for Int32Array {
    fn from(v: &[i32]) -> Self {
        Int32Array(SmallVec::from_slice(v))
    }
}

impl From<&Vec<i32>> for Int32Array {
    fn from(v: &Vec<i32>) -> Self {
        Int32Array(SmallVec::from_slice(v))
    }
}

impl<const N: usize> From<[i32; N]> for Int32Array {
    fn from(v: [i32; N]) -> Self {
        Int32Array(SmallVec::from_slice(&v))
    }
}

impl From<Int32Array> for Vec<i32> {
    fn from(v: Int32Array) -> Self {
        v.into_vec()
    }
}

impl FromIterator<i32> for Int32Array {
    fn from_iter<I: IntoIterator<Item = i32>>(iter: I) -> Self {
        Int32Array(iter.into_iter().collect())
    }
}

impl Extend<i32> for Int32Array {
    fn extend<I: IntoIterator<Item = i32>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl IntoIterator for Int32Array {
    type Item = i32;
    type IntoIter = smallvec::IntoIter<[i32; 4]>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Int32Array {
    type Item = &'a i32;
    type IntoIter = std::slice::Iter<'a, i32>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl PartialEq<Vec<i32>> for Int32Array {
    fn eq(&self, other: &Vec<i32>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<Int32Array> for Vec<i32> {
    fn eq(&self, other: &Int32Array) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<[i32]> for Int32Array {
    fn eq(&self, other: &[i32]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[i32]> for Int32Array {
    fn eq(&self, other: &&[i32]) -> bool {
        self.as_slice() == *other
    }
}

impl<const N: usize> PartialEq<[i32; N]> for Int32Array {
    fn eq(&self, other: &[i32; N]) -> bool {
        self.as_slice() == other.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_as_small_as_a_vec_and_inline_up_to_four() {
        assert_eq!(
            std::mem::size_of::<Int32Array>(),
            std::mem::size_of::<Vec<i32>>()
        );
        let a: Int32Array = [1, 2, 3, 4].into();
        assert!(!a.spilled());
        let mut b = a.clone();
        b.push(5);
        assert!(b.spilled());
        assert_eq!(b, vec![1, 2, 3, 4, 5]);
        assert_eq!(b.into_vec(), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn reads_big_endian_and_converts() {
        let a = Int32Array::from_be_bytes(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(a, [1, -2]);
        assert_eq!(a.iter().sum::<i32>(), -1);
        assert_eq!(format!("{a:?}"), "[1, -2]");
        let v: Vec<i32> = a.clone().into();
        assert_eq!(v, a);
        let c: Int32Array = (0..9).collect();
        assert_eq!(c.len(), 9);
        assert_eq!(&c[..], &(0..9).collect::<Vec<_>>()[..]);
        assert!(Int32Array::from_be_bytes(&[]).is_empty());
    }
}
