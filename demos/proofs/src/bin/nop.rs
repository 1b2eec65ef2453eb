//! nop: exits 0 at once. The smallest process, for spawn benchmarks and the
//! leak proof.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

capos_rt::entry!(main);

fn main(_rt: &'static capos_rt::Runtime) -> i64 {
    0
}
