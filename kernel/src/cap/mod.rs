//! Capabilities: the `CapObject` trait every kernel object implements, and
//! the cap-table entry type. One file per kernel object.
//!
//! An invocation is decoded and validated completely (interface, method,
//! parameters) before the object performs anything, so a bad request never
//! leaves an object half-changed.

pub mod boot_package;
pub mod console;
pub mod device;
pub mod endpoint;
pub mod entropy;
pub mod grants;
pub mod ipc_manager;
pub mod log;
pub mod notification;
pub mod park_space;
pub mod process_handle;
pub mod process_spawner;
pub mod process_table;
pub mod revocable;
pub mod scheduling_policy;
pub mod shared_buffer;
pub mod system_info;
pub mod terminal;
pub mod thread_handle;
pub mod thread_spawner;
pub mod timer;
pub mod virtual_memory;
pub mod wall_clock;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use capos_abi::TransportError;

use crate::proc::Process;

/// Slots in a process's cap table.
pub const MAX_CAPS: usize = 64;

/// A process's capability table.
pub type CapTable = capos_lib::cap_table::CapTable<CapEntry, MAX_CAPS>;

/// One capability: a kernel object reference and the interface it speaks.
#[derive(Clone)]
pub struct CapEntry {
    /// The object.
    pub object: Arc<dyn CapObject>,
    /// The interface id the holder may call (the interface is the permission).
    pub interface_id: u64,
}

impl CapEntry {
    /// A cap speaking the object's own interface.
    pub fn new(object: Arc<dyn CapObject>) -> Self {
        let interface_id = object.interface_id();
        Self { object, interface_id }
    }
}

/// Who is calling, and where a deferred completion must go.
pub struct CallContext<'a> {
    /// The calling process.
    pub caller: &'a Arc<Process>,
    /// The calling thread (its ring takes the completion).
    pub thread: &'a Arc<crate::sched::Thread>,
    /// The SQE's user data, echoed in the completion.
    pub user_data: u64,
    /// Results buffer (inside the user half; its pages are checked as the
    /// results are written).
    pub results_addr: u64,
    /// Results buffer length.
    pub results_len: u32,
    /// Caps the CALL transferred (already taken from the caller's table).
    pub caps_in: core::cell::RefCell<Vec<CapEntry>>,
}

impl CallContext<'_> {
    /// Takes the transferred caps.
    pub fn take_caps(&self) -> Vec<CapEntry> {
        core::mem::take(&mut *self.caps_in.borrow_mut())
    }

    /// Where a deferred completion for this call goes.
    pub fn pending(&self) -> crate::completion::PendingCall {
        crate::completion::PendingCall {
            process: Arc::downgrade(self.caller),
            thread: Arc::downgrade(self.thread),
            user_data: self.user_data,
            results_addr: self.results_addr,
            results_len: self.results_len,
        }
    }
}

pub use crate::frame::KernelFrame;

/// The result of invoking a kernel object.
pub enum CallOutcome {
    /// Finished, with the results built in the call's frame, and any result
    /// caps.
    Built {
        /// Caps to insert into the caller's table.
        caps: Vec<CapEntry>,
    },
    /// Finished: a results message encoded outside the frame, and any
    /// result caps.
    Done {
        /// Cap'n Proto results message.
        results: Vec<u8>,
        /// Caps to insert into the caller's table.
        caps: Vec<CapEntry>,
    },
    /// The object will complete the call later through
    /// [`crate::completion::complete`].
    Pending,
    /// The callee raised an application error: an encoded `CapException`
    /// delivered with status `AppError`.
    Exception(Vec<u8>),
    /// The call failed with a transport error.
    Failed(TransportError),
}

impl CallOutcome {
    /// A finished call with no result caps.
    pub fn done(results: Vec<u8>) -> Self {
        Self::Done { results, caps: Vec::new() }
    }

    /// A call finished with its results in the frame and no result caps.
    pub fn built() -> Self {
        Self::Built { caps: Vec::new() }
    }
}

/// Turns a generated dispatcher's answer (results in the frame) into a call
/// outcome.
pub fn outcome(r: Result<(), capos_schema::DispatchError>) -> CallOutcome {
    match r {
        Ok(()) => CallOutcome::built(),
        Err(e) => failure(e),
    }
}

/// The same for an interface whose methods may return caps.
pub fn outcome_caps(r: Result<Vec<CapEntry>, capos_schema::DispatchError>) -> CallOutcome {
    match r {
        Ok(caps) => CallOutcome::Built { caps },
        Err(e) => failure(e),
    }
}

/// The outcome of a failed dispatch: bad ordinal, malformed params, or an
/// application error.
pub fn failure(e: capos_schema::DispatchError) -> CallOutcome {
    match e {
        capos_schema::DispatchError::BadMethod(_) => CallOutcome::Failed(TransportError::BadMethod),
        capos_schema::DispatchError::Malformed(_) => CallOutcome::Failed(TransportError::Malformed),
        capos_schema::DispatchError::Exception(ex) => {
            CallOutcome::Exception(capos_schema::wire::encode_exception(&ex))
        }
    }
}

/// A transport error (say `QuotaExceeded`) that a method served through a
/// generated dispatcher ends its call with, instead of the exception the
/// dispatcher can carry: the method calls [`Refusal::refuse`] and returns
/// its value; the object's `call` passes the dispatch outcome through
/// [`Refusal::or`].
#[derive(Default)]
pub struct Refusal(core::cell::Cell<Option<TransportError>>);

impl Refusal {
    /// Records `e` as the call's outcome; the returned error only stops the
    /// dispatcher.
    pub fn refuse(&self, e: TransportError) -> capos_schema::ServerError {
        self.0.set(Some(e));
        capos_schema::ServerError::exception(exception::EXHAUSTED, e.name())
    }

    /// The call's outcome: the refusal if one was recorded, else `outcome`.
    pub fn or(&self, outcome: impl FnOnce() -> CallOutcome) -> CallOutcome {
        match self.0.get() {
            Some(e) => CallOutcome::Failed(e),
            None => outcome(),
        }
    }
}

/// A `ResourceProfile` message's fields as kernel limits.
pub fn limits_of(p: &capos_schema::ResourceProfile) -> crate::mem::account::Limits {
    crate::mem::account::Limits {
        frames: p.frames,
        kernel_bytes: p.kernel_bytes,
        threads: p.threads,
        caps: p.caps,
        open_calls: p.open_calls,
    }
}

/// Kernel limits (or amounts in use) as a `ResourceProfile` message.
pub fn profile_of(l: crate::mem::account::Limits) -> capos_schema::ResourceProfile {
    capos_schema::ResourceProfile {
        frames: l.frames,
        kernel_bytes: l.kernel_bytes,
        threads: l.threads,
        caps: l.caps,
        open_calls: l.open_calls,
    }
}

/// Application error codes kernel objects raise (`CapException.code`).
pub mod exception {
    /// The request names something that does not exist (a binary, a cap).
    pub const NOT_FOUND: u32 = 1;
    /// A parameter is out of range or inconsistent.
    pub const INVALID_ARGUMENT: u32 = 2;
    /// The hardware lacks the feature (e.g. no RDRAND).
    pub const UNSUPPORTED: u32 = 3;
    /// Out of memory or another resource.
    pub const EXHAUSTED: u32 = 4;
    /// The operation is not allowed in the object's state.
    pub const BAD_STATE: u32 = 5;
}

/// A kernel object reachable through capabilities.
pub trait CapObject: Send + Sync {
    /// The interface this object serves.
    fn interface_id(&self) -> u64;

    /// Interface name for listings.
    fn interface_name(&self) -> &'static str;

    /// Whether the interface has a method with this ordinal (checked before
    /// lengths and pointers, so an unknown method is always `BadMethod`).
    fn has_method(&self, method: u16) -> bool;

    /// Invokes `method` with the Cap'n Proto params message in `frame`,
    /// building its results there (see [`crate::frame`]).
    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome;

    /// Whether `method` takes caps transferred with the CALL (others fail
    /// with `Malformed` when sent any).
    fn accepts_caps(&self, _method: u16) -> bool {
        false
    }

    /// For a client cap minted from an endpoint: that endpoint, the cookie
    /// and the interface it was minted with (`Endpoint.identify`).
    fn minted(&self) -> Option<(&Arc<endpoint::Endpoint>, u64, u64)> {
        None
    }

    /// Whether this cap was revoked (every operation on it then fails with
    /// `Revoked`).
    fn revoked(&self) -> bool {
        false
    }

    /// The endpoint this is the serving side of (RECV and RETURN work only
    /// on such caps).
    fn endpoint(&self) -> Option<&Arc<endpoint::Endpoint>> {
        None
    }

    /// Whether a CALL would be taken now, checked before the transferred
    /// caps leave the caller's table (an endpoint with a full queue answers
    /// `Overflow`, so a moved cap is not lost to a call that cannot queue).
    fn admits(&self) -> Result<(), TransportError> {
        Ok(())
    }

    /// This object as a revocable wrapper (wrapping one flattens the chain).
    fn as_revocable(&self) -> Option<&revocable::Revocable> {
        None
    }

    /// The thread this is a handle of (`SchedulingPolicy` takes such caps).
    fn thread(&self) -> Option<&Arc<crate::sched::Thread>> {
        None
    }

    /// A short description for diagnostics.
    fn describe(&self) -> String {
        String::from(self.interface_name())
    }
}
