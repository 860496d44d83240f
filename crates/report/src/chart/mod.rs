//! Charts with plotters, one file per chart kind. Each kind turns a results document
//! into [`PlotData`]; [`render_svg`] and [`render_png`] draw it. Every function returns
//! `Result`: a chart that cannot be drawn is an error, never a panic.

pub mod accuracy;
pub mod axis;
pub mod decode;
pub mod memory;
pub mod prefill;
pub mod recall_state;
pub mod speedup;
pub mod state;
pub mod train;
pub mod trend;

use std::path::Path;
use std::sync::Once;

use plotters::coord::combinators::LogCoord;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use results::{Metric, Results};

use self::axis::Axis;
use crate::{ReportError, Result};

/// One point with its spread (p10–p90).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<Point>,
}

/// A marked x position (e.g. a crossover length).
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub x: f64,
    pub label: String,
}

/// How the x axis is scaled and labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Log scale labelled at the measured lengths (tokens).
    Lengths,
    /// Linear scale labelled with integers (e.g. run numbers).
    Index,
    /// Log scale labelled with 1-2-5 numbers (e.g. sizes).
    Log,
}

/// How the y axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum YAxis {
    /// Log scale covering the data (costs).
    Log,
    /// Linear scale over a fixed range (accuracies in `[0, 1]`).
    Linear { lo: f64, hi: f64 },
}

/// What a chart shows: a y axis, series with error bars, optional markers.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotData {
    pub title: String,
    pub x_axis: XAxis,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// A horizontal reference line (e.g. ratio = 1).
    pub reference_y: Option<(f64, String)>,
    pub markers: Vec<Marker>,
    pub y_axis: YAxis,
}

/// Where a chart goes: its size in pixels.
#[derive(Debug, Clone, Copy)]
pub struct PlotContext {
    pub width: u32,
    pub height: u32,
}

impl Default for PlotContext {
    fn default() -> Self {
        Self {
            width: 900,
            height: 520,
        }
    }
}

/// A chart of a report: file stem, and what to draw.
#[derive(Debug, Clone)]
pub struct Chart {
    pub name: &'static str,
    pub data: PlotData,
}

/// Every chart the results support, in report order.
pub fn charts(results: &Results) -> Vec<Chart> {
    [
        prefill::chart(results),
        decode::chart(results),
        speedup::chart(results),
        memory::chart(results),
        state::chart(results),
        train::chart(results),
        accuracy::chart(results),
        recall_state::chart(results),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// One series per model of a metric's medians vs length, y scaled by `scale`, with the
/// fitted log-log slope in the legend when `with_slope`.
pub fn metric_series(
    results: &Results,
    metric: Metric,
    scale: f64,
    with_slope: bool,
) -> Vec<Series> {
    results
        .models
        .iter()
        .filter_map(|m| {
            let recs = results.series(&m.spec, metric);
            if recs.is_empty() {
                return None;
            }
            let slope = results
                .analysis
                .slopes
                .iter()
                .find(|s| s.model == m.spec && s.metric == metric)
                .filter(|_| with_slope)
                .map(|s| format!(" (slope {:.2})", s.slope))
                .unwrap_or_default();
            Some(Series {
                label: format!("{}{slope}", m.spec),
                points: recs
                    .iter()
                    .map(|r| Point {
                        x: r.seq_len as f64,
                        y: r.summary.median * scale,
                        lo: r.summary.p10 * scale,
                        hi: r.summary.p90 * scale,
                    })
                    .collect(),
            })
        })
        .collect()
}

fn chart_error(e: impl std::fmt::Display) -> ReportError {
    ReportError::Chart(e.to_string())
}

fn register_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        // Embedded, so PNGs render the same on a machine without system fonts.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::HACK_REGULAR,
        );
    });
}

fn legend_rows(data: &PlotData) -> usize {
    data.series.len() + data.markers.len() + usize::from(data.reference_y.is_some())
}

/// The share of the plot height to keep free at the top so that the legend (upper left,
/// about 20 px a row of a ~400 px plot) sits above the data instead of over it.
fn legend_headroom(data: &PlotData) -> f64 {
    ((legend_rows(data) as f64 * 20.0 + 24.0) / 400.0).min(0.6)
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// An axis as plotters draws it: mesh lines and labels at exactly the ticks of an
/// [`Axis`] (plotters' own choice leaves a log range of less than a decade unlabelled).
struct Coord {
    scale: Scale,
    ticks: Vec<f64>,
}

enum Scale {
    Linear(RangedCoordf64),
    Log(LogCoord<f64>),
}

impl From<&Axis> for Coord {
    fn from(axis: &Axis) -> Self {
        let range = axis.range.clone();
        Self {
            scale: if axis.log {
                Scale::Log(range.log_scale().into())
            } else {
                Scale::Linear(range.into())
            },
            ticks: axis.ticks.clone(),
        }
    }
}

impl Ranged for Coord {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        match &self.scale {
            Scale::Linear(c) => c.map(value, limit),
            Scale::Log(c) => c.map(value, limit),
        }
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Bold mesh lines at the ticks, no light ones.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        match &self.scale {
            Scale::Linear(c) => c.range(),
            Scale::Log(c) => c.range(),
        }
    }
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &PlotData) -> Result<()> {
    root.fill(&WHITE).map_err(chart_error)?;
    let no_data = || ReportError::Chart(format!("{}: no positive data to plot", data.title));
    let points = || data.series.iter().flat_map(|s| s.points.iter());
    let headroom = legend_headroom(data);
    let y = match data.y_axis {
        YAxis::Log => {
            let values = points()
                .flat_map(|p| [p.y, p.lo, p.hi])
                .chain(data.reference_y.iter().map(|r| r.0));
            Axis::log(values, headroom).ok_or_else(no_data)?
        }
        YAxis::Linear { lo, hi } => Axis::linear(lo, hi, headroom),
    };
    let x = match data.x_axis {
        XAxis::Lengths => {
            let measured: Vec<f64> = points().map(|p| p.x).collect();
            Axis::lengths(&measured, data.markers.iter().map(|m| m.x)).ok_or_else(no_data)?
        }
        XAxis::Index => Axis::index(points().map(|p| p.x.round() as usize).max().unwrap_or(1)),
        XAxis::Log => Axis::log(points().map(|p| p.x), 0.0).ok_or_else(no_data)?,
    };
    draw_on(root, data, &x, &y)
}

fn draw_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &PlotData,
    x: &Axis,
    y: &Axis,
) -> Result<()> {
    let (y0, y1) = (y.range.start, y.range.end);
    let mut chart = ChartBuilder::on(root)
        .caption(&data.title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(78)
        .build_cartesian_2d(Coord::from(x), Coord::from(y))
        .map_err(chart_error)?;
    let (x0, x1) = {
        let r = chart.x_range();
        (r.start, r.end)
    };
    chart
        .configure_mesh()
        .x_desc(&data.x_label)
        .y_desc(&data.y_label)
        .x_label_formatter(&|v| x.label(*v))
        .y_label_formatter(&|v| y.label(*v))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(chart_error)?;
    if let Some((y, label)) = &data.reference_y {
        let style = BLACK.mix(0.6).stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new([(x0, *y), (x1, *y)], 6, 4, style))
            .map_err(chart_error)?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    for m in &data.markers {
        let style = RGBColor(120, 120, 120).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new([(m.x, y0), (m.x, y1)], 8, 5, style))
            .map_err(chart_error)?
            .label(m.label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    for (i, s) in data.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let line = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(s.points.iter().map(|p| (p.x, p.y)), line))
            .map_err(chart_error)?
            .label(s.label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], line));
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(|p| Circle::new((p.x, p.y), 4, color.filled())),
            )
            .map_err(chart_error)?;
        chart
            .draw_series(
                s.points.iter().filter(|p| p.hi > p.lo).map(|p| {
                    ErrorBar::new_vertical(p.x, p.lo, p.y, p.hi, color.stroke_width(1), 8)
                }),
            )
            .map_err(chart_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(chart_error)?;
    root.present().map_err(chart_error)?;
    Ok(())
}

/// Draws a chart as an SVG document.
pub fn render_svg(data: &PlotData, ctx: PlotContext) -> Result<String> {
    register_fonts();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (ctx.width, ctx.height)).into_drawing_area();
        draw(&root, data)?;
    }
    Ok(svg)
}

/// Draws a chart as a PNG file at `path` (the extension must be `.png`).
pub fn render_png(data: &PlotData, ctx: PlotContext, path: &Path) -> Result<()> {
    register_fonts();
    let root = BitMapBackend::new(path, (ctx.width, ctx.height)).into_drawing_area();
    draw(&root, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of every `<text>` element of an SVG document.
    fn texts(svg: &str) -> Vec<&str> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| t.split_once('>')?.1.split_once("</text>"))
            .map(|(text, _)| text.trim())
            .collect()
    }

    #[test]
    fn a_log_range_narrower_than_a_decade_has_labelled_y_ticks() {
        // Decode latency of the default suite, 23–28 ms: no power of ten inside.
        let series = |label: &str, ys: [f64; 3]| Series {
            label: label.into(),
            points: [128.0, 1024.0, 4096.0]
                .into_iter()
                .zip(ys)
                .map(|(x, y)| Point {
                    x,
                    y,
                    lo: y * 0.98,
                    hi: y * 1.02,
                })
                .collect(),
        };
        let data = PlotData {
            title: "decode".into(),
            x_axis: XAxis::Lengths,
            x_label: "depth".into(),
            y_label: "ms per token".into(),
            series: vec![
                series("rwkv", [23.1, 23.4, 23.9]),
                series("llama", [24.0, 25.2, 27.9]),
            ],
            reference_y: None,
            markers: Vec::new(),
            y_axis: YAxis::Log,
        };
        let svg = render_svg(&data, PlotContext::default()).expect("drawn");
        let texts = texts(&svg);
        for label in ["128", "1k", "4k", "20", "22", "24", "26", "28", "30"] {
            assert!(texts.contains(&label), "no label {label} in {texts:?}");
        }
    }
}
