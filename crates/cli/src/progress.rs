//! Progress bars: one overall bar (cells) and one bar for the cell at work. [`Bars`]
//! draws suite runs here and evaluations in `eval_progress`.

use harness::measure::{CellEvent, CellOutcome, Phase};
use harness::runner::{CellId, Observer};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// A bar style from an indicatif template (our templates are constants; the default
/// style stands in should one ever fail to parse).
pub fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

pub struct Bars {
    pub(crate) multi: MultiProgress,
    pub(crate) overall: Option<ProgressBar>,
    pub(crate) cell: Option<ProgressBar>,
}

impl Bars {
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::new(),
            overall: None,
            cell: None,
        }
    }

    pub fn finish(&mut self) {
        if let Some(o) = self.overall.take() {
            o.finish_and_clear();
        }
    }

    /// The overall bar (made with `template` on first use), moved to `index` of `total`.
    pub(crate) fn overall(&mut self, template: &str, index: usize, total: usize) -> &ProgressBar {
        let bar = self.overall.get_or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(total as u64));
            bar.set_style(bar_style(template));
            bar
        });
        bar.set_position(index as u64);
        bar
    }

    /// A line above the bars.
    pub(crate) fn line(&self, line: String) {
        match &self.overall {
            Some(o) if !o.is_hidden() => o.println(line),
            // Without a terminal the bars are hidden; the lines still belong in the log.
            _ => eprintln!("{line}"),
        }
    }
}

fn label(cell: &CellId) -> String {
    format!("{} @ {}", cell.model, cell.seq_len)
}

impl Observer for Bars {
    fn cell_started(&mut self, cell: &CellId, index: usize, total: usize) {
        let overall = self
            .overall(
                "suite [{bar:30}] {pos}/{len} cells, {elapsed}",
                index,
                total,
            )
            .clone();
        let bar = self.multi.insert_before(&overall, ProgressBar::new(1));
        bar.set_style(bar_style(
            "  {prefix:48} {msg:10} [{bar:20}] {pos}/{len} {elapsed}",
        ));
        bar.set_prefix(label(cell));
        bar.set_message("starting");
        self.cell = Some(bar);
    }

    fn cell_progress(&mut self, _cell: &CellId, event: &CellEvent) {
        if let (Some(bar), CellEvent::Progress { phase, done, total }) = (&self.cell, event) {
            let name = match phase {
                Phase::Load => "loading",
                Phase::Warmup => "warm-up",
                Phase::Prefill => "prefill",
                Phase::Decode => "decode",
            };
            bar.set_message(name);
            bar.set_length(*total as u64);
            bar.set_position(*done as u64);
        }
    }

    fn cell_finished(&mut self, cell: &CellId, result: Result<&CellOutcome, &str>) {
        let Some(bar) = self.cell.take() else { return };
        bar.set_style(
            ProgressStyle::with_template("  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let line = match result {
            Ok(o) => {
                let median =
                    |v: &[f64]| harness::stats::summarize(v).map_or(f64::NAN, |s| s.median);
                format!(
                    "ok     {:48} prefill {:>9.1} ms (n={}), decode {:>7.2} ms/token, peak {}",
                    label(cell),
                    median(&o.prefill_ms),
                    o.prefill_ms.len(),
                    median(&o.decode_ms),
                    report::format::bytes(o.peak_rss as f64)
                )
            }
            Err(e) => format!("failed {:48} {e}", label(cell)),
        };
        // Without a terminal the bars are hidden; the per-cell lines still belong in
        // the log.
        if bar.is_hidden() {
            eprintln!("{line}");
        }
        bar.finish_with_message(line);
        if let Some(o) = &self.overall {
            o.inc(1);
        }
    }
}
