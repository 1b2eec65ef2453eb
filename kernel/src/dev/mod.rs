//! Devices the kernel drives itself: serial ports and the ACPI tables; PCI
//! enumeration.

pub mod acpi;
pub mod pci;
pub mod rtc;
pub mod serial;
