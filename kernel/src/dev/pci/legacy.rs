//! The legacy configuration mechanism: an address written to port `0xCF8`,
//! the dword read or written at port `0xCFC`. It reaches segment 0 and the
//! first 256 bytes of each function, which is all `-machine pc` offers.

use capos_lib::pci::Address;
use x86_64::instructions::port::Port;

use crate::sync::IrqLock;

const ADDRESS_PORT: u16 = 0xcf8;
const DATA_PORT: u16 = 0xcfc;

/// The address and data ports are one shared pair: an access is two port
/// operations that must not interleave with another CPU's.
static PORTS: IrqLock<()> = IrqLock::new(());

/// The mechanism answers: the address port keeps the enable bit written to
/// it (a machine without it reads back all ones or zeros).
pub fn present() -> bool {
    let _guard = PORTS.lock();
    let mut address: Port<u32> = Port::new(ADDRESS_PORT);
    // SAFETY: port 0xCF8 is the PCI configuration address register on every
    // PC; saving and restoring it leaves no state behind.
    unsafe {
        let saved = address.read();
        address.write(0x8000_0000);
        let back = address.read();
        address.write(saved);
        back == 0x8000_0000
    }
}

/// The dword at `offset` of function `addr`, all ones when the mechanism
/// cannot reach it.
pub fn read32(addr: Address, offset: u16) -> u32 {
    let Some(a) = addr.legacy_port_address(offset) else {
        return u32::MAX;
    };
    let _guard = PORTS.lock();
    let mut address: Port<u32> = Port::new(ADDRESS_PORT);
    let mut data: Port<u32> = Port::new(DATA_PORT);
    // SAFETY: the configuration address/data pair, held under `PORTS`; a
    // read of configuration space has no side effect on the devices the
    // kernel enumerates.
    unsafe {
        address.write(a);
        data.read()
    }
}

/// Writes the dword at `offset` of function `addr`; ignored when the
/// mechanism cannot reach it.
pub fn write32(addr: Address, offset: u16, value: u32) {
    let Some(a) = addr.legacy_port_address(offset) else {
        return;
    };
    let _guard = PORTS.lock();
    let mut address: Port<u32> = Port::new(ADDRESS_PORT);
    let mut data: Port<u32> = Port::new(DATA_PORT);
    // SAFETY: the configuration address/data pair, held under `PORTS`; the
    // caller writes registers it owns (BAR probing and the command
    // register, restored afterwards).
    unsafe {
        address.write(a);
        data.write(value);
    }
}
