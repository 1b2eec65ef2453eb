//! capOS userspace runtime.
//!
//! Link it into a program and write
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! capos_rt::entry!(main);
//! fn main(rt: &capos_rt::Runtime) -> i64 { 0 }
//! ```
//!
//! It provides `_start`, a heap, a panic handler (the message goes to the
//! program's `log` or `console` cap, then the process exits with code 101),
//! the startup page's CapSet ([`Runtime::cap`]), a ring client with a
//! blocking call and batched submission ([`ring::Ring`]), the typed
//! clients generated from `schema/capos.capnp` ([`capos_schema`]), which call
//! through the runtime as their [`Transport`](capos_schema::Transport),
//! threads ([`thread::spawn`]) and their locks ([`sync::Mutex`],
//! [`sync::Condvar`]). Every thread has its own ring; the runtime routes a
//! call to the calling thread's.
//!
//! `unsafe` is confined to audited places: the system-call instructions
//! (`syscall.rs`), the fixed startup-page and ring mappings the kernel
//! provides (`startup.rs`, `ring.rs`), the heap arena (`heap.rs`),
//! deliberate raw probes for fault tests (`probe.rs`), shared-buffer
//! mappings (`shared.rs`), the per-thread
//! context reached through the FS base (`runtime.rs`), a new thread's start
//! argument (`thread.rs`) and the `Mutex`'s guarded data (`sync.rs`).
#![no_std]

extern crate alloc;

pub mod heap;
pub mod ipc;
pub mod probe;
pub mod ring;
pub mod shared;
pub mod startup;
pub mod sync;
pub mod syscall;
pub mod thread;

mod runtime;

pub use capos_abi as abi;
pub use capos_schema as schema;
pub use runtime::{runtime, CapRef, Runtime, THREAD_RESULTS_LEN};

/// Declares the program's `main(rt: &Runtime) -> i64`; its return value is
/// the exit code.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        extern "Rust" fn capos_main(rt: &'static $crate::Runtime) -> i64 {
            let f: fn(&'static $crate::Runtime) -> i64 = $main;
            f(rt)
        }
    };
}

/// Formats to the program's console cap (if it holds one), with a newline.
#[macro_export]
macro_rules! println {
    ($rt:expr, $($arg:tt)*) => {
        $rt.println(format_args!($($arg)*))
    };
}
