//! Reports from a results document: plotters charts (SVG and PNG), a self-contained
//! HTML page, a Markdown summary and the claims table. Exporters turn
//! [`harness::results::Results`] into bytes and do no I/O; [`write_report`] writes them.

pub mod chart;
pub mod claims;
pub mod comparison;
pub mod error;
pub mod export;
pub mod format;
pub mod tables;

use std::path::{Path, PathBuf};

use harness::results::Results;

pub use error::{ReportError, Result};
pub use export::{html::Html, markdown::Markdown, Exporter};

/// The files a report consists of.
#[derive(Debug, Clone)]
pub struct Written {
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub charts: Vec<PathBuf>,
}

/// Writes `report.html`, `summary.md` and `charts/<name>.{svg,png}` into `dir`, each
/// atomically (temporary file, then rename).
pub fn write_report(results: &Results, dir: &Path) -> Result<Written> {
    let charts_dir = dir.join("charts");
    let mut charts = Vec::new();
    for c in chart::charts(results) {
        let svg = charts_dir.join(format!("{}.svg", c.name));
        harness::atomic::write(
            &svg,
            chart::render_svg(&c.data, chart::PlotContext::default())?.as_bytes(),
        )?;
        let png = charts_dir.join(format!("{}.png", c.name));
        // The PNG encoder picks the format from the extension: render to a temporary
        // `.png` beside the target, then rename.
        let partial = charts_dir.join(format!(".{}.partial.png", c.name));
        chart::render_png(&c.data, chart::PlotContext::default(), &partial)?;
        std::fs::rename(&partial, &png).map_err(|e| harness::Error::io(&png, e))?;
        charts.extend([svg, png]);
    }
    let html = dir.join("report.html");
    harness::atomic::write(&html, &Html.serialize(results)?)?;
    let markdown = dir.join("summary.md");
    harness::atomic::write(&markdown, &Markdown.serialize(results)?)?;
    Ok(Written {
        html,
        markdown,
        charts,
    })
}
