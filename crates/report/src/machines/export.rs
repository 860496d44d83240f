//! The multi-machine report as HTML (a self-contained page from a serialisable
//! view-model and the template `templates/machines.html`, which extends the single-run
//! report's page, charts inline as SVG) and as Markdown
//! (the single-run report's table renderer). Exporters do no I/O; [`super::write`]
//! does.

use std::fmt::Write;

use serde::Serialize;

use super::{charts, tables, Machines};
use crate::export::html::{inline_charts, render_page, ChartView};
use crate::export::markdown::table;
use crate::tables::Table;
use crate::Result;

/// Serialises a multi-machine report into one output format (the counterpart of
/// [`crate::Exporter`], whose input is one run).
pub trait MachinesExporter {
    fn serialize(&self, machines: &Machines) -> Result<Vec<u8>>;
}

/// The sentence under the title: what was compared, and how machines were told apart.
fn summary(machines: &Machines) -> String {
    let n = machines.machines.len();
    let files = machines.files();
    format!(
        "RWKV against the transformer on {n} machines, from {files} results file{}. Files \
         whose recorded machine captures agree (CPU model, usable cores, memory, CPU \
         features, architecture) are one machine, whatever their names: their records are \
         combined and analysed together.",
        if files == 1 { "" } else { "s" }
    )
}

/// Everything the template shows.
#[derive(Serialize)]
struct View {
    summary: String,
    notes: Vec<String>,
    charts: Vec<ChartView>,
    tables: Vec<Table>,
}

fn view(machines: &Machines) -> Result<View> {
    let charts = inline_charts(charts::charts(machines))?;
    Ok(View {
        summary: summary(machines),
        notes: tables::notes(machines),
        charts,
        tables: vec![tables::wins(machines), tables::machines(machines)],
    })
}

/// The self-contained HTML page.
pub struct Html;

impl MachinesExporter for Html {
    fn serialize(&self, machines: &Machines) -> Result<Vec<u8>> {
        render_page("machines.html", view(machines)?)
    }
}

/// The Markdown summary, for a terminal or a pull-request comment.
pub struct Markdown;

impl MachinesExporter for Markdown {
    fn serialize(&self, machines: &Machines) -> Result<Vec<u8>> {
        let mut out = String::new();
        let _ = writeln!(out, "## rwkv-bench: RWKV vs transformer across machines\n");
        let _ = writeln!(out, "{}", summary(machines));
        for note in tables::notes(machines) {
            let _ = writeln!(out, "\n> {note}.");
        }
        table(&mut out, &tables::wins(machines));
        table(&mut out, &tables::machines(machines));
        let charts: Vec<String> = charts::charts(machines)
            .iter()
            .map(|c| format!("`charts/{}.svg`", c.name))
            .collect();
        if !charts.is_empty() {
            let _ = writeln!(out, "\nCharts: {}.", charts.join(", "));
        }
        Ok(out.into_bytes())
    }
}
