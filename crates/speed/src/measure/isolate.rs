//! The parent side of a cell: re-run this binary as a child process for one cell, so
//! that peak memory belongs to that cell alone, and watch it against the limits.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use results::roofline::Roofline;
use results::FailureKind;

use super::calibrate::CalibrationPlan;
use super::rss::current_rss_bytes;
use super::{CellError, CellEvent, CellOutcome, CellPlan, ChildJob};

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
    /// Whether the suite declared the budget (then exceeding it is the expected
    /// outcome "over budget"), or it is the machine's guard (then it is a crash).
    pub budget_declared: bool,
    pub timeout: Duration,
}

impl CellLimits {
    fn over_budget(&self, what: &str, rss: u64) -> CellError {
        let (kind, whose) = if self.budget_declared {
            (FailureKind::OverBudget, "the declared memory budget")
        } else {
            (
                FailureKind::Crashed,
                "the machine's memory guard (90 % of RAM; the suite declares no budget)",
            )
        };
        CellError {
            rss: Some(rss),
            ..CellError::new(
                kind,
                format!(
                    "over {whose} of {} MB ({what} {} MB)",
                    self.memory_budget_bytes >> 20,
                    rss >> 20
                ),
            )
        }
    }
}

const POLL: Duration = Duration::from_millis(50);
const STDERR_TAIL_LINES: usize = 20;

enum Line {
    Event(CellEvent),
    Garbage(String),
    Stderr(String),
}

fn errored(message: impl Into<String>) -> CellError {
    CellError::new(FailureKind::Errored, message)
}

fn spawn(launcher: &Launcher, job: &ChildJob) -> Result<Child, CellError> {
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
    let program = launcher.program.display();
    let mut child = cmd
        .spawn()
        .map_err(|e| errored(format!("starting {program}: {e}")))?;
    let job = serde_json::to_vec(job).map_err(|e| errored(e.to_string()))?;
    let mut stdin = child.stdin.take().ok_or_else(|| errored("no stdin"))?;
    stdin
        .write_all(&job)
        .map_err(|e| errored(format!("writing to {program}: {e}")))?;
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
/// A child that exits with an error, crashes, exceeds the memory budget, runs past
/// the timeout or predicts that it will yields the [`CellError`] of that kind; the
/// caller records it and goes on.
pub fn run_isolated(
    launcher: &Launcher,
    plan: &CellPlan,
    limits: CellLimits,
    on_progress: &mut dyn FnMut(&CellEvent),
) -> Result<CellOutcome, CellError> {
    let job = ChildJob::Cell(Box::new(plan.clone()));
    let (event, peak_seen) = run_child(launcher, &job, limits, on_progress)?;
    let CellEvent::Done { outcome } = event else {
        return Err(errored("the cell process sent no measurement"));
    };
    let mut o = *outcome;
    // The child's own getrusage is authoritative; the parent's polling can only
    // confirm it from below.
    o.peak_rss = o.peak_rss.max(peak_seen);
    // A cell too short for the polling to catch is still held to the budget.
    if o.peak_rss > limits.memory_budget_bytes {
        return Err(limits.over_budget("peak RSS", o.peak_rss));
    }
    Ok(o)
}

/// Calibrates the roofline in a child process started like a cell's.
pub fn calibrate_isolated(
    launcher: &Launcher,
    plan: &CalibrationPlan,
    limits: CellLimits,
) -> Result<Roofline, CellError> {
    let job = ChildJob::Calibrate {
        calibrate: plan.clone(),
    };
    match run_child(launcher, &job, limits, &mut |_| {})?.0 {
        CellEvent::Calibrated { roofline } => Ok(*roofline),
        _ => Err(errored("the calibration process sent no roofline")),
    }
}

/// Runs `job` in a child held to `limits` until it sends its result (returned with the
/// highest RSS the parent saw) or fails.
fn run_child(
    launcher: &Launcher,
    job: &ChildJob,
    limits: CellLimits,
    on_progress: &mut dyn FnMut(&CellEvent),
) -> Result<(CellEvent, u64), CellError> {
    let mut child = spawn(launcher, job)?;
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        forward_lines(out, tx.clone(), parse_stdout);
    }
    if let Some(err) = child.stderr.take() {
        forward_lines(err, tx, Line::Stderr);
    }
    let pid = child.id();
    let started = Instant::now();
    let timeout = limits.timeout.as_secs_f64();
    let mut result = None;
    let mut failure = None;
    let mut stderr_tail: Vec<String> = Vec::new();
    let mut peak_seen = 0u64;
    let kill = |child: &mut Child, why: CellError| {
        let _ = child.kill();
        let _ = child.wait();
        Err(why)
    };
    loop {
        match rx.recv_timeout(POLL) {
            Ok(Line::Event(e @ (CellEvent::Done { .. } | CellEvent::Calibrated { .. }))) => {
                result = Some(e)
            }
            Ok(Line::Event(CellEvent::Failed { error })) => failure = Some(error),
            Ok(Line::Event(CellEvent::Estimate { seconds, basis })) => {
                let elapsed = started.elapsed().as_secs_f64();
                if elapsed + seconds > timeout {
                    return kill(
                        &mut child,
                        CellError::new(
                            FailureKind::PredictedTimeout,
                            format!(
                                "refused after {elapsed:.0} s: predicted to need {seconds:.0} s \
                                 more ({basis}), past the cell timeout of {timeout:.0} s"
                            ),
                        ),
                    );
                }
                on_progress(&CellEvent::Estimate { seconds, basis });
            }
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
                return kill(&mut child, limits.over_budget("RSS reached", rss));
            }
        }
        if started.elapsed() > limits.timeout {
            return kill(
                &mut child,
                CellError::new(
                    FailureKind::TimedOut,
                    format!("timed out after {timeout:.0} s"),
                ),
            );
        }
    }
    let status = child
        .wait()
        .map_err(|e| errored(format!("waiting for the cell process: {e}")))?;
    match (result, failure) {
        (Some(e), _) if status.success() => Ok((e, peak_seen)),
        (_, Some(error)) => Err(errored(error)),
        _ => {
            let tail = stderr_tail
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .cloned()
                .unwrap_or_default();
            Err(CellError::new(
                FailureKind::Crashed,
                format!("cell process {status}: {tail}"),
            ))
        }
    }
}
