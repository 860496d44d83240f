//! The multi-machine report on runs made from the committed `suites/ci.toml` run: two
//! machines made by changing a copy's machine capture, with samples scaled so that
//! RWKV wins on one and loses on the other. Files are grouped by capture, not by name;
//! one machine's runs are combined, the later run winning a cell both measured.

use std::path::{Path, PathBuf};

use report::machines::{self, Machines, MachinesExporter, Outcome, Run};
use report::ReportError;
use results::stats::summarize;
use results::{Arch, Metric, Results};

fn fixture() -> Results {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/results/ci.json");
    Results::load(&path).unwrap()
}

fn run(file: &str, results: Results) -> Run {
    Run {
        file: file.into(),
        results,
    }
}

/// Multiplies the samples of one architecture's `metric` by `factor(length)`.
fn scale(results: &mut Results, arch: Arch, metric: Metric, factor: impl Fn(usize) -> f64) {
    for r in results
        .records
        .iter_mut()
        .filter(|r| r.arch == arch && r.metric == metric)
    {
        let f = factor(r.seq_len);
        r.samples.iter_mut().for_each(|s| *s *= f);
        r.summary = summarize(&r.samples).unwrap();
    }
}

/// The fixture as measured on another machine, a 4-core AMD EPYC, where RWKV's decode
/// steps take a quarter of the time and the transformer's prefill from 64 tokens on a
/// hundred times as long.
fn epyc() -> Results {
    let mut r = fixture();
    r.machine.cpu_model = "AMD EPYC 9B14".into();
    r.machine.usable_cores = Some(4);
    r.machine.logical_cores = 8;
    r.machine.hostname = "epyc-1".into();
    scale(&mut r, Arch::Rwkv, Metric::DecodeLatency, |_| 0.25);
    scale(&mut r, Arch::Transformer, Metric::PrefillTime, |len| {
        if len >= 64 {
            100.0
        } else {
            1.0
        }
    });
    r
}

/// A later re-run of the EPYC's decode cells at 256 tokens, on another host of the same
/// kind, in which RWKV's step is ten times faster than the fixture's.
fn epyc_rerun() -> Results {
    let mut r = epyc();
    r.machine.hostname = "epyc-2".into();
    r.machine.kernel = "6.12".into();
    r.finished_at = "2027-01-01T00:00:00Z".into();
    r.records
        .retain(|x| x.metric == Metric::DecodeLatency && x.seq_len == 256);
    scale(&mut r, Arch::Rwkv, Metric::DecodeLatency, |_| 0.4);
    r
}

fn three_files() -> Machines {
    Machines::from_runs(vec![
        run("x.json", fixture()),
        run("y.json", epyc()),
        run("z.json", epyc_rerun()),
    ])
    .unwrap()
}

#[test]
fn files_are_grouped_by_machine_capture_not_by_file_name() {
    let m = three_files();
    assert_eq!(m.machines.len(), 2);
    assert_eq!(m.files(), 3);
    let labels: Vec<&str> = m.machines.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "AMD EPYC 9B14, 4 cores, 24 GiB, avx512f, 2 threads",
            "Intel(R) Xeon(R) Processor, 2 cores, 24 GiB, avx512f, 2 threads"
        ]
    );
    let files =
        |i: usize| -> Vec<&str> { m.machines[i].runs.iter().map(|r| r.file.as_str()).collect() };
    assert_eq!(
        files(0),
        ["y.json", "z.json"],
        "two hosts, one kind of machine"
    );
    assert_eq!(files(1), ["x.json"]);

    // The cells both EPYC runs measured come from the later run, and the report says so.
    let epyc = &m.machines[0];
    assert_eq!(epyc.records.len(), fixture().records.len());
    assert_eq!(epyc.replaced.len(), 1);
    let replaced = &epyc.replaced[0];
    assert_eq!(replaced.kept.0, "z.json");
    assert_eq!(replaced.dropped.0, "y.json");
    assert_eq!(replaced.cells.len(), 2, "{:?}", replaced.cells);
    let decode_256 = epyc
        .analysis
        .speedups
        .iter()
        .find(|s| s.metric == Metric::DecodeLatency && s.seq_len == 256)
        .unwrap();
    let xeon_256 = m.machines[1]
        .analysis
        .speedups
        .iter()
        .find(|s| s.metric == Metric::DecodeLatency && s.seq_len == 256)
        .unwrap();
    // 0.25 × 0.4 of the fixture's RWKV step time: ten times the Xeon's speed-up.
    assert!(
        (decode_256.ratio / xeon_256.ratio - 10.0).abs() < 1e-6,
        "{} vs {}",
        decode_256.ratio,
        xeon_256.ratio
    );
    let notes = machines::tables::notes(&m);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("2 cells measured both in y.json")
                && n.contains("in z.json")
                && n.contains("the later run's records are kept")),
        "{notes:?}"
    );
}

#[test]
fn the_table_says_where_rwkv_wins_on_each_machine() {
    let m = three_files();
    let rows = machines::wins::rows(&m);
    let summary: Vec<(&str, Metric, String)> = rows
        .iter()
        .map(|r| (r.machine.as_str(), r.metric, r.verdict()))
        .collect();
    let epyc = "AMD EPYC 9B14, 4 cores, 24 GiB, avx512f, 2 threads";
    let xeon = "Intel(R) Xeon(R) Processor, 2 cores, 24 GiB, avx512f, 2 threads";
    let every = "at every length measured (16 to 256 tokens)";
    assert_eq!(
        summary,
        [
            (
                epyc,
                Metric::PrefillTime,
                "RWKV faster from 64 tokens".to_string()
            ),
            (epyc, Metric::DecodeLatency, format!("RWKV faster {every}")),
            (
                xeon,
                Metric::PrefillTime,
                format!("transformer faster {every}")
            ),
            (
                xeon,
                Metric::DecodeLatency,
                format!("transformer faster {every}")
            ),
        ]
    );
    assert_eq!(
        rows[0].outcome,
        Outcome::RwkvFaster {
            from: 64,
            throughout: false
        }
    );
    assert_eq!(
        rows[0].pair,
        "rwkv7-upstream:preset=tiny (f32) vs llama-upstream:preset=tiny (f32)"
    );

    let table = machines::tables::wins(&m);
    assert_eq!(table.title, "Where RWKV wins, on which hardware");
    assert_eq!(table.rows.len(), 4);
    let row = &table.rows[0];
    assert_eq!(row[1], "2 threads");
    assert_eq!(row[2], "prefill time");
    assert!(
        row[4].ends_with(" at 16") && row[5].ends_with(" at 256"),
        "{row:?}"
    );
    assert!(row[6].starts_with("≈ ") && row[6].contains("(between 16 and 64)"));
    assert_eq!(row[7], "64");
    assert_eq!(row[8], "RWKV faster from 64 tokens");
    assert_eq!(table.rows[2][7], "not confirmed");

    let machines_table = machines::tables::machines(&m);
    assert_eq!(machines_table.rows.len(), 2);
    let epyc_row = &machines_table.rows[0];
    assert_eq!(epyc_row[2], "4 / 8, 2 physical");
    assert_eq!(epyc_row[4], "avx2, avx512f, fma");
    assert_eq!(epyc_row[5], "not calibrated");
    assert_eq!(epyc_row[8], "y.json, z.json");
}

#[test]
fn charts_html_and_markdown_are_written() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("machines-report");
    let _ = std::fs::remove_dir_all(&dir);
    let written = machines::write(&three_files(), &dir).unwrap();
    assert_eq!(written.html, dir.join("machines.html"));
    assert_eq!(written.markdown, dir.join("machines.md"));
    for chart in ["machines_prefill_speedup", "machines_decode_speedup"] {
        for ext in ["svg", "png"] {
            let path = dir.join(format!("charts/{chart}.{ext}"));
            assert!(written.charts.contains(&path), "{}", path.display());
            assert!(std::fs::metadata(&path).unwrap().len() > 1000);
        }
    }
    let html = std::fs::read_to_string(&written.html).unwrap();
    assert_eq!(html.matches("<svg").count(), 2, "both charts inline");
    assert!(!html.contains("src=\"http") && !html.contains("<link") && !html.contains("<script"));
    assert!(!html.contains("NaN") && !html.contains("{{"));
    assert!(html.contains("Where RWKV wins, on which hardware"));
    assert!(html.contains("AMD EPYC 9B14, 4 cores, 24 GiB, avx512f, 2 threads"));
    let md = std::fs::read_to_string(&written.markdown).unwrap();
    assert!(
        md.contains("### Where RWKV wins, on which hardware"),
        "{md}"
    );
    assert!(md.contains("### Machines"), "{md}");
    assert!(md.contains("RWKV faster from 64 tokens"), "{md}");
    assert_eq!(
        md,
        String::from_utf8(machines::Markdown.serialize(&three_files()).unwrap()).unwrap(),
        "deterministic"
    );
}

#[test]
fn threads_that_differ_on_one_machine_are_reported() {
    let mut rerun = epyc_rerun();
    rerun.settings.threads_used = Some(1);
    let m = Machines::from_runs(vec![
        run("x.json", fixture()),
        run("y.json", epyc()),
        run("z.json", rerun),
    ])
    .unwrap();
    assert_eq!(m.machines.len(), 2, "threads are a setting, not a machine");
    assert_eq!(
        m.machines[0].label,
        "AMD EPYC 9B14, 4 cores, 24 GiB, avx512f, 1 and 2 threads"
    );
    let notes = machines::tables::notes(&m);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("different threads (y.json: 2, z.json: 1)")),
        "{notes:?}"
    );
}

#[test]
fn runs_of_one_machine_are_refused_pointing_to_the_single_file_report() {
    let mut other_host = fixture();
    other_host.machine.hostname = "another".into();
    let err =
        Machines::from_runs(vec![run("a.json", fixture()), run("b.json", other_host)]).unwrap_err();
    assert!(matches!(err, ReportError::Data(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("all 2 files were recorded on one machine"),
        "{text}"
    );
    assert!(text.contains("rwkv-bench report FILE"), "{text}");
}

#[test]
fn an_unreadable_file_is_named() {
    let missing = PathBuf::from("no/such/results.json");
    let err = Machines::load(&[missing.clone(), missing]).unwrap_err();
    assert!(matches!(err, ReportError::Data(_)), "{err:?}");
    assert!(err.to_string().contains("no/such/results.json"), "{err}");
}
