//! Starting programs (`run`), background jobs (`jobs`) and ending
//! processes (`kill`).
//!
//! A job keeps the `ProcessHandle` its spawn returned. Before each prompt
//! the shell asks every job's handle for its status and reports (then
//! forgets) the jobs that ended.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use capos_lib::shell::{quote, Ending, KillTarget, RunSpec};
use capos_rt::schema::{
    process_spawner, process_table, CallError, Grant, ProcessHandleClient, ProcessSpawnerClient,
    ProcessStatus, ProcessTableClient,
};
use capos_rt::Runtime;

use crate::access::{failed, need, reason};
use crate::terminal::say;
use crate::Shell;

/// `ProcessTable.kill` error code: no such process.
const NO_SUCH_PROCESS: u32 = 1;
/// `ProcessTable.kill` error code: the pid is init's.
const IS_INIT: u32 = 2;

/// A program started in the background.
pub struct Job {
    /// The job number (`%N`).
    id: u32,
    /// Its pid, if `ProcessHandle.id` answered.
    pid: Option<u64>,
    /// The binary.
    binary: String,
    /// The program and its arguments, quoted.
    command: String,
    /// Its handle.
    handle: ProcessHandleClient<&'static Runtime>,
}

impl Job {
    /// `hello (pid 7)`.
    fn label(&self) -> String {
        label(&self.binary, self.pid)
    }
}

/// `binary (pid N)`, `binary (pid ?)` when the pid is not known.
fn label(binary: &str, pid: Option<u64>) -> String {
    match pid {
        Some(pid) => format!("{binary} (pid {pid})"),
        None => format!("{binary} (pid ?)"),
    }
}

fn ending(status: &ProcessStatus) -> Ending<'_> {
    Ending {
        cause: &status.cause,
        exit_code: status.exit_code,
        fault_rip: status.fault_rip,
        fault_address: status.fault_address,
    }
}

/// The program and its arguments, quoted as they could be typed again.
fn command_line(spec: &RunSpec) -> String {
    let mut words: Vec<String> = vec![quote(&spec.binary).into_owned()];
    words.extend(spec.args.iter().map(|a| quote(a).into_owned()));
    words.join(" ")
}

/// The grants of `spec`: each the shell's own cap by its name.
fn grants(rt: &Runtime, spec: &RunSpec) -> Result<Vec<Grant>, String> {
    spec.grants
        .iter()
        .map(|g| match rt.cap(&g.source) {
            Some(c) => Ok(Grant { name: g.name.clone(), cap: c.cap }),
            None => Err(format!("run: this session has no {} cap to grant", g.source)),
        })
        .collect()
}

/// `run`: starts the program, then waits for it or keeps it as a job.
pub fn run(shell: &mut Shell, spec: &RunSpec, background: bool) -> Result<(), String> {
    let rt = shell.rt;
    let spawner = need(rt, "run", "spawner", process_spawner::INTERFACE_ID)?;
    let grants = grants(rt, spec)?;
    let args: Vec<&str> = spec.args.iter().map(String::as_str).collect();
    let handle = ProcessSpawnerClient::new(rt, spawner)
        .spawn(&spec.binary, &args, &grants)
        .map_err(|e| format!("run: cannot start {}: {}", spec.binary, reason(&e)))?;
    let handle = ProcessHandleClient::new(rt, handle);
    let pid = handle.id().ok();
    if background {
        let id = shell.jobs.iter().map(|j| j.id).max().unwrap_or(0) + 1;
        let pid_text = pid.map_or("?".to_string(), |p| p.to_string());
        say!(shell.term, "[{id}] pid {pid_text}");
        let command = command_line(spec);
        shell.jobs.push(Job { id, pid, binary: spec.binary.clone(), command, handle });
        return Ok(());
    }
    // The program may write to the terminal while the shell waits.
    shell.term.flush();
    // A program given the terminal reads it itself (Ctrl-C included); for
    // any other, the shell watches the terminal for Ctrl-C meanwhile.
    let has_terminal = spec.grants.iter().any(|g| g.source == "terminal");
    let waited = if has_terminal {
        handle.wait()
    } else {
        foreground::wait_interruptible(rt, shell.term.cap(), &handle)
    };
    let status = handle.status();
    let _ = rt.release(handle.cap_id());
    let who = label(&spec.binary, pid);
    match (waited, status) {
        (_, Ok(s)) if s.exited => say!(shell.term, "{who} {}", ending(&s).describe()),
        (Ok(code), _) => say!(shell.term, "{who} exited with code {code}"),
        (Err(e), _) => return Err(format!("run: waiting for {who} failed: {}", reason(&e))),
    }
    Ok(())
}

/// `jobs`: the running background jobs, as `[N] running: COMMAND (pid P)`.
pub fn jobs(shell: &mut Shell) -> Result<(), String> {
    let lines: Vec<String> = shell
        .jobs
        .iter()
        .map(|j| format!("[{}] running: {}", j.id, label(&j.command, j.pid)))
        .collect();
    for line in lines {
        say!(shell.term, "{line}");
    }
    Ok(())
}

/// Reports the jobs that ended since the last prompt and lets go of their
/// handles.
pub fn reap(shell: &mut Shell) {
    let mut i = 0;
    while i < shell.jobs.len() {
        let job = &shell.jobs[i];
        let line = match job.handle.status() {
            Ok(s) if !s.exited => None,
            Ok(s) => Some(format!("[{}] done: {} {}", job.id, job.label(), ending(&s).short())),
            Err(e) => Some(format!("[{}] lost: {}: {}", job.id, job.label(), reason(&e))),
        };
        match line {
            None => i += 1,
            Some(line) => {
                say!(shell.term, "{line}");
                let job = shell.jobs.remove(i);
                let _ = shell.rt.release(job.handle.cap_id());
            }
        }
    }
}

/// Lets go of every job (its handle is released); with `report`, says
/// which keep running. A job outlives the shell: what ends with the
/// session is its authority (every cap the session handed out, the
/// terminal included, is revoked), not the program; `ps` and `kill` of a
/// later operator session still reach it.
pub fn detach_all(shell: &mut Shell, report: bool) {
    for job in core::mem::take(&mut shell.jobs) {
        if report {
            say!(
                shell.term,
                "[{}] keeps running without this session's caps: {}",
                job.id,
                job.label()
            );
        }
        let _ = shell.rt.release(job.handle.cap_id());
    }
}

/// Kills a job through its handle and waits until it has ended, so that
/// the next prompt reports it.
fn kill_job(job: &Job) -> Result<(), String> {
    job.handle.kill().map_err(|e| failed("kill", &e))?;
    job.handle.wait().map(|_| ()).map_err(|e| failed("kill", &e))
}

/// `kill`: a job through its handle, any other pid through `processes`.
pub fn kill(shell: &mut Shell, target: KillTarget) -> Result<(), String> {
    let pid = match target {
        KillTarget::Job(n) => {
            let job = shell.jobs.iter().find(|j| j.id == n);
            return kill_job(job.ok_or_else(|| format!("kill: no job %{n}"))?);
        }
        KillTarget::Pid(pid) => pid,
    };
    if let Some(job) = shell.jobs.iter().find(|j| j.pid == Some(pid)) {
        return kill_job(job);
    }
    let cap = need(shell.rt, "kill", "processes", process_table::INTERFACE_ID)
        .map_err(|e| format!("{e} (pid {pid} is not one of this shell's jobs)"))?;
    match ProcessTableClient::new(shell.rt, cap).kill(pid) {
        Ok(()) => {
            say!(shell.term, "killed pid {pid}");
            Ok(())
        }
        Err(CallError::Exception(e)) if e.code == NO_SUCH_PROCESS => {
            Err(format!("kill: no such process: {pid}"))
        }
        Err(CallError::Exception(e)) if e.code == IS_INIT => {
            Err(format!("kill: pid {pid} is init, which cannot be killed"))
        }
        Err(e) => Err(failed("kill", &e)),
    }
}

/// Waiting for a foreground program while Ctrl-C on the terminal ends it.
mod foreground {
    use alloc::vec;

    use capos_rt::abi::{Cqe, Sqe};
    use capos_rt::schema::capos_capnp::{process_handle, terminal_session, ReadStatus};
    use capos_rt::schema::{self as schema, CallError, ProcessHandleClient};
    use capos_rt::{ipc, Runtime};

    /// Bytes for a readLine's results (a line of at most 4096 bytes).
    const READ_RESULTS: usize = 8 * 1024;

    fn submit(rt: &Runtime, sqe: &Sqe) -> Result<(), CallError> {
        while rt.ring().submit(sqe).is_err() {
            rt.ring().enter(0, 0).map_err(|e| CallError::Transport(e.code()))?;
        }
        Ok(())
    }

    /// The status of a finished readLine, or None if the call failed.
    fn read_status(cqe: &Cqe, results: &[u8]) -> Option<ReadStatus> {
        let reply = ipc::call_reply(cqe, results).ok()?;
        schema::rpc::read_results::<terminal_session::read_line_results::Owned, _>(&reply, |r| {
            Ok(r.get_status()?)
        })
        .ok()
    }

    /// Waits for the process behind `handle` and returns its exit code, as
    /// `ProcessHandle.wait` does; meanwhile a readLine (echo off) on the
    /// terminal `term` watches for Ctrl-C, which kills the process. Lines
    /// typed meanwhile are dropped. When the process ends by itself the
    /// watching read is cancelled (`TerminalSession.cancelRead`).
    pub fn wait_interruptible(
        rt: &'static Runtime,
        term: u64,
        handle: &ProcessHandleClient<&'static Runtime>,
    ) -> Result<i64, CallError> {
        let wait_params = schema::wire::encode::<process_handle::wait_params::Owned>(|_| Ok(()))
            .map_err(CallError::Encode)?;
        let read_params =
            schema::wire::encode::<terminal_session::read_line_params::Owned>(|mut p| {
                p.set_prompt("");
                p.set_echo(false);
                p.set_max_bytes(4096);
                Ok(())
            })
            .map_err(CallError::Encode)?;
        let mut wait_results = vec![0u8; 512];
        let mut read_results = vec![0u8; READ_RESULTS];
        let wait = ipc::call_sqe(
            handle.cap_id(),
            schema::process_handle::INTERFACE_ID,
            schema::process_handle::method::WAIT,
            &wait_params,
            &mut wait_results,
            rt.next_user_data(),
        );
        submit(rt, &wait)?;
        let mut read = None;
        let mut done: Option<Cqe> = None;
        while done.is_none() {
            if read.is_none() {
                let sqe = ipc::call_sqe(
                    term,
                    schema::terminal_session::INTERFACE_ID,
                    schema::terminal_session::method::READ_LINE,
                    &read_params,
                    &mut read_results,
                    rt.next_user_data(),
                );
                // Without a usable terminal the shell just waits.
                read = submit(rt, &sqe).ok().map(|()| sqe.user_data);
            }
            let Some(cqe) = rt.next_completion() else {
                rt.ring().enter(1, u64::MAX).map_err(|e| CallError::Transport(e.code()))?;
                continue;
            };
            if cqe.user_data == wait.user_data {
                done = Some(cqe);
            } else if Some(cqe.user_data) == read {
                read = None;
                match read_status(&cqe, &read_results) {
                    Some(ReadStatus::Cancelled) => {
                        let _ = handle.kill();
                    }
                    Some(_) => {}
                    // The terminal failed (revoked): stop watching it.
                    None => read = Some(u64::MAX),
                }
            }
        }
        if let Some(user_data) = read.filter(|&u| u != u64::MAX) {
            let _ = schema::TerminalSessionClient::new(rt, term).cancel_read();
            let _ = rt.wait_for(user_data);
        }
        let reply = ipc::call_reply(&done.unwrap_or_default(), &wait_results)?;
        schema::rpc::read_results::<process_handle::wait_results::Owned, _>(&reply, |r| {
            Ok(r.get_exit_code())
        })
    }
}
