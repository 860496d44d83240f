//! The parent side of a cell: re-run this binary as a child process for one cell, so
//! that peak memory belongs to that cell alone, and watch it against the limits.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::rss::current_rss_bytes;
use super::{CellEvent, CellOutcome, CellPlan};
use models::{Error, Result};

/// How to start a child that reads a [`CellPlan`] as JSON on stdin and writes
/// [`CellEvent`]s as JSON lines on stdout.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Compute threads for the child; 0 means every core.
    pub threads: usize,
}

/// Limits a child is held to.
#[derive(Debug, Clone, Copy)]
pub struct CellLimits {
    pub memory_budget_bytes: u64,
    pub timeout: Duration,
}

const POLL: Duration = Duration::from_millis(50);
const STDERR_TAIL_LINES: usize = 20;

enum Line {
    Event(CellEvent),
    Garbage(String),
    Stderr(String),
}

fn spawn(launcher: &Launcher, plan: &CellPlan) -> Result<Child> {
    let mut cmd = Command::new(&launcher.program);
    cmd.args(&launcher.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Always set: without it candle re-reads the CPU count on every matmul call, a
    // per-call cost that would fall on small decode-time products.
    cmd.env(
        super::THREADS_ENV,
        super::resolve_threads(launcher.threads).to_string(),
    );
    let mut child = cmd.spawn().map_err(|e| Error::io(&launcher.program, e))?;
    let plan = serde_json::to_vec(plan).map_err(|e| Error::Cell(e.to_string()))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| Error::Cell("no stdin".into()))?;
    stdin
        .write_all(&plan)
        .map_err(|e| Error::io(&launcher.program, e))?;
    Ok(child)
}

fn forward_lines<R: std::io::Read + Send + 'static>(
    reader: R,
    tx: mpsc::Sender<Line>,
    wrap: fn(String) -> Line,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(wrap(line)).is_err() {
                break;
            }
        }
    });
}

fn parse_stdout(line: String) -> Line {
    match serde_json::from_str::<CellEvent>(&line) {
        Ok(event) => Line::Event(event),
        Err(_) => Line::Garbage(line),
    }
}

/// Runs one cell in a child process; progress events go to `on_progress`.
///
/// A child that exits with an error, crashes, exceeds the memory budget or the timeout
/// yields `Err(Error::Cell)` with the reason; the caller records it and goes on.
pub fn run_isolated(
    launcher: &Launcher,
    plan: &CellPlan,
    limits: CellLimits,
    on_progress: &mut dyn FnMut(&CellEvent),
) -> Result<CellOutcome> {
    let mut child = spawn(launcher, plan)?;
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        forward_lines(out, tx.clone(), parse_stdout);
    }
    if let Some(err) = child.stderr.take() {
        forward_lines(err, tx, Line::Stderr);
    }
    let pid = child.id();
    let started = Instant::now();
    let mut outcome = None;
    let mut failure = None;
    let mut stderr_tail: Vec<String> = Vec::new();
    let mut peak_seen = 0u64;
    let kill = |child: &mut Child, why: String| {
        let _ = child.kill();
        let _ = child.wait();
        Err(Error::Cell(why))
    };
    loop {
        match rx.recv_timeout(POLL) {
            Ok(Line::Event(CellEvent::Done { outcome: o })) => outcome = Some(*o),
            Ok(Line::Event(CellEvent::Failed { error })) => failure = Some(error),
            Ok(Line::Event(e)) => on_progress(&e),
            Ok(Line::Garbage(l)) | Ok(Line::Stderr(l)) => {
                stderr_tail.push(l);
                if stderr_tail.len() > STDERR_TAIL_LINES {
                    stderr_tail.remove(0);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Both pipes closed: the child has exited or is about to.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if let Some(rss) = current_rss_bytes(pid) {
            peak_seen = peak_seen.max(rss);
            if rss > limits.memory_budget_bytes {
                return kill(
                    &mut child,
                    format!(
                        "exceeded the memory budget of {} MB (RSS reached {} MB)",
                        limits.memory_budget_bytes >> 20,
                        rss >> 20
                    ),
                );
            }
        }
        if started.elapsed() > limits.timeout {
            return kill(
                &mut child,
                format!("timed out after {:.0} s", limits.timeout.as_secs_f64()),
            );
        }
    }
    let status = child.wait().map_err(|e| Error::io(&launcher.program, e))?;
    match (outcome, failure) {
        (Some(mut o), _) if status.success() => {
            // The child's own getrusage is authoritative; the parent's polling can only
            // confirm it from below.
            o.peak_rss = o.peak_rss.max(peak_seen);
            // A cell too short for the polling to catch is still held to the budget.
            if o.peak_rss > limits.memory_budget_bytes {
                return Err(Error::Cell(format!(
                    "exceeded the memory budget of {} MB (peak RSS {} MB)",
                    limits.memory_budget_bytes >> 20,
                    o.peak_rss >> 20
                )));
            }
            Ok(o)
        }
        (_, Some(error)) => Err(Error::Cell(error)),
        _ => {
            let tail = stderr_tail
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .cloned()
                .unwrap_or_default();
            Err(Error::Cell(format!("cell process {status}: {tail}")))
        }
    }
}
