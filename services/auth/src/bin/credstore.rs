//! credstore: the credential store. Holds the password verifiers of the
//! local accounts (Argon2id, see `auth_core::Verifier`) and answers whether a
//! password is right; it never returns a verifier or a password.
//!
//! Accounts come from the manifest's `auth.accounts` (read through the
//! `boot` cap; a verifier that does not parse is logged and its account
//! left out) and from `create` (first-boot setup). Accounts created at run
//! time live in memory until the next boot. New verifiers get a 16-byte salt
//! from `entropy` and `auth_core::DEFAULT_COST`. The hash's working memory
//! is mapped through `vm` (the runtime heap is small) once, at start.
//!
//! Exports `credentials` (CredentialStore). Caps from the manifest: ipc,
//! exporter, boot, entropy, vm, log.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use auth_core::{check_account_name, check_new_password, Block, Verifier, DEFAULT_COST, SALT_LEN};
use capos_rt::schema::capos_capnp::credential_store;
use capos_rt::schema::{
    dispatch_credential_store, BootPackageClient, CredentialStoreServer, EntropySourceClient,
    LogLevel, LogSinkClient, ServerError,
};
use capos_rt::{ipc, println, Runtime};

capos_rt::entry!(main);

/// `create`: the name exists.
const EXISTS: u32 = 1;
/// `create`: a name or password the store does not accept.
const REFUSED: u32 = 2;
/// Hashing failed (no memory, bad parameters): the store's own fault.
const INTERNAL: u32 = 5;
/// Most accounts the store holds.
const MAX_ACCOUNTS: usize = 64;

struct Account {
    name: String,
    profile: String,
    verifier: Verifier,
}

struct Store<'a> {
    rt: &'a Runtime,
    accounts: Vec<Account>,
    memory: Vec<Block>,
    /// Verified against for unknown names, so that they cost the same.
    decoy: Verifier,
}

fn log(rt: &Runtime, level: LogLevel, message: &str) {
    match rt.cap("log") {
        Some(log) => {
            let _ = LogSinkClient::new(rt, log.cap).write(level, message);
        }
        None => println!(rt, "credstore: {message}"),
    }
}

impl Store<'_> {
    fn salt(&self) -> Result<Vec<u8>, ServerError> {
        let entropy = self.rt.cap("entropy").ok_or_else(|| {
            ServerError::exception(INTERNAL, "the credential store has no entropy cap")
        })?;
        let salt = EntropySourceClient::new(self.rt, entropy.cap)
            .read(SALT_LEN as u32)
            .map_err(|e| ServerError::exception(INTERNAL, format!("salt: {e}")))?;
        if salt.len() != SALT_LEN {
            return Err(ServerError::exception(INTERNAL, "salt: short read"));
        }
        Ok(salt)
    }
}

impl CredentialStoreServer for Store<'_> {
    fn account_count(
        &mut self,
        _params: credential_store::account_count_params::Reader<'_>,
        mut results: credential_store::account_count_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        results.set_count(self.accounts.len() as u32);
        Ok(())
    }

    fn verify(
        &mut self,
        params: credential_store::verify_params::Reader<'_>,
        mut results: credential_store::verify_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let name = params.get_name()?.to_str()?;
        let password = params.get_password()?.as_bytes();
        let account = self.accounts.iter().find(|a| a.name == name);
        let verifier = account.map_or(&self.decoy, |a| &a.verifier);
        let matched = verifier
            .verify(password, &mut self.memory)
            .map_err(|e| ServerError::exception(INTERNAL, format!("verify: {e}")))?;
        match account {
            Some(a) if matched => {
                results.set_ok(true);
                results.set_profile(a.profile.as_str());
            }
            _ => results.set_ok(false),
        }
        Ok(())
    }

    fn create(
        &mut self,
        params: credential_store::create_params::Reader<'_>,
        _results: credential_store::create_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let name = params.get_name()?.to_str()?;
        let password = params.get_password()?.to_str()?;
        let profile = params.get_profile()?.to_str()?;
        check_account_name(name).map_err(|e| ServerError::exception(REFUSED, e.to_string()))?;
        check_new_password(password).map_err(|e| ServerError::exception(REFUSED, e.to_string()))?;
        if profile.is_empty() {
            return Err(ServerError::exception(REFUSED, "the profile is empty"));
        }
        if self.accounts.iter().any(|a| a.name == name) {
            return Err(ServerError::exception(EXISTS, format!("account {name} exists")));
        }
        if self.accounts.len() >= MAX_ACCOUNTS {
            return Err(ServerError::exception(REFUSED, format!("{MAX_ACCOUNTS} accounts exist")));
        }
        let salt = self.salt()?;
        let verifier = Verifier::make(password.as_bytes(), &salt, DEFAULT_COST, &mut self.memory)
            .map_err(|e| ServerError::exception(INTERNAL, format!("hashing: {e}")))?;
        log(self.rt, LogLevel::Info, &format!("account {name} created (profile {profile})"));
        self.accounts.push(Account { name: name.into(), profile: profile.into(), verifier });
        Ok(())
    }
}

/// The accounts the manifest seeds; bad ones are logged and left out.
fn seeded(rt: &Runtime) -> Vec<Account> {
    let Some(boot) = rt.cap("boot") else { return Vec::new() };
    let bytes = match BootPackageClient::new(rt, boot.cap).manifest() {
        Ok(b) => b,
        Err(e) => {
            log(rt, LogLevel::Warn, &format!("reading the manifest failed: {e}"));
            return Vec::new();
        }
    };
    let Ok(manifest) = capos_config::decode(&bytes) else {
        log(rt, LogLevel::Warn, "the manifest does not decode; no seeded accounts");
        return Vec::new();
    };
    let mut accounts = Vec::new();
    for a in manifest.auth.map(|a| a.accounts).unwrap_or_default() {
        if accounts.len() >= MAX_ACCOUNTS {
            break;
        }
        match (check_account_name(&a.name), Verifier::parse(&a.verifier)) {
            (Ok(()), Ok(verifier)) => {
                accounts.push(Account { name: a.name, profile: a.profile, verifier })
            }
            (Err(e), _) => log(rt, LogLevel::Warn, &format!("account left out: {e}")),
            (_, Err(e)) => log(
                rt,
                LogLevel::Warn,
                &format!("account {} left out: its verifier is refused: {e}", a.name),
            ),
        }
    }
    accounts
}

fn main(rt: &'static Runtime) -> i64 {
    let (Some(ipc_cap), Some(exporter), Some(vm)) =
        (rt.cap("ipc"), rt.cap("exporter"), rt.cap("vm"))
    else {
        println!(rt, "credstore: needs the ipc, exporter and vm caps");
        return 2;
    };
    let accounts = seeded(rt);
    let blocks = accounts
        .iter()
        .map(|a| Verifier::blocks(a.verifier.cost()))
        .max()
        .unwrap_or(0)
        .max(Verifier::blocks(DEFAULT_COST));
    // The blocks, and room for the Vec's own rounding.
    let bytes = (blocks * 1024 + 64 * 1024).next_multiple_of(4096);
    if let Err(e) = capos_rt::heap::grow(rt, vm.cap, bytes) {
        println!(rt, "credstore: {e}");
        return 3;
    }
    let mut memory = vec![Block::default(); blocks];
    let decoy = match Verifier::make(b"decoy", b"capOS-decoy-salt", DEFAULT_COST, &mut memory) {
        Ok(v) => v,
        Err(e) => {
            println!(rt, "credstore: {e}");
            return 3;
        }
    };
    let mut store = Store { rt, accounts, memory, decoy };
    let Ok(endpoint) = ipc::create_endpoint(rt, ipc_cap.cap) else { return 4 };
    let Ok(client) = ipc::mint(rt, endpoint, capos_rt::schema::credential_store::INTERFACE_ID, 1)
    else {
        return 4;
    };
    if let Err(e) = ipc::export(rt, exporter.cap, "credentials", client) {
        println!(rt, "credstore: export failed: {e}");
        return 5;
    }
    log(rt, LogLevel::Info, &format!("serving; {} seeded account(s)", store.accounts.len()));
    let end = ipc::serve_with(rt, endpoint, |request| {
        let outcome = dispatch_credential_store(&mut store, request.header.method, &request.params);
        // The params held a password: leave nothing of it behind.
        request.params.fill(0);
        Some(outcome)
    });
    println!(rt, "credstore: stopped serving: {end}");
    1
}
