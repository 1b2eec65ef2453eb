//! `EntropySource`: random bytes from the CPU's RDSEED or RDRAND.

use alloc::vec::Vec;

use capos_schema::capos_capnp::entropy_source;
use capos_schema::{dispatch_entropy_source_in, EntropySourceServer, ServerError};

use super::{exception, outcome, CallContext, CallOutcome, CapObject, KernelFrame};

/// Most bytes one `read` returns.
pub const MAX_READ: u32 = 4096;

/// The kernel's entropy object.
pub struct KernelEntropy;

fn features() -> (bool, bool) {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    let rdrand = __cpuid(1).ecx & (1 << 30) != 0;
    let rdseed = __cpuid(0).eax >= 7 && __cpuid_count(7, 0).ebx & (1 << 18) != 0;
    (rdrand, rdseed)
}

fn hw_u64(rdseed: bool) -> Option<u64> {
    for _ in 0..128 {
        let value: u64;
        let ok: u8;
        // SAFETY: the instruction exists (checked through CPUID by the
        // caller); it only writes the output register and CF.
        unsafe {
            if rdseed {
                core::arch::asm!("rdseed {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack));
            } else {
                core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack));
            }
        }
        if ok == 1 {
            return Some(value);
        }
        core::hint::spin_loop();
    }
    None
}

struct Server;

impl EntropySourceServer for Server {
    fn read(
        &mut self,
        params: entropy_source::read_params::Reader<'_>,
        mut results: entropy_source::read_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let n = params.get_bytes();
        if n > MAX_READ {
            return Err(ServerError::exception(
                exception::INVALID_ARGUMENT,
                alloc::format!("{n} bytes requested; at most {MAX_READ} per read"),
            ));
        }
        let (rdrand, rdseed) = features();
        if !rdrand && !rdseed {
            return Err(ServerError::exception(
                exception::UNSUPPORTED,
                "this CPU has neither RDSEED nor RDRAND",
            ));
        }
        // alloc: at most MAX_READ (4 KiB), checked above
        let mut out = Vec::with_capacity(n as usize);
        while out.len() < n as usize {
            let word = hw_u64(rdseed)
                .or_else(|| if rdrand { hw_u64(false) } else { None })
                .ok_or_else(|| {
                    ServerError::exception(
                        exception::EXHAUSTED,
                        "hardware random source kept failing",
                    )
                })?;
            let take = (n as usize - out.len()).min(8);
            out.extend_from_slice(&word.to_le_bytes()[..take]); // alloc: within the capacity above
        }
        results.set_data(&out);
        Ok(())
    }
}

impl CapObject for KernelEntropy {
    fn interface_id(&self) -> u64 {
        capos_schema::entropy_source::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::entropy_source::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::entropy_source::method::name(method).is_some()
    }

    fn call(
        &self,
        _ctx: &CallContext<'_>,
        method: u16,
        frame: &mut KernelFrame<'_>,
    ) -> CallOutcome {
        outcome(dispatch_entropy_source_in(&mut Server, method, frame))
    }
}
