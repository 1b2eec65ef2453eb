//! Shared buffers: a typed handle on a `SharedBuffer` cap and its mapping,
//! and the producer and consumer sides of the ring convention of
//! [`capos_lib::shared_ring`] (layout, counters, checksums, notification
//! bits are documented there).
//!
//! ```ignore
//! // Producer: a data buffer, its read-only cap for the consumer.
//! let data = SharedBuffer::create(rt, vm, 4096 + 16 * 65536)?;
//! let for_consumer = data.client().read_only()?;
//! // ... hand `for_consumer` and a Notification over; get the consumer's
//! // read-only tail page back, map it: `tail`.
//! let mut tx = Producer::new(data.map(true)?, tail.map(false)?, 16, 65536)?;
//! let slot = tx.slot()?.expect("room");   // or wait for BIT_SPACE
//! slot[..n].copy_from_slice(chunk);
//! tx.publish(n as u32, 0, checksum(chunk));
//! notification.signal(BIT_DATA)?;
//! ```
//!
//! A mapping is plain memory at a fixed address: after the buffer is
//! revoked (or [`Mapping`] unmapped) it is gone, and touching it faults,
//! which ends the process like any page fault. A side that may be revoked
//! checks the cap (any call fails with `Revoked`) when its peer tells it to
//! stop, before touching the mapping again. Bytes in the peer's buffer are
//! untrusted: the consumer copies a slot out before checking it.

use core::sync::atomic::{AtomicU32, Ordering};

use capos_lib::shared_ring::{
    Desc, Layout, RingError, DESC_BYTES, HEAD_OFFSET, MAGIC, SLOTS_OFFSET, SLOT_BYTES_OFFSET,
    TAIL_OFFSET,
};
use capos_schema::{CallError, SharedBufferClient, VirtualMemoryClient};

use crate::Runtime;

/// A `SharedBuffer` cap.
pub struct SharedBuffer<'a> {
    client: SharedBufferClient<&'a Runtime>,
    bytes: u64,
}

impl<'a> SharedBuffer<'a> {
    /// A new buffer of `bytes` (a page multiple) through the
    /// `VirtualMemory` cap `vm`; the creator's cap.
    pub fn create(rt: &'a Runtime, vm: u64, bytes: u64) -> Result<Self, CallError> {
        let cap = VirtualMemoryClient::new(rt, vm).create_shared_buffer(bytes)?;
        Ok(Self { client: SharedBufferClient::new(rt, cap), bytes })
    }

    /// The buffer cap `cap` (its size asked with `info`).
    pub fn open(rt: &'a Runtime, cap: u64) -> Result<Self, CallError> {
        let client = SharedBufferClient::new(rt, cap);
        let bytes = client.info()?.bytes;
        Ok(Self { client, bytes })
    }

    /// The typed client (for `info`, `readOnly`, `revoke`).
    pub fn client(&self) -> &SharedBufferClient<&'a Runtime> {
        &self.client
    }

    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Maps the buffer (writable only through a writable cap).
    pub fn map(&self, writable: bool) -> Result<Mapping, CallError> {
        let addr = self.client.map(writable)?;
        Ok(Mapping { addr, bytes: self.bytes, writable })
    }

    /// Unmaps `mapping` (which must not be used afterwards).
    pub fn unmap(&self, mapping: Mapping) -> Result<(), CallError> {
        self.client.unmap(mapping.addr)
    }
}

/// A buffer's mapping in this process: `bytes` at `addr`.
#[derive(Debug)]
pub struct Mapping {
    addr: u64,
    bytes: u64,
    writable: bool,
}

impl Mapping {
    /// Where the buffer is mapped.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Its length.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    /// Whether the mapping is empty (never: a buffer has at least a page).
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    fn at(&self, offset: usize, len: usize) -> *mut u8 {
        assert!(
            (offset as u64).checked_add(len as u64).is_some_and(|e| e <= self.bytes),
            "shared mapping: {offset}+{len} is outside {} bytes",
            self.bytes
        );
        (self.addr + offset as u64) as *mut u8
    }

    /// The 4-aligned word at `offset` as an atomic.
    pub fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        assert!(offset.is_multiple_of(4), "shared mapping: word offset {offset} is not aligned");
        let p = self.at(offset, 4) as *const AtomicU32;
        // SAFETY: inside the mapping (checked), aligned (checked), and
        // valid for the mapping's life; every access to it is atomic.
        unsafe { &*p }
    }

    /// Copies `out.len()` bytes from `offset` into `out`.
    pub fn read(&self, offset: usize, out: &mut [u8]) {
        let p = self.at(offset, out.len());
        // SAFETY: the source is inside the mapping (checked) and `out` is
        // private memory; the ring convention gives this side the range.
        unsafe { core::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) }
    }

    /// Copies `data` to `offset` (a writable mapping only).
    pub fn write(&self, offset: usize, data: &[u8]) {
        assert!(self.writable, "shared mapping: write to a read-only mapping");
        let p = self.at(offset, data.len());
        // SAFETY: inside a writable mapping (checked); the ring convention
        // gives this side the range.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) }
    }

    /// `len` bytes at `offset` to fill in place (a writable mapping only).
    pub fn slice_mut(&mut self, offset: usize, len: usize) -> &mut [u8] {
        assert!(self.writable, "shared mapping: write to a read-only mapping");
        let p = self.at(offset, len);
        // SAFETY: inside a writable mapping (checked); `&mut self` keeps
        // this process from making a second slice, and the ring
        // convention keeps the peer off the range while it is filled.
        unsafe { core::slice::from_raw_parts_mut(p, len) }
    }
}

/// The producer side: owns the data buffer's writable mapping, reads the
/// consumer's tail through a read-only mapping of the tail buffer.
pub struct Producer {
    data: Mapping,
    tail: Mapping,
    layout: Layout,
    head: u32,
}

impl Producer {
    /// Lays out a ring of `slots` slots of `slot_bytes` in `data` and
    /// starts with both counters at 0 (the tail page is zeroed when made).
    pub fn new(
        data: Mapping,
        tail: Mapping,
        slots: u32,
        slot_bytes: u32,
    ) -> Result<Producer, RingError> {
        let layout = Layout::new(slots, slot_bytes, data.len())?;
        data.write(SLOTS_OFFSET, &slots.to_le_bytes());
        data.write(SLOT_BYTES_OFFSET, &slot_bytes.to_le_bytes());
        data.atomic_u32(HEAD_OFFSET).store(0, Ordering::Release);
        data.atomic_u32(0).store(MAGIC, Ordering::Release);
        Ok(Producer { data, tail, layout, head: 0 })
    }

    /// The ring's geometry.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Entries the consumer has not taken yet.
    pub fn in_flight(&self) -> Result<u32, RingError> {
        let tail = self.tail.atomic_u32(TAIL_OFFSET).load(Ordering::Acquire);
        self.layout.occupancy(self.head, tail)
    }

    /// The next free slot to fill, or `None` while the ring is full.
    pub fn slot(&mut self) -> Result<Option<&mut [u8]>, RingError> {
        if self.in_flight()? == self.layout.slots {
            return Ok(None);
        }
        let at = self.layout.data_offset(self.head);
        Ok(Some(self.data.slice_mut(at, self.layout.slot_bytes as usize)))
    }

    /// Publishes the slot [`Producer::slot`] gave: `len` bytes of it,
    /// `flags` and `checksum` in its descriptor.
    pub fn publish(&mut self, len: u32, flags: u32, checksum: u64) {
        let d = Desc { len, flags, checksum };
        self.data.write(self.layout.desc_offset(self.head), &d.to_bytes());
        self.head = self.head.wrapping_add(1);
        self.data.atomic_u32(HEAD_OFFSET).store(self.head, Ordering::Release);
    }

    /// Gives the mappings back (to unmap them).
    pub fn into_mappings(self) -> (Mapping, Mapping) {
        (self.data, self.tail)
    }
}

/// The consumer side: reads the data buffer through a read-only mapping,
/// owns the tail buffer's writable mapping.
pub struct Consumer {
    data: Mapping,
    tail: Mapping,
    layout: Layout,
    next: u32,
}

impl Consumer {
    /// Reads the ring's geometry from `data`'s header (untrusted: checked
    /// against the mapping) and starts at entry 0.
    pub fn new(data: Mapping, tail: Mapping) -> Result<Consumer, RingError> {
        let word = |off| {
            let mut b = [0u8; 4];
            data.read(off, &mut b);
            u32::from_le_bytes(b)
        };
        let magic = data.atomic_u32(0).load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(RingError::BadMagic(magic));
        }
        let layout = Layout::new(word(SLOTS_OFFSET), word(SLOT_BYTES_OFFSET), data.len())?;
        tail.atomic_u32(TAIL_OFFSET).store(0, Ordering::Release);
        Ok(Consumer { data, tail, layout, next: 0 })
    }

    /// The ring's geometry.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Takes the next entry: copies its bytes into `out` (at least a slot
    /// long) and returns its descriptor, or `None` while the ring is empty.
    /// A descriptor or counter the producer corrupted is an error.
    pub fn pop(&mut self, out: &mut [u8]) -> Result<Option<Desc>, RingError> {
        let head = self.data.atomic_u32(HEAD_OFFSET).load(Ordering::Acquire);
        if self.layout.occupancy(head, self.next)? == 0 {
            return Ok(None);
        }
        let mut raw = [0u8; DESC_BYTES];
        self.data.read(self.layout.desc_offset(self.next), &mut raw);
        let desc = Desc::from_bytes(raw);
        let len = self.layout.check_len(desc.len)?;
        let Some(out) = out.get_mut(..len) else { return Err(RingError::BadLength(desc.len)) };
        self.data.read(self.layout.data_offset(self.next), out);
        self.next = self.next.wrapping_add(1);
        self.tail.atomic_u32(TAIL_OFFSET).store(self.next, Ordering::Release);
        Ok(Some(desc))
    }

    /// Gives the mappings back (to unmap them).
    pub fn into_mappings(self) -> (Mapping, Mapping) {
        (self.data, self.tail)
    }
}
