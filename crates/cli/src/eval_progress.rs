//! Progress bars for an evaluation: [`Bars`] with one overall bar (cells) and one per
//! cell (items).

use harness::eval::{EvalCell, EvalObserver};
use harness::results::{Metric, Record};
use indicatif::ProgressBar;

use crate::progress::Bars;

const OVERALL: &str = "eval [{bar:30}] {pos}/{len} cells, {elapsed}";

/// `accuracy 0.80 (n=10)` or `bits/byte 1.23` for the cell's headline records.
fn headline(records: &[Record]) -> String {
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

impl EvalObserver for Bars {
    fn model_loading(&mut self, model: &str) {
        self.line(format!("loading {model}"));
    }

    fn cell_started(&mut self, cell: &EvalCell, index: usize, total: usize, items: usize) {
        let overall = self.overall(OVERALL, index, total).clone();
        let bar = self
            .multi
            .insert_before(&overall, ProgressBar::new(items as u64));
        bar.set_style(crate::progress::bar_style(
            "  {prefix:56} [{bar:20}] {pos}/{len} {elapsed}",
        ));
        bar.set_prefix(cell.to_string());
        self.cell = Some(bar);
    }

    fn item_done(&mut self, _cell: &EvalCell, done: usize) {
        if let Some(bar) = &self.cell {
            bar.set_position(done as u64);
        }
    }

    fn cell_finished(&mut self, cell: &EvalCell, result: Result<&[Record], &str>) {
        if let Some(bar) = self.cell.take() {
            bar.finish_and_clear();
        }
        let line = match result {
            Ok(records) => format!("ok      {:56} {}", cell.to_string(), headline(records)),
            Err(e) => format!("failed  {:56} {e}", cell.to_string()),
        };
        self.line(line);
        if let Some(o) = &self.overall {
            o.inc(1);
        }
    }

    fn cell_skipped(&mut self, cell: &EvalCell, index: usize, total: usize) {
        self.overall(OVERALL, index + 1, total);
        self.line(format!(
            "resumed {:56} (already in the results)",
            cell.to_string()
        ));
    }
}
