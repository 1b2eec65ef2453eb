//! `tickless`: see the crate documentation (`thread_programs::Part::Tickless`).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

capos_rt::entry!(main);

fn main(rt: &'static capos_rt::Runtime) -> i64 {
    thread_programs::run(rt, thread_programs::Part::Tickless)
}
