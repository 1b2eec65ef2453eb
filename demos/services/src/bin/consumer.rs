//! consumer: calls the `greeter` cap another service exported, through the
//! same typed client a kernel object would get. Caps: console, greeter.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use capos_rt::schema::EchoClient;
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

fn main(rt: &'static Runtime) -> i64 {
    let Some(greeter) = rt.cap("greeter") else {
        println!(rt, "consumer: no greeter cap");
        return 2;
    };
    match EchoClient::new(rt, greeter.cap).echo(b"hello from consumer") {
        Ok(data) => {
            println!(
                rt,
                "consumer: greeter answered: {}",
                core::str::from_utf8(&data).unwrap_or("?")
            );
            0
        }
        Err(e) => {
            println!(rt, "consumer: greeter call failed: {e}");
            1
        }
    }
}
