//! The CMOS real-time clock (ports 0x70/0x71).

use capos_lib::time::DateTime;
use x86_64::instructions::port::Port;

/// Why the RTC could not be read.
#[derive(Debug, Clone, Copy)]
pub enum RtcError {
    /// The clock stayed in an update cycle.
    Busy,
    /// A field is out of range (e.g. month 13): no usable clock.
    Invalid {
        /// Which field.
        field: &'static str,
        /// Its decoded value.
        value: u32,
    },
}

impl core::fmt::Display for RtcError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Busy => f.write_str("the RTC never left its update cycle"),
            Self::Invalid { field, value } => write!(f, "RTC {field} {value} is out of range"),
        }
    }
}

fn read_reg(reg: u8) -> u8 {
    let mut index: Port<u8> = Port::new(0x70);
    let mut data: Port<u8> = Port::new(0x71);
    // SAFETY: standard CMOS index/data ports; bit 7 of the index keeps NMIs
    // enabled as they were (0). Only this module uses them.
    unsafe {
        index.write(reg);
        data.read()
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
struct Raw([u8; 7]);

fn read_raw() -> Result<Raw, RtcError> {
    for _ in 0..100_000 {
        if read_reg(0x0A) & 0x80 == 0 {
            return Ok(Raw([0x00, 0x02, 0x04, 0x07, 0x08, 0x09, 0x32].map(read_reg)));
        }
    }
    Err(RtcError::Busy)
}

/// Seconds since 1970-01-01 UTC, from the RTC (read until two readings agree).
pub fn read_unix_seconds() -> Result<i64, RtcError> {
    let mut a = read_raw()?;
    for _ in 0..10 {
        let b = read_raw()?;
        if a == b {
            break;
        }
        a = b;
    }
    let status_b = read_reg(0x0B);
    let binary = status_b & 0x04 != 0;
    let hour24 = status_b & 0x02 != 0;
    let dec = |v: u8| if binary { v as u32 } else { ((v >> 4) as u32) * 10 + (v & 0x0f) as u32 };
    let [s, m, h, d, mo, y, c] = a.0;
    let sec = dec(s);
    let min = dec(m);
    let mut hour = dec(h & 0x7f);
    if !hour24 {
        let pm = h & 0x80 != 0;
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let day = dec(d);
    let month = dec(mo);
    let century = if c == 0 || c == 0xff { 20 } else { dec(c) };
    let year = century * 100 + dec(y);
    let check = |field, value: u32, lo, hi| {
        if value < lo || value > hi {
            Err(RtcError::Invalid { field, value })
        } else {
            Ok(())
        }
    };
    check("second", sec, 0, 60)?;
    check("minute", min, 0, 59)?;
    check("hour", hour, 0, 23)?;
    check("day", day, 1, 31)?;
    check("month", month, 1, 12)?;
    check("year", year, 1970, 9999)?;
    Ok(DateTime { year: year as i64, month, day, hour, minute: min, second: sec }.to_unix())
}
