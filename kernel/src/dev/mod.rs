//! Devices the kernel drives itself: serial ports and the ACPI tables.

pub mod acpi;
pub mod rtc;
pub mod serial;
