//! `WallClock`: calendar time from the CMOS real-time clock, read once at
//! boot and advanced with the monotonic clock.

use capos_schema::capos_capnp::wall_clock;
use capos_schema::{dispatch_wall_clock_in, ServerError, WallClockServer};
use spin::Once;

use super::{exception, outcome, CallContext, CallOutcome, CapObject, KernelFrame};

/// The kernel's wall-clock object.
pub struct KernelWallClock;

/// (Unix seconds at boot reading, monotonic ns at that reading).
static BASE: Once<Option<(i64, u64)>> = Once::new();

/// Reads the RTC (once) and logs the date.
pub fn init() {
    BASE.call_once(|| {
        let now = crate::dev::rtc::read_unix_seconds();
        match now {
            Ok(secs) => {
                crate::kinfo!(
                    "time",
                    "RTC: {} ({} s since 1970)",
                    capos_lib::time::DateTime::from_unix(secs),
                    secs
                )
            }
            Err(e) => crate::kwarn!("time", "RTC unreadable: {e}; WallClock unavailable"),
        }
        now.ok().map(|s| (s, crate::time::monotonic_ns()))
    });
}

struct Server;

impl WallClockServer for Server {
    fn now(
        &mut self,
        _params: wall_clock::now_params::Reader<'_>,
        mut results: wall_clock::now_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        init();
        let Some(Some((secs, at_ns))) = BASE.get().copied() else {
            return Err(ServerError::exception(
                exception::UNSUPPORTED,
                "no readable real-time clock",
            ));
        };
        let since = crate::time::monotonic_ns().saturating_sub(at_ns);
        results.set_unix_seconds(secs + (since / 1_000_000_000) as i64);
        results.set_nanos((since % 1_000_000_000) as u32);
        Ok(())
    }
}

impl CapObject for KernelWallClock {
    fn interface_id(&self) -> u64 {
        capos_schema::wall_clock::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::wall_clock::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::wall_clock::method::name(method).is_some()
    }

    fn call(
        &self,
        _ctx: &CallContext<'_>,
        method: u16,
        frame: &mut KernelFrame<'_>,
    ) -> CallOutcome {
        outcome(dispatch_wall_clock_in(&mut Server, method, frame))
    }
}
