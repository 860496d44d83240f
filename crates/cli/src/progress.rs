//! Progress bars for suites and evaluations alike: one overall bar (cells) and one bar
//! for the cell at work, and a line per finished cell.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use results::dtype_cost::DtypeCost;
use results::fit::{FitProbe, ProbeOutcome};
use results::pipeline::{Cell, Observer, Phase};
use results::{Metric, ModelSpec, Record};

/// A bar style from an indicatif template (our templates are constants; the default
/// style stands in should one ever fail to parse).
fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

pub struct Bars {
    /// What the overall bar counts: `suite` or `eval`.
    what: &'static str,
    multi: MultiProgress,
    overall: Option<ProgressBar>,
    cell: Option<ProgressBar>,
}

/// The figures of a finished cell worth a line: the speed measurements, or the
/// accuracy (or bits per byte) of an accuracy cell.
fn summary(records: &[Record]) -> String {
    let median = |m: Metric| records.iter().find(|r| r.metric == m);
    if let Some(prefill) = median(Metric::PrefillTime) {
        // Only what the suite measured: no "NaN" for a metric it turned off.
        let decode = median(Metric::DecodeLatency)
            .map(|r| format!(", decode {:>7.2} ms/token", r.summary.median))
            .unwrap_or_default();
        let peak = median(Metric::PeakRss)
            .map(|r| format!(", peak {}", report::format::bytes(r.summary.median)))
            .unwrap_or_default();
        return format!(
            "prefill {:>9.1} ms (n={}){decode}{peak}",
            prefill.summary.median,
            prefill.samples.len(),
        );
    }
    let acc: Vec<&Record> = records
        .iter()
        .filter(|r| r.metric == Metric::Accuracy)
        .collect();
    if !acc.is_empty() {
        let n: usize = acc.iter().map(|r| r.samples.len()).sum();
        let k: f64 = acc.iter().flat_map(|r| r.samples.iter()).sum();
        return format!("accuracy {:.2} ({k:.0}/{n})", k / n.max(1) as f64);
    }
    records
        .iter()
        .find(|r| r.metric == Metric::BitsPerByte)
        .map(|r| format!("{:.3} bits/byte", r.summary.mean))
        .unwrap_or_default()
}

impl Bars {
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
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

    /// The overall bar (made on first use), moved to `index` of `total`.
    fn overall(&mut self, index: usize, total: usize) -> &ProgressBar {
        let what = self.what;
        let bar = self.overall.get_or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(total as u64));
            bar.set_style(bar_style(&format!(
                "{what} [{{bar:30}}] {{pos}}/{{len}} cells, {{elapsed}}"
            )));
            bar
        });
        bar.set_position(index as u64);
        bar
    }

    /// Shows `bar` as the bar of the cell at work.
    fn start_cell_bar(&mut self, bar: ProgressBar, cell: &Cell) {
        bar.set_style(bar_style(
            "  {prefix:56} {msg:10} [{bar:20}] {pos}/{len} {elapsed}",
        ));
        bar.set_prefix(cell.to_string());
        bar.set_message("starting");
        self.cell = Some(bar);
    }

    /// A bar for work that is not one of the overall bar's cells (a max-context probe,
    /// a dtype cost).
    fn start_extra_bar(&mut self, cell: &Cell) {
        let bar = match &self.overall {
            Some(o) => self.multi.insert_before(o, ProgressBar::new(1)),
            None => self.multi.add(ProgressBar::new(1)),
        };
        self.start_cell_bar(bar, cell);
    }

    /// A line above the bars.
    fn line(&self, line: String) {
        match &self.overall {
            Some(o) if !o.is_hidden() => o.println(line),
            // Without a terminal the bars are hidden; the lines still belong in the log.
            _ => eprintln!("{line}"),
        }
    }
}

impl Observer for Bars {
    fn model_loading(&mut self, model: &ModelSpec) {
        self.line(format!("loading {model}"));
    }

    fn calibrating(&mut self) {
        self.line("calibrating the roofline (matmul GFLOP/s, memory bandwidth)".into());
    }

    fn cell_started(&mut self, cell: &Cell, index: usize, total: usize) {
        let overall = self.overall(index, total).clone();
        let bar = self.multi.insert_before(&overall, ProgressBar::new(1));
        self.start_cell_bar(bar, cell);
    }

    fn fit_probe_started(&mut self, cell: &Cell) {
        self.start_extra_bar(cell);
    }

    fn fit_probe_finished(&mut self, cell: &Cell, probe: &FitProbe) {
        if let Some(bar) = self.cell.take() {
            bar.finish_and_clear();
        }
        let peak = report::format::bytes(probe.peak_rss as f64);
        let line = match probe.outcome {
            ProbeOutcome::Fits => format!("fits    {:56} peak {peak}", cell.to_string()),
            ProbeOutcome::OverBudget => format!("over    {:56} reached {peak}", cell.to_string()),
            ProbeOutcome::Failed => format!(
                "failed  {:56} {}",
                cell.to_string(),
                probe.error.as_deref().unwrap_or("")
            ),
        };
        self.line(format!("{line} ({:.0} s)", probe.wall_s));
    }

    fn dtype_cost_started(&mut self, cell: &Cell, index: usize, total: usize) {
        if index == 0 {
            self.line(format!(
                "comparing {total} model(s) with their f32 weights (dtype cost)"
            ));
        }
        self.start_extra_bar(cell);
    }

    fn dtype_cost_finished(&mut self, cell: &Cell, cost: &DtypeCost) {
        if let Some(bar) = self.cell.take() {
            bar.finish_and_clear();
        }
        let line = match (&cost.agreement, &cost.error) {
            (Some(a), _) => format!(
                "ok      {:56} min cosine {:.6}, top-1 {:.1} %, perplexity {:+.2} %",
                cell.to_string(),
                a.min_cosine,
                100.0 * a.top1,
                100.0 * a.perplexity_change()
            ),
            (None, e) => format!(
                "failed  {:56} {}",
                cell.to_string(),
                e.as_deref().unwrap_or("")
            ),
        };
        self.line(line);
    }

    fn cell_progress(&mut self, _cell: &Cell, phase: Phase, done: usize, total: usize) {
        if let Some(bar) = &self.cell {
            bar.set_message(phase.label());
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    }

    fn cell_finished(&mut self, cell: &Cell, result: Result<&[Record], &str>) {
        if let Some(bar) = self.cell.take() {
            bar.finish_and_clear();
        }
        let line = match result {
            Ok(records) => format!("ok      {:56} {}", cell.to_string(), summary(records)),
            Err(e) => format!("failed  {:56} {e}", cell.to_string()),
        };
        self.line(line);
        if let Some(o) = &self.overall {
            o.inc(1);
        }
    }

    fn cell_skipped(&mut self, cell: &Cell, index: usize, total: usize) {
        self.overall(index + 1, total);
        self.line(format!(
            "resumed {:56} (already in the results)",
            cell.to_string()
        ));
    }
}
