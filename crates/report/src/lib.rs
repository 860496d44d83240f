//! Reports from a results document: plotters charts (SVG and PNG), a self-contained
//! HTML page, a Markdown summary and the claims table. Exporters turn
//! [`results::Results`] into bytes and do no I/O; [`write_report`] writes them.
//! [`machines`] reports runs from several machines side by side.

pub mod chart;
pub mod claims;
pub mod comparison;
pub mod error;
pub mod export;
pub mod format;
pub mod machines;
pub mod tables;

use std::path::{Path, PathBuf};

use results::Results;

pub use error::{ReportError, Result};
pub use export::{html::Html, markdown::Markdown, Exporter};

/// The files a report consists of.
#[derive(Debug, Clone)]
pub struct Written {
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub charts: Vec<PathBuf>,
}

/// Writes each chart as `<name>.svg` and `<name>.png` into `dir`, atomically.
pub fn write_charts(charts: &[chart::Chart], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for c in charts {
        let svg = dir.join(format!("{}.svg", c.name));
        let text = chart::render_svg(&c.data, chart::PlotContext::default())?;
        results::atomic::write(&svg, text.as_bytes())?;
        let png = dir.join(format!("{}.png", c.name));
        // The PNG encoder picks the format from the extension: render to a temporary
        // `.png` beside the target, then rename.
        let partial = dir.join(format!(".{}.partial.png", c.name));
        chart::render_png(&c.data, chart::PlotContext::default(), &partial)?;
        std::fs::rename(&partial, &png).map_err(|e| results::Error::io(&png, e))?;
        written.extend([svg, png]);
    }
    Ok(written)
}

/// Writes `report.html`, `summary.md` and `charts/<name>.{svg,png}` into `dir`, each
/// atomically (temporary file, then rename).
pub fn write_report(results: &Results, dir: &Path) -> Result<Written> {
    let charts = write_charts(&chart::charts(results), &dir.join("charts"))?;
    let html = dir.join("report.html");
    results::atomic::write(&html, &Html.serialize(results)?)?;
    let markdown = dir.join("summary.md");
    results::atomic::write(&markdown, &Markdown.serialize(results)?)?;
    Ok(Written {
        html,
        markdown,
        charts,
    })
}
