//! The HTML report: one self-contained page (charts inline as SVG) rendered from a
//! serialisable view-model and the template `templates/report.html`. Every page of the
//! crate (this one, the report across machines) extends `templates/page.html`: one
//! stylesheet, one chart grid, one table layout.

use results::Results;
use serde::Serialize;

use crate::chart::{charts, render_svg, Chart, PlotContext};
use crate::claims::claims;
use crate::tables::{self, Table};
use crate::Result;

/// The templates of every HTML page, by name (what `{% extends %}` refers to).
const TEMPLATES: [(&str, &str); 3] = [
    ("page.html", include_str!("../../templates/page.html")),
    ("report.html", include_str!("../../templates/report.html")),
    (
        "machines.html",
        include_str!("../../templates/machines.html"),
    ),
];

#[derive(Serialize)]
struct ClaimView {
    claim: &'static str,
    measured: String,
    verdict: crate::claims::Verdict,
    verdict_label: String,
}

/// A chart as a page shows it: inline SVG under its name.
#[derive(Serialize)]
pub(crate) struct ChartView {
    name: &'static str,
    svg: String,
}

/// Charts rendered to inline SVG, in order.
pub(crate) fn inline_charts(charts: Vec<Chart>) -> Result<Vec<ChartView>> {
    charts
        .into_iter()
        .map(|c| {
            Ok(ChartView {
                name: c.name,
                svg: render_svg(&c.data, PlotContext::default())?,
            })
        })
        .collect()
}

/// Renders the page `template` (one of [`TEMPLATES`]) from `view`.
pub(crate) fn render_page(template: &str, view: impl Serialize) -> Result<Vec<u8>> {
    let mut env = minijinja::Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    let html = env
        .get_template(template)?
        .render(minijinja::value::Serde(view))?;
    Ok(html.into_bytes())
}

/// Everything the template shows.
#[derive(Serialize)]
struct View {
    suite: String,
    description: String,
    run: Vec<[String; 2]>,
    random_weights: bool,
    claims: Vec<ClaimView>,
    charts: Vec<ChartView>,
    tables: Vec<Table>,
}

fn view(results: &Results) -> Result<View> {
    let m = &results.machine;
    let run = [
        ("machine", {
            let mut text = format!(
                "{} ({}), {} logical cores, {} RAM",
                m.cpu_model,
                m.cpu_features.join(", "),
                m.logical_cores,
                crate::format::bytes(m.ram_bytes as f64)
            );
            if m.cores() != m.logical_cores || m.memory_limit_bytes.is_some() {
                text.push_str(&format!(
                    "; the run could use {} cores and {} (affinity, cgroup)",
                    m.cores(),
                    crate::format::bytes(m.memory_bytes() as f64)
                ));
            }
            text
        }),
        ("os", format!("{} (kernel {}, {})", m.os, m.kernel, m.arch)),
        (
            "threads",
            results
                .settings
                .threads_used
                .map_or("?".into(), |t| t.to_string()),
        ),
        (
            "dtype / device",
            format!("{} / {}", results.settings.dtype, results.settings.device),
        ),
        ("started", results.started_at.clone()),
        ("duration", format!("{:.0} s", results.duration_s)),
        (
            "tool",
            format!(
                "{} {} (commit {})",
                results.tool.name, results.tool.version, results.tool.git_commit
            ),
        ),
        (
            "crates",
            results
                .tool
                .crate_versions
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("suite file", results.suite.path.clone()),
    ]
    .map(|(k, v)| [k.to_string(), v])
    .to_vec();
    let charts = inline_charts(charts(results))?;
    let mut tables = vec![tables::models(results)];
    tables.extend(tables::metrics(results));
    tables.extend(
        [
            tables::dtypes(results),
            tables::accuracy(results),
            tables::perplexity(results),
            tables::gates(results),
            tables::max_context(results),
            tables::scaling(results),
            tables::crossovers(results),
            tables::implementations(results),
            tables::fairness(results),
            tables::failures(results),
        ]
        .into_iter()
        .flatten(),
    );
    Ok(View {
        suite: results.suite.config.name.clone(),
        description: results.suite.config.description.clone(),
        run,
        random_weights: results.models.iter().any(|m| m.weights.is_random()),
        claims: claims(results)
            .into_iter()
            .map(|c| ClaimView {
                claim: c.claim,
                verdict_label: c.verdict_text(),
                measured: c.measured,
                verdict: c.verdict,
            })
            .collect(),
        charts,
        tables,
    })
}

/// The self-contained HTML page.
pub struct Html;

impl super::Exporter for Html {
    fn serialize(&self, results: &Results) -> Result<Vec<u8>> {
        render_page("report.html", view(results)?)
    }
}
