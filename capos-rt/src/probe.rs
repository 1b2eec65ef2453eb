//! Deliberate raw memory access, for programs that test isolation and fault
//! handling. A bad address is not an error value here: the CPU faults and
//! the kernel ends the process (and only it), which is what such tests check.

/// Reads the u64 at `addr`.
pub fn read_u64(addr: u64) -> u64 {
    // SAFETY: deliberately unchecked: a valid address reads memory this
    // process owns; an invalid one faults and the kernel ends the process.
    // Either way no memory outside the process can be reached.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

/// Writes `value` to the u64 at `addr`.
pub fn write_u64(addr: u64, value: u64) {
    // SAFETY: as for `read_u64`; callers only target memory they mapped for
    // the purpose or addresses meant to fault.
    unsafe { core::ptr::write_volatile(addr as *mut u64, value) }
}

/// Reads the u16 at `addr` in one access (a device register).
pub fn read_u16(addr: u64) -> u16 {
    // SAFETY: as for `read_u64`.
    unsafe { core::ptr::read_volatile(addr as *const u16) }
}

/// Reads the u32 at `addr` in one access (a device register).
pub fn read_u32(addr: u64) -> u32 {
    // SAFETY: as for `read_u64`.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Writes the u8 at `addr` in one access (a device register).
pub fn write_u8(addr: u64, value: u8) {
    // SAFETY: as for `write_u64`.
    unsafe { core::ptr::write_volatile(addr as *mut u8, value) }
}

/// Reads the u8 at `addr` in one access (a device register).
pub fn read_u8(addr: u64) -> u8 {
    // SAFETY: as for `read_u64`.
    unsafe { core::ptr::read_volatile(addr as *const u8) }
}

/// Writes the u16 at `addr` in one access (a device register).
pub fn write_u16(addr: u64, value: u16) {
    // SAFETY: as for `write_u64`.
    unsafe { core::ptr::write_volatile(addr as *mut u16, value) }
}

/// Writes the u32 at `addr` in one access (a device register).
pub fn write_u32(addr: u64, value: u32) {
    // SAFETY: as for `write_u64`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}
