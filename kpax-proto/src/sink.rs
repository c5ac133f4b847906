//! Where encoders write: [`Sink`], and [`FrameBuf`], the sink that shares
//! large RECORDS values instead of copying them.
//!
//! A Produce request (or a Fetch response, for a broker) is mostly record
//! batches the caller already holds as `Bytes`. Copying them into the
//! request buffer is what encoding such a message costs; a `FrameBuf` keeps
//! a reference to each large batch and the bytes around it, and hands the
//! whole out as slices for one vectored write.

use bytes::{Bytes, BytesMut};
use std::io::IoSlice;

/// A destination for encoded bytes: a buffer, plus a way to append a
/// RECORDS value (after its length prefix).
pub trait Sink {
    /// The buffer encoders append to.
    fn bytes_mut(&mut self) -> &mut BytesMut;

    /// Appends the bytes of a RECORDS value.
    fn put_records_value(&mut self, records: &Bytes);
}

impl Sink for BytesMut {
    #[inline(always)]
    fn bytes_mut(&mut self) -> &mut BytesMut {
        self
    }

    #[inline]
    fn put_records_value(&mut self, records: &Bytes) {
        self.extend_from_slice(records);
    }
}

/// An encoding whose large RECORDS values are shared with the caller, not
/// copied: the bytes the encoder wrote, with each shared value spliced in
/// where it was written.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use kpax_proto::wire::{FrameBuf, Sink};
///
/// let records = Bytes::from(vec![7u8; 4096]);
/// let mut frame = FrameBuf::new();
/// frame.bytes_mut().extend_from_slice(b"head");
/// frame.put_records_value(&records);
/// frame.bytes_mut().extend_from_slice(b"tail");
/// assert_eq!(frame.len(), 4 + 4096 + 4);
/// assert_eq!(frame.shared_count(), 1);
/// let slices = frame.io_slices();
/// assert_eq!(slices.len(), 3);
/// assert_eq!(&slices[1][..], &records[..]);
/// assert_eq!(frame.to_contiguous().len(), frame.len());
/// ```
#[derive(Debug, Clone, Default)]
pub struct FrameBuf {
    head: BytesMut,
    /// Each shared value and the length of `head` when it was appended.
    shared: Vec<(usize, Bytes)>,
    shared_len: usize,
}

impl FrameBuf {
    /// RECORDS values shorter than this are copied: a slice of its own in
    /// a vectored write costs more than copying a small value.
    pub const SHARE_MIN: usize = 1024;

    /// An empty frame.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty frame whose own bytes have room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        FrameBuf {
            head: BytesMut::with_capacity(n),
            shared: Vec::new(),
            shared_len: 0,
        }
    }

    /// Empties the frame, keeping its buffer's storage (and dropping the
    /// shared values).
    pub fn clear(&mut self) {
        self.head.clear();
        self.shared.clear();
        self.shared_len = 0;
    }

    /// The encoded length: written and shared bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.shared_len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes written by the encoder itself (without the shared values).
    pub fn written(&self) -> &[u8] {
        &self.head
    }

    /// How many values are shared rather than copied.
    pub fn shared_count(&self) -> usize {
        self.shared.len()
    }

    /// Overwrites four bytes of the encoder's own output at `at` with `v`
    /// (big-endian): how a frame's size prefix is filled in once the frame
    /// is complete. `at` counts from the start of the frame and must lie
    /// before the first shared value.
    ///
    /// # Panics
    /// When the four bytes are not all written before the first shared
    /// value (a caller's bug, not bad input).
    pub fn set_i32_at(&mut self, at: usize, v: i32) {
        let limit = self.shared.first().map_or(self.head.len(), |(p, _)| *p);
        assert!(at + 4 <= limit, "set_i32_at({at}) past the written prefix");
        self.head[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// The frame as slices in order, for one vectored write.
    pub fn io_slices(&self) -> Vec<IoSlice<'_>> {
        let mut out = Vec::with_capacity(2 * self.shared.len() + 1);
        self.push_io_slices(&mut out);
        out
    }

    /// Appends the frame's slices, in order, to `out` (empty ones left out).
    pub fn push_io_slices<'a>(&'a self, out: &mut Vec<IoSlice<'a>>) {
        let mut from = 0;
        for (at, bytes) in &self.shared {
            if *at > from {
                out.push(IoSlice::new(&self.head[from..*at]));
            }
            out.push(IoSlice::new(bytes));
            from = *at;
        }
        if self.head.len() > from {
            out.push(IoSlice::new(&self.head[from..]));
        }
    }

    /// How many slices [`Self::push_io_slices`] appends, at most.
    pub fn slice_count(&self) -> usize {
        2 * self.shared.len() + 1
    }

    /// The frame copied into one buffer.
    pub fn to_contiguous(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(self.len());
        for s in self.io_slices() {
            out.extend_from_slice(&s);
        }
        out
    }
}

impl Sink for FrameBuf {
    #[inline(always)]
    fn bytes_mut(&mut self) -> &mut BytesMut {
        &mut self.head
    }

    fn put_records_value(&mut self, records: &Bytes) {
        if records.len() < Self::SHARE_MIN {
            self.head.extend_from_slice(records);
        } else {
            self.shared_len += records.len();
            self.shared.push((self.head.len(), records.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_copied_and_large_ones_shared_in_order() {
        let big = Bytes::from(vec![1u8; FrameBuf::SHARE_MIN]);
        let small = Bytes::from_static(b"xyz");
        let mut f = FrameBuf::with_capacity(16);
        f.bytes_mut().extend_from_slice(&[0, 0, 0, 0]);
        f.put_records_value(&big);
        f.put_records_value(&big);
        f.bytes_mut().extend_from_slice(b"-");
        f.put_records_value(&small);
        f.set_i32_at(0, 42);
        assert_eq!(f.shared_count(), 2);
        assert_eq!(f.len(), 4 + 2 * big.len() + 1 + 3);
        // Two shared values back to back: no empty slice between them.
        let slices = f.io_slices();
        assert_eq!(slices.len(), 4);
        let mut want = vec![0, 0, 0, 42];
        want.extend_from_slice(&big);
        want.extend_from_slice(&big);
        want.extend_from_slice(b"-xyz");
        assert_eq!(&f.to_contiguous()[..], &want[..]);
        // The shared value is the caller's memory, not a copy.
        assert_eq!(slices[1].as_ptr(), big.as_ptr());
    }

    #[test]
    #[should_panic(expected = "past the written prefix")]
    fn size_prefix_cannot_land_in_a_shared_value() {
        let mut f = FrameBuf::new();
        f.put_records_value(&Bytes::from(vec![0u8; 2048]));
        f.set_i32_at(0, 1);
    }
}
