//! Access to user memory.
//!
//! The kernel never dereferences a user pointer. A [`UserRange`] is checked
//! against the caller's address space (bounds, mapping, user permission,
//! write permission), and bytes are copied page by page through the direct
//! map, so a bad pointer is an error value, never a kernel fault, and SMAP
//! never has to be lifted.

use super::address_space::{Access, AddressSpace, USER_MIN, USER_TOP};
use super::{phys_to_virt, PAGE_SIZE};

/// Why a user range was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserMemError {
    /// Start + length overflows or leaves the user half.
    OutOfRange {
        /// Start address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// A page in the range is not mapped with the needed permission.
    NotMapped {
        /// First failing address.
        addr: u64,
    },
}

impl core::fmt::Display for UserMemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfRange { addr, len } => {
                write!(f, "range {addr:#x}+{len:#x} is outside user memory")
            }
            Self::NotMapped { addr } => write!(f, "user address {addr:#x} is not accessible"),
        }
    }
}

/// A validated-shape user range (bounds only; mapping is checked on access).
#[derive(Debug, Clone, Copy)]
pub struct UserRange {
    addr: u64,
    len: u64,
}

impl UserRange {
    /// Checks that `[addr, addr+len)` lies inside the user half. An empty
    /// range is always valid (and never touched).
    pub fn new(addr: u64, len: u64) -> Result<Self, UserMemError> {
        if len == 0 {
            return Ok(Self { addr, len });
        }
        let end = addr.checked_add(len).ok_or(UserMemError::OutOfRange { addr, len })?;
        if addr < USER_MIN || end > USER_TOP {
            return Err(UserMemError::OutOfRange { addr, len });
        }
        Ok(Self { addr, len })
    }

    /// Checks every page of the range for `access` without copying.
    pub fn check(&self, space: &mut AddressSpace, access: Access) -> Result<(), UserMemError> {
        let mut off = 0;
        while off < self.len {
            let addr = self.addr + off;
            space.translate_user(addr, access).ok_or(UserMemError::NotMapped { addr })?;
            off += PAGE_SIZE - (addr % PAGE_SIZE);
        }
        Ok(())
    }

    /// Copies the range into `out` (`out.len()` must equal the range length).
    pub fn read(&self, space: &mut AddressSpace, out: &mut [u8]) -> Result<(), UserMemError> {
        self.each_chunk(space, Access::Read, out.len(), |phys, at, n| {
            // SAFETY: `phys..phys+n` is a user-readable frame range of this
            // address space (checked by translate_user), inside one page,
            // reached through the direct map.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    phys_to_virt(phys) as *const u8,
                    out[at..].as_mut_ptr(),
                    n,
                )
            }
        })
    }

    /// Copies `data` into the range (`data.len()` must not exceed it).
    pub fn write(&self, space: &mut AddressSpace, data: &[u8]) -> Result<(), UserMemError> {
        self.each_chunk(space, Access::Write, data.len(), |phys, at, n| {
            // SAFETY: as in `read`, for a user-writable frame.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    data[at..].as_ptr(),
                    phys_to_virt(phys) as *mut u8,
                    n,
                )
            }
        })
    }

    /// A writer that fills the range from its start, piece by piece,
    /// translating each page once.
    pub fn writer<'s>(&self, space: &'s mut AddressSpace) -> UserWriter<'s> {
        UserWriter { space, range: *self, at: 0, page: u64::MAX, phys: 0 }
    }

    fn each_chunk(
        &self,
        space: &mut AddressSpace,
        access: Access,
        bytes: usize,
        mut f: impl FnMut(u64, usize, usize),
    ) -> Result<(), UserMemError> {
        assert!(bytes as u64 <= self.len, "copy of {bytes} bytes fits a {}-byte range", self.len);
        if bytes == 0 {
            return Ok(());
        }
        // Within one page a single translation both checks and locates.
        if self.addr % PAGE_SIZE + bytes as u64 <= PAGE_SIZE {
            let phys = space
                .translate_user(self.addr, access)
                .ok_or(UserMemError::NotMapped { addr: self.addr })?;
            f(phys, 0, bytes);
            return Ok(());
        }
        // Check everything first so a failing copy changes nothing.
        UserRange { addr: self.addr, len: bytes as u64 }.check(space, access)?;
        let mut at = 0usize;
        while at < bytes {
            let addr = self.addr + at as u64;
            let n = ((PAGE_SIZE - addr % PAGE_SIZE) as usize).min(bytes - at);
            let phys =
                space.translate_user(addr, access).ok_or(UserMemError::NotMapped { addr })?;
            f(phys, at, n);
            at += n;
        }
        Ok(())
    }
}

/// Sequential writes into a [`UserRange`] (see [`UserRange::writer`]). A
/// failed write may leave the earlier bytes written.
pub struct UserWriter<'s> {
    space: &'s mut AddressSpace,
    range: UserRange,
    at: u64,
    /// The user page last translated, and its frame.
    page: u64,
    phys: u64,
}

impl UserWriter<'_> {
    /// Appends `data`; fails if it does not fit the range or a page is not
    /// user-writable.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), UserMemError> {
        let end = self.at.checked_add(data.len() as u64);
        if end.is_none_or(|e| e > self.range.len) {
            return Err(UserMemError::OutOfRange { addr: self.range.addr, len: self.range.len });
        }
        while !data.is_empty() {
            let addr = self.range.addr + self.at;
            let page = addr & !(PAGE_SIZE - 1);
            if page != self.page {
                let phys = self
                    .space
                    .translate_user(page, Access::Write)
                    .ok_or(UserMemError::NotMapped { addr })?;
                self.page = page;
                self.phys = phys;
            }
            let off = addr - page;
            let n = ((PAGE_SIZE - off) as usize).min(data.len());
            // SAFETY: `phys..phys+PAGE_SIZE` is the user-writable frame of
            // the page at `page` in this address space (translate_user
            // checked it, and the address-space lock the caller holds keeps
            // it mapped); `off + n` stays inside that page.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    data.as_ptr(),
                    phys_to_virt(self.phys + off) as *mut u8,
                    n,
                )
            }
            data = &data[n..];
            self.at += n as u64;
        }
        Ok(())
    }
}
