//! The read-only startup page the kernel maps at `STARTUP_PAGE_ADDR`.

use capos_abi::{StartupError, StartupPage, STARTUP_PAGE_ADDR, STARTUP_PAGE_SIZE};

/// Parses this process's startup page.
pub fn page() -> Result<StartupPage<'static>, StartupError> {
    // SAFETY: the kernel maps one read-only page at STARTUP_PAGE_ADDR in every
    // process before it starts, and never unmaps or changes it.
    let bytes =
        unsafe { core::slice::from_raw_parts(STARTUP_PAGE_ADDR as *const u8, STARTUP_PAGE_SIZE) };
    StartupPage::parse(bytes)
}
