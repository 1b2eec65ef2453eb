//! sessions: the session manager and the authority broker.
//!
//! One endpoint serves three kinds of caps, told apart by their cookie:
//! - `sessions` (SessionManager): first-boot setup, password and anonymous
//!   logins. Passwords are checked by the credential store (`credentials`);
//!   this service never sees a verifier.
//! - `broker` (AuthorityBroker): starts a session's shell with its
//!   profile's caps. Every cap it hands out is a revocable copy
//!   (`IpcManager.makeRevocable`) of one of this service's own grants, the
//!   profile naming which (manifest `auth.profiles`); the shell also gets a
//!   revocable copy of the terminal it runs on and of its session cap.
//! - one `UserSession` cap per session (cookie `SESSION_BASE + id`).
//!   `logout` revokes every copy handed out for the session, wherever it was
//!   passed since, and the session cap itself answers "session ended".
//!
//! Failed logins: each failure for a name doubles that name's delay
//! (`auth_core::Throttle`, 1 s, 2 s, 4 s ... 32 s). The failed call is
//! answered only when the delay is over, and an attempt for a name still in
//! its delay is held, unchecked, until the delay ends. Held calls are kept
//! in a bounded list; the serve loop waits for the next call or the next
//! due answer, whichever comes first, so other logins go on meanwhile.
//!
//! Every decision is appended to the audit trail (`audit_log`): setup,
//! login, login-failed, login-held, anonymous, shell, logout. Passwords are
//! never logged, and the params holding one are zeroed once handled.
//!
//! Caps from the manifest: ipc, exporter, credentials, audit_log, timer,
//! clock, boot, spawner, and every cap a profile names.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use auth_core::{Throttle, ANONYMOUS};
use capos_config::AuthConfig;
use capos_rt::ipc::{self, Receiver, Request};
use capos_rt::schema::capos_capnp::{
    authority_broker, session_manager, user_session, AuthStrength,
};
use capos_rt::schema::{
    self as schema, AuditLogClient, BootPackageClient, CallError, CapException,
    CredentialStoreClient, Grant, ProcessSpawnerClient, RevokerClient, SchemaStruct, SessionInfo,
    TimerClient, WallClockClient,
};
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

const COOKIE_SESSIONS: u64 = 1;
const COOKIE_BROKER: u64 = 2;
/// Session caps carry `SESSION_BASE + session id`.
const SESSION_BASE: u64 = 1 << 32;

/// Error codes.
mod code {
    /// Wrong name or password.
    pub const DENIED: u32 = 1;
    /// Too many calls held; try later.
    pub const BUSY: u32 = 2;
    /// Setup after an account exists.
    pub const SETUP_DONE: u32 = 3;
    /// The session has ended.
    pub const ENDED: u32 = 4;
    /// Something this service depends on failed.
    pub const INTERNAL: u32 = 5;
    /// No anonymous profile in the manifest.
    pub const NO_ANONYMOUS: u32 = 6;
    /// The cap sent is not a session of this service.
    pub const NOT_A_SESSION: u32 = 7;
    /// Too many sessions.
    pub const TOO_MANY: u32 = 8;
}

/// Calls held for a throttled name, at most.
const MAX_HELD: usize = 32;
/// Live sessions, at most.
const MAX_SESSIONS: usize = 32;
/// Ended sessions remembered (so their caps say "ended"), at most.
const MAX_ENDED: usize = 64;
/// Longest name or password accepted in a login, in bytes.
const MAX_FIELD: usize = 256;

struct Session {
    info: SessionInfo,
    active: bool,
    /// Revokers of every cap handed out for the session.
    revokers: Vec<u64>,
}

/// What a held call does when its time comes.
enum Held {
    /// A login for a throttled name: check it then.
    Check { name: String, password: Vec<u8> },
    /// A failed login: answer "denied" then.
    Deny,
}

struct Pending {
    due_ns: u64,
    call_id: u64,
    what: Held,
}

struct Service<'a> {
    rt: &'a Runtime,
    endpoint: u64,
    auth: AuthConfig,
    sessions: BTreeMap<u64, Session>,
    next_session: u64,
    throttle: Throttle,
    held: Vec<Pending>,
}

fn ex(code: u32, message: impl Into<String>) -> CapException {
    CapException { code, message: message.into() }
}

fn cap(rt: &Runtime, name: &str) -> Result<u64, CapException> {
    rt.cap(name)
        .map(|c| c.cap)
        .ok_or_else(|| ex(code::INTERNAL, format!("the session manager has no {name} cap")))
}

impl Service<'_> {
    fn now(&self) -> u64 {
        cap(self.rt, "timer")
            .ok()
            .and_then(|t| TimerClient::new(self.rt, t).now().ok())
            .unwrap_or(0)
    }

    fn audit(&self, event: &str, principal: &str, session: u64, detail: &str) {
        let Some(audit) = self.rt.cap("audit_log") else {
            println!(self.rt, "sessions: no audit_log cap; {event} {principal} not audited");
            return;
        };
        if let Err(e) =
            AuditLogClient::new(self.rt, audit.cap).append(event, principal, session, detail)
        {
            println!(self.rt, "sessions: audit append failed: {e}");
        }
    }

    fn reply_ok(&self, call_id: u64, results: &[u8], caps: &[(u64, bool)]) {
        if ipc::reply_with_caps(self.rt, self.endpoint, call_id, results, caps).is_err() {
            for &(c, moved) in caps {
                if moved {
                    let _ = self.rt.release(c);
                }
            }
        }
    }

    fn reply_err(&self, call_id: u64, e: &CapException) {
        let _ = ipc::reply_exception(self.rt, self.endpoint, call_id, e);
    }

    /// Opens a session and returns the CapId of its (unwrapped) session cap.
    fn open(
        &mut self,
        principal: &str,
        profile: &str,
        strength: AuthStrength,
    ) -> Result<(u64, u64), CapException> {
        let live = self.sessions.values().filter(|s| s.active).count();
        if live >= MAX_SESSIONS {
            return Err(ex(code::TOO_MANY, format!("{MAX_SESSIONS} sessions are open")));
        }
        let id = self.next_session;
        self.next_session += 1;
        let session_cap = ipc::mint(
            self.rt,
            self.endpoint,
            schema::user_session::INTERFACE_ID,
            SESSION_BASE + id,
        )
        .map_err(|e| ex(code::INTERNAL, format!("minting the session cap: {e}")))?;
        let unix = cap(self.rt, "clock")
            .ok()
            .and_then(|c| WallClockClient::new(self.rt, c).now().ok())
            .map_or(0, |n| n.unix_seconds);
        let info = SessionInfo {
            id,
            principal: principal.into(),
            profile: profile.into(),
            auth_strength: strength,
            start_ns: self.now(),
            start_unix_seconds: unix,
        };
        self.sessions.insert(id, Session { info, active: true, revokers: Vec::new() });
        self.forget_ended();
        Ok((id, session_cap))
    }

    fn forget_ended(&mut self) {
        let ended: Vec<u64> =
            self.sessions.iter().filter(|(_, s)| !s.active).map(|(id, _)| *id).collect();
        for id in ended.iter().take(ended.len().saturating_sub(MAX_ENDED)) {
            self.sessions.remove(id);
        }
    }

    fn empty_results<R: capnp::traits::Owned>() -> Vec<u8> {
        schema::wire::encode::<R>(|_| Ok(())).unwrap_or_default()
    }

    /// Answers a session-returning call with the session cap (moved).
    fn give_session(&self, call_id: u64, session_cap: u64) {
        let results = Self::empty_results::<session_manager::login_results::Owned>();
        self.reply_ok(call_id, &results, &[(session_cap, true)]);
    }

    /// Checks a password login now; answers at once on success, or holds
    /// the "denied" answer for the name's new delay.
    fn check(&mut self, call_id: u64, name: &str, password: &[u8]) {
        let credentials = match cap(self.rt, "credentials") {
            Ok(c) => c,
            Err(e) => return self.reply_err(call_id, &e),
        };
        let password = core::str::from_utf8(password).unwrap_or("");
        let verified = CredentialStoreClient::new(self.rt, credentials).verify(name, password);
        match verified {
            Ok(v) if v.ok => {
                self.throttle.succeed(name);
                match self.open(name, &v.profile, AuthStrength::Password) {
                    Ok((id, session)) => {
                        self.audit("login", name, id, &format!("profile {}", v.profile));
                        self.give_session(call_id, session);
                    }
                    Err(e) => self.reply_err(call_id, &e),
                }
            }
            Ok(_) => {
                let now = self.now();
                let delay = self.throttle.fail(name, now);
                let failures = self.throttle.failures(name);
                self.audit(
                    "login-failed",
                    name,
                    0,
                    &format!(
                        "wrong name or password (failure {failures} in a row); answered and next attempt after {} ms",
                        delay / 1_000_000
                    ),
                );
                self.hold(now + delay, call_id, Held::Deny);
            }
            Err(e) => self.reply_err(call_id, &ex(code::INTERNAL, format!("credentials: {e}"))),
        }
    }

    fn hold(&mut self, due_ns: u64, call_id: u64, what: Held) {
        if self.held.len() >= MAX_HELD {
            return self.reply_err(call_id, &ex(code::BUSY, "too many login attempts are waiting"));
        }
        self.held.push(Pending { due_ns, call_id, what });
    }

    /// Runs the held calls that are due.
    fn run_due(&mut self) {
        loop {
            let now = self.now();
            let Some(pos) = self.held.iter().position(|p| p.due_ns <= now) else { return };
            let pending = self.held.swap_remove(pos);
            match pending.what {
                Held::Deny => self.reply_err(pending.call_id, &ex(code::DENIED, "login incorrect")),
                Held::Check { name, mut password } => {
                    if self.throttle.not_before(&name) > now {
                        // Another failure moved the window on meanwhile.
                        let due = self.throttle.not_before(&name);
                        self.held.push(Pending {
                            due_ns: due,
                            call_id: pending.call_id,
                            what: Held::Check { name, password },
                        });
                        continue;
                    }
                    self.check(pending.call_id, &name, &password);
                    password.fill(0);
                }
            }
        }
    }

    /// Time until the next held call is due (`u64::MAX`: none).
    fn next_due_in(&self) -> u64 {
        let now = self.now();
        self.held.iter().map(|p| p.due_ns.saturating_sub(now).max(1)).min().unwrap_or(u64::MAX)
    }

    fn handle(&mut self, request: &mut Request) {
        let call_id = request.call_id();
        let cookie = request.header.cookie;
        let method = request.header.method;
        let outcome = match cookie {
            COOKIE_SESSIONS => self.sessions_call(call_id, method, &request.params),
            COOKIE_BROKER => self.broker_call(call_id, method, &mut request.caps),
            c if c >= SESSION_BASE => self.session_call(call_id, c - SESSION_BASE, method),
            _ => Err(Answer::BadMethod),
        };
        request.params.fill(0);
        match outcome {
            Ok(()) => {}
            Err(Answer::BadMethod) => {
                let _ = ipc::reply(
                    self.rt,
                    self.endpoint,
                    call_id,
                    capos_rt::abi::TransportError::BadMethod.code(),
                    &[],
                );
            }
            Err(Answer::Malformed) => {
                let _ = ipc::reply(
                    self.rt,
                    self.endpoint,
                    call_id,
                    capos_rt::abi::TransportError::Malformed.code(),
                    &[],
                );
            }
            Err(Answer::Exception(e)) => self.reply_err(call_id, &e),
        }
    }

    fn sessions_call(&mut self, call_id: u64, method: u16, params: &[u8]) -> Result<(), Answer> {
        use schema::session_manager::method as m;
        let message = schema::wire::decode(params).map_err(|_| Answer::Malformed)?;
        match method {
            m::NEEDS_SETUP => {
                let count = self.account_count()?;
                let results =
                    schema::wire::encode::<session_manager::needs_setup_results::Owned>(|mut r| {
                        r.set_needed(count == 0);
                        Ok(())
                    })
                    .map_err(|_| Answer::Malformed)?;
                self.reply_ok(call_id, &results, &[]);
                Ok(())
            }
            m::SETUP => {
                let p: session_manager::setup_params::Reader<'_> =
                    message.get_root().map_err(|_| Answer::Malformed)?;
                let name = text(p.get_name())?;
                let password = text(p.get_password())?;
                if self.account_count()? != 0 {
                    self.audit("setup-refused", &name, 0, "an account exists already");
                    return Err(Answer::Exception(ex(
                        code::SETUP_DONE,
                        "setup is over: an account exists",
                    )));
                }
                let credentials = cap(self.rt, "credentials").map_err(Answer::Exception)?;
                if let Err(e) = CredentialStoreClient::new(self.rt, credentials)
                    .create(&name, &password, "operator")
                {
                    self.audit("setup-refused", &name, 0, &e.to_string());
                    return Err(Answer::Exception(match e {
                        CallError::Exception(e) => e,
                        other => ex(code::INTERNAL, format!("credentials: {other}")),
                    }));
                }
                let (id, session) = self
                    .open(&name, "operator", AuthStrength::Password)
                    .map_err(Answer::Exception)?;
                self.audit("setup", &name, id, "first operator account created; profile operator");
                self.give_session(call_id, session);
                Ok(())
            }
            m::LOGIN => {
                let p: session_manager::login_params::Reader<'_> =
                    message.get_root().map_err(|_| Answer::Malformed)?;
                let name = text(p.get_name())?;
                let password = text(p.get_password())?;
                let now = self.now();
                let not_before = self.throttle.not_before(&name);
                if not_before > now {
                    self.audit(
                        "login-held",
                        &name,
                        0,
                        &format!(
                            "attempt during the failure delay; checked in {} ms",
                            (not_before - now) / 1_000_000
                        ),
                    );
                    self.hold(
                        not_before,
                        call_id,
                        Held::Check { name, password: password.into_bytes() },
                    );
                } else {
                    self.check(call_id, &name, password.as_bytes());
                }
                Ok(())
            }
            m::ANONYMOUS => {
                if self.auth.profile(ANONYMOUS).is_none() {
                    self.audit("anonymous-refused", ANONYMOUS, 0, "no anonymous profile");
                    return Err(Answer::Exception(ex(
                        code::NO_ANONYMOUS,
                        "this system offers no anonymous sessions",
                    )));
                }
                let (id, session) = self
                    .open(ANONYMOUS, ANONYMOUS, AuthStrength::None)
                    .map_err(Answer::Exception)?;
                self.audit("anonymous", ANONYMOUS, id, "profile anonymous");
                self.give_session(call_id, session);
                Ok(())
            }
            _ => Err(Answer::BadMethod),
        }
    }

    fn account_count(&self) -> Result<u32, Answer> {
        let credentials = cap(self.rt, "credentials").map_err(Answer::Exception)?;
        CredentialStoreClient::new(self.rt, credentials)
            .account_count()
            .map_err(|e| Answer::Exception(ex(code::INTERNAL, format!("credentials: {e}"))))
    }

    /// The session a transferred cap is, if it is a live one of ours.
    fn session_of(&self, sent: u64) -> Result<u64, CapException> {
        let params =
            schema::wire::encode::<schema::capos_capnp::endpoint::identify_params::Owned>(|_| {
                Ok(())
            })
            .unwrap_or_default();
        let reply = self
            .rt
            .call_sending(
                self.endpoint,
                schema::endpoint::INTERFACE_ID,
                schema::endpoint::method::IDENTIFY,
                &params,
                &[(sent, false)],
            )
            .map_err(|e| ex(code::NOT_A_SESSION, format!("the cap sent is not a session: {e}")))?;
        let cookie = schema::rpc::read_results::<
            schema::capos_capnp::endpoint::identify_results::Owned,
            _,
        >(&reply, |r| Ok(r.get_cookie()))
        .map_err(|e| ex(code::INTERNAL, format!("identify: {e}")))?;
        let id = cookie
            .checked_sub(SESSION_BASE)
            .ok_or_else(|| ex(code::NOT_A_SESSION, "the cap sent is not a session"))?;
        match self.sessions.get(&id) {
            Some(s) if s.active => Ok(id),
            Some(_) => Err(ex(code::ENDED, format!("session {id} has ended"))),
            None => Err(ex(code::NOT_A_SESSION, "the cap sent is not a session")),
        }
    }

    /// A revocable copy of `own` (a cap this service holds) for `session`.
    fn revocable(&mut self, session: u64, own: u64, moved: bool) -> Result<u64, CapException> {
        let ipc_cap = cap(self.rt, "ipc")?;
        let params = schema::wire::encode::<
            schema::capos_capnp::ipc_manager::make_revocable_params::Owned,
        >(|_| Ok(()))
        .unwrap_or_default();
        let reply = self
            .rt
            .call_sending(
                ipc_cap,
                schema::ipc_manager::INTERFACE_ID,
                schema::ipc_manager::method::MAKE_REVOCABLE,
                &params,
                &[(own, moved)],
            )
            .map_err(|e| ex(code::INTERNAL, format!("makeRevocable: {e}")))?;
        let (Ok(revoker), Ok(wrapped)) = (reply.cap(0), reply.cap(1)) else {
            return Err(ex(code::INTERNAL, "makeRevocable gave no caps"));
        };
        if let Some(s) = self.sessions.get_mut(&session) {
            s.revokers.push(revoker);
        }
        Ok(wrapped)
    }

    fn broker_call(
        &mut self,
        call_id: u64,
        method: u16,
        caps: &mut Vec<u64>,
    ) -> Result<(), Answer> {
        use schema::authority_broker::method as m;
        match method {
            m::PROFILE_CAPS => {
                let [sent] = caps.as_slice() else {
                    return Err(Answer::Exception(ex(
                        code::NOT_A_SESSION,
                        format!("profileCaps takes one cap (a session), got {}", caps.len()),
                    )));
                };
                let id = self.session_of(*sent).map_err(Answer::Exception)?;
                let names = self.profile_caps(id);
                let results =
                    schema::wire::encode::<authority_broker::profile_caps_results::Owned>(|r| {
                        let mut list = r.init_names(names.len() as u32);
                        for (i, n) in names.iter().enumerate() {
                            list.set(i as u32, n.as_str());
                        }
                        Ok(())
                    })
                    .map_err(|_| Answer::Malformed)?;
                self.reply_ok(call_id, &results, &[]);
                Ok(())
            }
            m::LAUNCH_SHELL => {
                let [sent, terminal] = caps.as_slice() else {
                    return Err(Answer::Exception(ex(
                        code::NOT_A_SESSION,
                        format!(
                            "launchShell takes two caps (a session, a terminal), got {}",
                            caps.len()
                        ),
                    )));
                };
                let (sent, terminal) = (*sent, *terminal);
                let id = self.session_of(sent).map_err(Answer::Exception)?;
                // The terminal is taken over: the request keeps no copy.
                caps.retain(|&c| c != terminal);
                match self.launch(id, sent, terminal) {
                    Ok(handle) => {
                        let results =
                            Self::empty_results::<authority_broker::launch_shell_results::Owned>();
                        self.reply_ok(call_id, &results, &[(handle, true)]);
                        Ok(())
                    }
                    Err(e) => {
                        let principal = self.principal(id);
                        self.audit("shell-failed", &principal, id, &e.message);
                        Err(Answer::Exception(e))
                    }
                }
            }
            _ => Err(Answer::BadMethod),
        }
    }

    fn principal(&self, id: u64) -> String {
        self.sessions.get(&id).map(|s| s.info.principal.clone()).unwrap_or_default()
    }

    fn profile_caps(&self, id: u64) -> Vec<String> {
        let profile = self.sessions.get(&id).map(|s| s.info.profile.clone()).unwrap_or_default();
        self.auth.profile(&profile).map(|p| p.caps.clone()).unwrap_or_default()
    }

    /// Starts the shell of session `id` on `terminal`; returns its handle.
    fn launch(&mut self, id: u64, session: u64, terminal: u64) -> Result<u64, CapException> {
        let spawner = cap(self.rt, "spawner")?;
        let mut grants: Vec<(String, u64)> = Vec::new();
        let terminal = self.revocable(id, terminal, true)?;
        grants.push(("terminal".into(), terminal));
        let session_copy = self.revocable(id, session, false)?;
        grants.push(("session".into(), session_copy));
        let mut missing = Vec::new();
        for name in self.profile_caps(id) {
            match self.rt.cap(&name) {
                Some(own) => {
                    let copy = self.revocable(id, own.cap, false)?;
                    grants.push((name, copy));
                }
                None => missing.push(name),
            }
        }
        let spec: Vec<Grant> =
            grants.iter().map(|(name, cap)| Grant { name: name.clone(), cap: *cap }).collect();
        let spawned =
            ProcessSpawnerClient::new(self.rt, spawner).spawn(&self.auth.shell, &[], &spec);
        // The shell holds its own copies now; ours go.
        for (_, c) in &grants {
            let _ = self.rt.release(*c);
        }
        let handle = spawned.map_err(|e| ex(code::INTERNAL, format!("spawning the shell: {e}")))?;
        let pid = schema::ProcessHandleClient::new(self.rt, handle).id().unwrap_or(0);
        let names: Vec<&str> = grants.iter().map(|(n, _)| n.as_str()).collect();
        let principal = self.principal(id);
        let mut detail = format!("{} (pid {pid}) with {}", self.auth.shell, names.join(","));
        if !missing.is_empty() {
            detail.push_str(&format!("; not granted to the broker: {}", missing.join(",")));
        }
        self.audit("shell", &principal, id, &detail);
        Ok(handle)
    }

    fn session_call(&mut self, call_id: u64, id: u64, method: u16) -> Result<(), Answer> {
        use schema::user_session::method as m;
        let Some(session) = self.sessions.get(&id) else {
            return Err(Answer::Exception(ex(code::ENDED, format!("session {id} has ended"))));
        };
        if !session.active {
            return Err(Answer::Exception(ex(code::ENDED, format!("session {id} has ended"))));
        }
        match method {
            m::INFO => {
                let info = session.info.clone();
                let results = schema::wire::encode::<user_session::info_results::Owned>(|r| {
                    info.write_to(r.init_info())
                })
                .map_err(|_| Answer::Malformed)?;
                self.reply_ok(call_id, &results, &[]);
                Ok(())
            }
            m::LOGOUT => {
                self.end(id, "logout");
                let results = Self::empty_results::<user_session::logout_results::Owned>();
                self.reply_ok(call_id, &results, &[]);
                Ok(())
            }
            _ => Err(Answer::BadMethod),
        }
    }

    /// Ends session `id`: every cap handed out for it is revoked.
    fn end(&mut self, id: u64, why: &str) {
        let Some(session) = self.sessions.get_mut(&id) else { return };
        if !session.active {
            return;
        }
        session.active = false;
        let revokers = core::mem::take(&mut session.revokers);
        let principal = session.info.principal.clone();
        let mut failed = 0;
        for r in &revokers {
            if RevokerClient::new(self.rt, *r).revoke().is_err() {
                failed += 1;
            }
            let _ = self.rt.release(*r);
        }
        let detail = if failed == 0 {
            format!("{why}; {} cap(s) revoked", revokers.len())
        } else {
            format!("{why}; {} cap(s) revoked, {failed} revocation(s) failed", revokers.len())
        };
        self.audit("logout", &principal, id, &detail);
    }
}

/// How a call is answered when not with results.
enum Answer {
    BadMethod,
    Malformed,
    Exception(CapException),
}

fn text(r: capnp::Result<capnp::text::Reader<'_>>) -> Result<String, Answer> {
    let t = r.map_err(|_| Answer::Malformed)?;
    let s = t.to_str().map_err(|_| Answer::Malformed)?;
    if s.len() > MAX_FIELD {
        return Err(Answer::Exception(ex(
            code::DENIED,
            format!("a name or password of {} bytes is over {MAX_FIELD}", s.len()),
        )));
    }
    Ok(s.to_string())
}

/// The manifest's auth section (profiles, shell), through the `boot` cap.
fn auth_config(rt: &Runtime) -> Result<AuthConfig, String> {
    let boot = rt.cap("boot").ok_or("no boot cap")?;
    let bytes = BootPackageClient::new(rt, boot.cap)
        .manifest()
        .map_err(|e| format!("reading the manifest: {e}"))?;
    let manifest = capos_config::decode(&bytes).map_err(|e| format!("the manifest: {e}"))?;
    manifest.auth.ok_or_else(|| "the manifest has no auth section".into())
}

fn main(rt: &'static Runtime) -> i64 {
    let (Some(ipc_cap), Some(exporter)) = (rt.cap("ipc"), rt.cap("exporter")) else {
        println!(rt, "sessions: needs the ipc and exporter caps");
        return 2;
    };
    let auth = match auth_config(rt) {
        Ok(a) => a,
        Err(e) => {
            println!(rt, "sessions: {e}");
            return 2;
        }
    };
    let Ok(endpoint) = ipc::create_endpoint(rt, ipc_cap.cap) else { return 3 };
    for (name, interface, cookie) in [
        ("sessions", schema::session_manager::INTERFACE_ID, COOKIE_SESSIONS),
        ("broker", schema::authority_broker::INTERFACE_ID, COOKIE_BROKER),
    ] {
        let exported = ipc::mint(rt, endpoint, interface, cookie)
            .map_err(|e| e.to_string())
            .and_then(|c| ipc::export(rt, exporter.cap, name, c).map_err(|e| e.to_string()));
        if let Err(e) = exported {
            println!(rt, "sessions: export of {name} failed: {e}");
            return 4;
        }
    }
    let mut service = Service {
        rt,
        endpoint,
        auth,
        sessions: BTreeMap::new(),
        next_session: 1,
        throttle: Throttle::new(),
        held: Vec::new(),
    };
    let mut receiver = Receiver::new();
    loop {
        service.run_due();
        match receiver.recv_timeout(rt, endpoint, service.next_due_in()) {
            Ok(Some(mut request)) => {
                service.handle(&mut request);
                for c in request.caps {
                    let _ = rt.release(c);
                }
            }
            Ok(None) => {}
            Err(e) => {
                println!(rt, "sessions: stopped serving: {e}");
                return 1;
            }
        }
    }
}
