//! provider: a service that exports `greeter`, an Echo cap served on its own
//! endpoint. Caps from the manifest: console, ipc, exporter.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use capos_rt::schema::capos_capnp::echo;
use capos_rt::schema::{dispatch_echo, EchoServer, ServerError};
use capos_rt::{ipc, println, Runtime};

capos_rt::entry!(main);

struct Greeter;

impl EchoServer for Greeter {
    fn echo(
        &mut self,
        params: echo::echo_params::Reader<'_>,
        mut results: echo::echo_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        results.set_data(params.get_data()?);
        Ok(())
    }
}

fn main(rt: &'static Runtime) -> i64 {
    let (Some(ipc_cap), Some(exporter)) = (rt.cap("ipc"), rt.cap("exporter")) else { return 2 };
    let Ok(endpoint) = ipc::create_endpoint(rt, ipc_cap.cap) else { return 3 };
    let Ok(greeter) = ipc::mint(rt, endpoint, capos_rt::schema::echo::INTERFACE_ID, 1) else {
        return 4;
    };
    if let Err(e) = ipc::export(rt, exporter.cap, "greeter", greeter) {
        println!(rt, "provider: export failed: {e}");
        return 5;
    }
    println!(rt, "provider: serving greeter");
    let e = ipc::serve(rt, endpoint, |r| dispatch_echo(&mut Greeter, r.header.method, &r.params));
    println!(rt, "provider: stopped serving: {e}");
    1
}
