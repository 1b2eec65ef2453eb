//! echo-client: calls the Echo service through a cap minted from an
//! endpoint, as any client of a user-space server does.
//!
//! Caps: `console`, `echo` (the minted client cap), `timer`, and `parent` (an
//! Echo cap the driver serves itself, to learn when this client is blocked
//! on its unanswered call). In order:
//!
//! 1. round trips of [`SIZES`] bytes through the generated `EchoClient`,
//!    each checked byte for byte;
//! 2. refusals decided by the server: method 7 (`BadMethod`), params that
//!    are no message (`Malformed`), the data `raise` (an application
//!    error); and by the kernel: params over 64 KiB (`TooLarge`), results
//!    larger than the caller's buffer (`Overflow`);
//! 3. a call the server never answers: `cap_enter` with a 100 ms timeout
//!    returns `Timeout` and the call stays in flight;
//! 4. it tells the driver (a call on `parent`), which then kills the server;
//!    the call in flight completes with `Disconnected`, and so does a new
//!    call through the same cap.
//!
//! Every line is `echo-client: ...`; a result other than the one named is
//! followed by `echo-client: mismatch ...`, and the exit code is the number
//! of mismatches.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec;

use capos_rt::abi::{TransportError, MAX_PARAMS_LEN};
use capos_rt::schema::{echo, CallError, EchoClient, TimerClient};
use capos_rt::{println, CapRef, Runtime};
use ipc_programs::{
    call_sqe, client_result, echo_params, payload, status_name, HANG, RAISE, RAISE_CODE,
    RAISE_MESSAGE,
};

capos_rt::entry!(main);

/// Payload sizes round-tripped through the server, up to the largest that
/// fits a 64 KiB params (and results) message with its framing.
const SIZES: [usize; 5] = [0, 1, 100, 4096, LARGEST];

/// The largest payload round-tripped: a 65,000-byte Data field, whose
/// message is just under `MAX_PARAMS_LEN` (65,536 bytes).
const LARGEST: usize = 65_000;

/// How long the unanswered call is waited for.
const HANG_TIMEOUT_NS: u64 = 100_000_000;

/// How long the client waits for the driver's answer and for the server's
/// death to end the unanswered call.
const DISCONNECT_TIMEOUT_NS: u64 = 30_000_000_000;

struct Client {
    rt: &'static Runtime,
    echo: CapRef,
    mismatches: i64,
}

impl Client {
    fn check(&mut self, line: &str, got: &str, want: &str) {
        println!(self.rt, "echo-client: {line}: {got}");
        if got != want {
            self.mismatches += 1;
            println!(self.rt, "echo-client: mismatch in {line}: expected {want}");
        }
    }

    fn client(&self) -> EchoClient<&'static Runtime> {
        EchoClient::new(self.rt, self.echo.cap)
    }

    /// A raw CALL of `method` with `params`, results into `results_len` bytes.
    fn raw_call(&self, method: u16, params: &[u8], results_len: usize) -> String {
        let mut results = vec![0u8; results_len];
        let sqe = call_sqe(
            self.echo.cap,
            echo::INTERFACE_ID,
            method,
            params,
            &mut results,
            self.rt.next_user_data(),
        );
        match self.rt.call_raw(sqe) {
            Ok(c) => status_name(c.status),
            Err(e) => alloc::format!("cap_enter failed with {}", e.name()),
        }
    }

    fn round_trips(&mut self) {
        for size in SIZES {
            let data = payload(size);
            let got = self.client().echo(&data);
            match got {
                Ok(back) if back == data => {
                    println!(self.rt, "echo-client: round trip of {size} bytes intact");
                }
                Ok(back) => {
                    self.mismatches += 1;
                    let at = back.iter().zip(&data).position(|(a, b)| a != b);
                    println!(
                        self.rt,
                        "echo-client: mismatch: {size} bytes came back as {} bytes, first difference at {at:?}",
                        back.len()
                    );
                }
                Err(e) => {
                    self.mismatches += 1;
                    println!(self.rt, "echo-client: mismatch: round trip of {size} bytes: {e}");
                }
            }
        }
    }

    fn refusals(&mut self) {
        let params = echo_params(b"method 7");
        let got = self.raw_call(7, &params, 256);
        self.check("method 7", &got, "BadMethod");

        let got = self.raw_call(echo::method::ECHO, &[0xff; 8], 256);
        self.check("params of 8 bytes 0xff", &got, "Malformed");

        let r = self.client().echo(RAISE);
        let got = match &r {
            Err(CallError::Exception(e)) => alloc::format!("AppError {} ({})", e.code, e.message),
            other => client_result(other),
        };
        let want = alloc::format!("AppError {RAISE_CODE} ({RAISE_MESSAGE})");
        self.check("data `raise`", &got, &want);

        // The kernel refuses these before the server sees them: params over
        // the ring's limit (never read), and results that do not fit.
        let mut results = [0u8; 64];
        let sqe = capos_rt::abi::Sqe {
            params_addr: 0,
            params_len: MAX_PARAMS_LEN + 1,
            ..call_sqe(self.echo.cap, echo::INTERFACE_ID, 0, &[], &mut results, 0)
        };
        let sqe = capos_rt::abi::Sqe { user_data: self.rt.next_user_data(), ..sqe };
        let got = match self.rt.call_raw(sqe) {
            Ok(c) => status_name(c.status),
            Err(e) => e.name().into(),
        };
        self.check("params of 65537 bytes", &got, "TooLarge");

        let params = echo_params(&payload(1000));
        let got = self.raw_call(echo::method::ECHO, &params, 64);
        self.check("echo of 1000 bytes into a 64-byte results buffer", &got, "Overflow");

        let got = client_result(&self.client().echo(b"still served"));
        self.check("echo after the refusals", &got, "ok");
    }

    /// The call the server never answers, the driver's kill, and what the
    /// call and the cap give afterwards.
    fn unanswered(&mut self, timer: Option<CapRef>, parent: Option<CapRef>) {
        let rt = self.rt;
        let params = echo_params(HANG);
        let mut results = vec![0u8; 256];
        let hang_ud = rt.next_user_data();
        let sqe = call_sqe(self.echo.cap, echo::INTERFACE_ID, 0, &params, &mut results, hang_ud);
        let timer = timer.map(|t| TimerClient::new(rt, t.cap));
        let before = timer.as_ref().and_then(|t| t.now().ok());
        if rt.ring().submit(&sqe).is_err() {
            self.check("submitting the unanswered call", "ring full", "ok");
            return;
        }
        let waited = rt.ring().enter(1, HANG_TIMEOUT_NS);
        let after = timer.as_ref().and_then(|t| t.now().ok());
        let elapsed_ms = match (before, after) {
            (Some(b), Some(a)) => a.saturating_sub(b) / 1_000_000,
            _ => 0,
        };
        match waited {
            Err(TransportError::Timeout) if elapsed_ms >= 100 => {
                println!(rt, "echo-client: unanswered call timed out after 100 ms");
            }
            other => {
                self.mismatches += 1;
                println!(
                    rt,
                    "echo-client: mismatch: waiting 100 ms for the unanswered call gave {other:?} after {elapsed_ms} ms"
                );
            }
        }

        // Tell the driver this client is blocked on the call; the driver
        // answers and then kills the server. Both completions are taken from
        // the ring here, never by a blocking runtime call, which would keep
        // the unanswered call's completion for itself.
        let Some(parent) = parent else {
            self.check("telling the driver", "no `parent` cap", "ok");
            return;
        };
        let notice = echo_params(b"waiting");
        let mut notice_results = vec![0u8; 256];
        let notice_ud = rt.next_user_data();
        let sqe = call_sqe(
            parent.cap,
            echo::INTERFACE_ID,
            echo::method::ECHO,
            &notice,
            &mut notice_results,
            notice_ud,
        );
        let mut notice_status = None;
        let mut hang_status = None;
        if rt.ring().submit(&sqe).is_ok() {
            while notice_status.is_none() || hang_status.is_none() {
                while let Some(c) = rt.ring().pop() {
                    if c.user_data == notice_ud {
                        notice_status = Some(c.status);
                    } else if c.user_data == hang_ud {
                        hang_status = Some(c.status);
                    }
                }
                if (notice_status.is_none() || hang_status.is_none())
                    && rt.ring().enter(1, DISCONNECT_TIMEOUT_NS).is_err()
                {
                    break;
                }
            }
        }
        let got = notice_status.map_or_else(|| "no answer".into(), status_name);
        if got != "ok" {
            self.check("telling the driver", &got, "ok");
        }
        let got = hang_status.map_or_else(|| "no completion".into(), status_name);
        if got == "Disconnected" {
            println!(rt, "echo-client: call to a killed server completed with Disconnected");
        } else {
            self.check("call to a killed server", &got, "Disconnected");
        }
        let got = client_result(&self.client().echo(b"anyone there?"));
        if got == "Disconnected" {
            println!(rt, "echo-client: new call to a killed server failed with Disconnected");
        } else {
            self.check("new call to a killed server", &got, "Disconnected");
        }
    }
}

fn main(rt: &'static Runtime) -> i64 {
    let Some(echo) = rt.cap("echo") else {
        println!(rt, "echo-client: holds no `echo` cap");
        return 2;
    };
    let mut c = Client { rt, echo, mismatches: 0 };
    c.round_trips();
    c.refusals();
    c.unanswered(rt.cap("timer"), rt.cap("parent"));
    c.mismatches
}
