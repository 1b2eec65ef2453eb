//! Kernel logging.
//!
//! Every line on COM2 (the debug log) reads
//! `[seconds.micros] cpuN level subsystem: message`. Warnings and errors are
//! also shown on COM1. [`console!`](crate::console) writes operator-facing
//! lines to COM1 and mirrors them to COM2 under the `console` subsystem.
//!
//! The message part of a line has its control characters escaped
//! ([`capos_lib::escape`]): a line is always one record, whatever text a
//! message quotes.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};

use capos_lib::escape::Escaping;

pub use capos_lib::cmdline::LogLevel;

use crate::dev::serial::{COM1, COM2};

static MAX_LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);

/// Sets the most verbose level written to COM2.
pub fn set_level(level: LogLevel) {
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

/// Writes one log line. Use the `kinfo!`-family macros.
pub fn log(level: LogLevel, subsystem: &str, args: fmt::Arguments<'_>) {
    if level as u8 > MAX_LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let micros = crate::arch::x86_64::tsc::micros_since_boot();
    let cpu = crate::arch::x86_64::percpu::cpu_index();
    {
        let mut com2 = COM2.lock();
        let _ = write!(
            com2,
            "[{:>5}.{:06}] cpu{} {} {}: ",
            micros / 1_000_000,
            micros % 1_000_000,
            cpu,
            level_name(level),
            subsystem,
        );
        let _ = Escaping(&mut *com2).write_fmt(args);
        let _ = com2.write_str("\n");
    }
    if level <= LogLevel::Warn {
        let mut com1 = COM1.lock();
        com1.end_program_line();
        let _ = write!(com1, "{} {}: ", level_name(level), subsystem);
        let _ = Escaping(&mut *com1).write_fmt(args);
        let _ = com1.write_str("\n");
    }
}

/// Writes one operator-facing line on COM1 and mirrors it to COM2.
pub fn console_line(args: fmt::Arguments<'_>) {
    {
        let mut com1 = COM1.lock();
        com1.end_program_line();
        let _ = writeln!(com1, "{}", args);
    }
    log(LogLevel::Info, "console", args);
}

/// Logs at error level: `kerror!("mem", "…", args)`.
#[macro_export]
macro_rules! kerror {
    ($sub:expr, $($arg:tt)*) => {
        $crate::log::log($crate::log::LogLevel::Error, $sub, format_args!($($arg)*))
    };
}

/// Logs at warning level (also shown on COM1).
#[macro_export]
macro_rules! kwarn {
    ($sub:expr, $($arg:tt)*) => {
        $crate::log::log($crate::log::LogLevel::Warn, $sub, format_args!($($arg)*))
    };
}

/// Logs at info level.
#[macro_export]
macro_rules! kinfo {
    ($sub:expr, $($arg:tt)*) => {
        $crate::log::log($crate::log::LogLevel::Info, $sub, format_args!($($arg)*))
    };
}

/// Logs at debug level.
#[macro_export]
macro_rules! kdebug {
    ($sub:expr, $($arg:tt)*) => {
        $crate::log::log($crate::log::LogLevel::Debug, $sub, format_args!($($arg)*))
    };
}

/// Writes an operator-facing line to COM1 (mirrored to COM2).
#[macro_export]
macro_rules! console {
    ($($arg:tt)*) => {
        $crate::log::console_line(format_args!($($arg)*))
    };
}
