//! authprobe: drives the session manager and the authority broker the way
//! a hostile or careless client would, and reports each answer.
//!
//! - wrong passwords are denied, and each answer comes only after the
//!   failure delay (measured on `timer`: at least 1 s, then 2 s);
//! - setup once an account exists, over-long names, malformed params and
//!   unknown methods get their named errors;
//! - the broker refuses caps that are not sessions of its own;
//! - an anonymous session's profile, and its end: after logout its cap
//!   answers "session ended".
//!
//! Caps: sessions, broker, timer, console.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use capos_rt::abi::TransportError;
use capos_rt::schema::{
    self as schema, CallError, SessionManagerClient, TimerClient, Transport, UserSessionClient,
};
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

fn show<T>(r: &Result<T, CallError>) -> String {
    match r {
        Ok(_) => String::from("ok"),
        Err(CallError::Exception(e)) => format!("error {}: {}", e.code, e.message),
        Err(CallError::Transport(code)) => match TransportError::from_u32(*code) {
            Some(e) => format!("{e}"),
            None => format!("transport error {code}"),
        },
        Err(e) => format!("{e}"),
    }
}

fn broker_call(rt: &Runtime, broker: u64, method: u16, caps: &[(u64, bool)]) -> String {
    let params = schema::wire::encode::<
        schema::capos_capnp::authority_broker::launch_shell_params::Owned,
    >(|_| Ok(()))
    .unwrap_or_default();
    let r = rt.call_sending(broker, schema::authority_broker::INTERFACE_ID, method, &params, caps);
    show(&r)
}

fn main(rt: &'static Runtime) -> i64 {
    let (Some(sessions), Some(broker), Some(timer)) =
        (rt.cap("sessions"), rt.cap("broker"), rt.cap("timer"))
    else {
        println!(rt, "authprobe: needs sessions, broker and timer");
        return 2;
    };
    let manager = SessionManagerClient::new(rt, sessions.cap);
    let timer = TimerClient::new(rt, timer.cap);
    let now = || timer.now().unwrap_or(0);

    // Wrong passwords: denied, each after the name's growing delay.
    for round in 1..=2u64 {
        let start = now();
        let r = manager.login("operator", "not-the-password");
        let ms = (now() - start) / 1_000_000;
        let floor = 1000 * (1 << (round - 1));
        println!(
            rt,
            "authprobe: wrong password {round}: {} after {} ({})",
            show(&r),
            if ms >= floor { format!(">= {floor} ms") } else { format!("only {ms} ms") },
            if ms >= floor { "delayed" } else { "NOT DELAYED" }
        );
    }
    let r = manager.login("nobody", "whatever-it-is");
    println!(rt, "authprobe: unknown account: {}", show(&r));
    println!(rt, "authprobe: setup with an account present: {}", show(&manager.setup("x", "y")));
    let long: String = core::iter::repeat_n('a', 300).collect();
    println!(rt, "authprobe: 300-byte name: {}", show(&manager.login(&long, "pw")));

    // Bytes that are no Cap'n Proto message, and a method that does not exist.
    let garbage = rt.call(
        sessions.cap,
        schema::session_manager::INTERFACE_ID,
        schema::session_manager::method::LOGIN,
        &[0xff; 24],
    );
    println!(rt, "authprobe: malformed login params: {}", show(&garbage));
    let empty = schema::wire::encode::<
        schema::capos_capnp::session_manager::needs_setup_params::Owned,
    >(|_| Ok(()))
    .unwrap_or_default();
    let bad = rt.call(sessions.cap, schema::session_manager::INTERFACE_ID, 9, &empty);
    println!(rt, "authprobe: method 9: {}", show(&bad));

    // The broker wants sessions of its own.
    let launch = schema::authority_broker::method::LAUNCH_SHELL;
    let profile = schema::authority_broker::method::PROFILE_CAPS;
    println!(
        rt,
        "authprobe: launchShell with no caps: {}",
        broker_call(rt, broker.cap, launch, &[])
    );
    println!(
        rt,
        "authprobe: launchShell with a timer as the session: {}",
        broker_call(rt, broker.cap, launch, &[(timer_cap(rt), false), (console_cap(rt), false)])
    );
    println!(
        rt,
        "authprobe: profileCaps of the broker cap itself: {}",
        broker_call(rt, broker.cap, profile, &[(broker.cap, false)])
    );

    // An anonymous session: its profile, then its end.
    let session = match manager.anonymous() {
        Ok(s) => s,
        Err(e) => {
            println!(rt, "authprobe: anonymous: {}", show::<()>(&Err(e)));
            return 1;
        }
    };
    let user = UserSessionClient::new(rt, session);
    match user.info() {
        Ok(i) => println!(
            rt,
            "authprobe: anonymous session {}: principal {}, profile {}, auth {:?}",
            i.id,
            i.principal,
            i.profile,
            i.auth_strength
        ),
        Err(e) => println!(rt, "authprobe: info: {}", show::<()>(&Err(e))),
    }
    let params = schema::wire::encode::<
        schema::capos_capnp::authority_broker::profile_caps_params::Owned,
    >(|_| Ok(()))
    .unwrap_or_default();
    let caps = rt
        .call_sending(
            broker.cap,
            schema::authority_broker::INTERFACE_ID,
            profile,
            &params,
            &[(session, false)],
        )
        .and_then(|reply| {
            schema::rpc::read_results::<
                schema::capos_capnp::authority_broker::profile_caps_results::Owned,
                _,
            >(&reply, |r| {
                let mut names = Vec::new();
                for n in r.get_names()? {
                    names.push(String::from(n?.to_str()?));
                }
                Ok(names)
            })
        });
    match caps {
        Ok(names) => println!(rt, "authprobe: anonymous profile caps: {}", names.join(",")),
        Err(e) => println!(rt, "authprobe: profileCaps: {}", show::<()>(&Err(e))),
    }
    println!(rt, "authprobe: logout: {}", show(&user.logout()));
    println!(rt, "authprobe: info after logout: {}", show(&user.info()));
    println!(rt, "authprobe: logout again: {}", show(&user.logout()));
    println!(
        rt,
        "authprobe: profileCaps of the ended session: {}",
        broker_call(rt, broker.cap, profile, &[(session, false)])
    );
    println!(rt, "authprobe: done");
    0
}

fn timer_cap(rt: &Runtime) -> u64 {
    rt.cap("timer").map_or(0, |t| t.cap)
}

fn console_cap(rt: &Runtime) -> u64 {
    rt.cap("console").map_or(0, |t| t.cap)
}
