//! crasher: a service that dies on start (a write to address 8), for the
//! restart-policy proof. Caps: console.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use capos_rt::{println, Runtime};

capos_rt::entry!(main);

fn main(rt: &'static Runtime) -> i64 {
    println!(rt, "crasher: starting, about to fault");
    capos_rt::probe::write_u64(8, 1);
    0
}
