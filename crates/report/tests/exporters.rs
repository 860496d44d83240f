//! Exporters on a fixed results file (a real `suites/ci.toml` run, committed), checked
//! against reviewed snapshots: a change to a table or the claims shows up in review.

use std::path::Path;

use report::{Exporter, Html, Markdown};
use results::compare::{compare, CompareOptions};
use results::Results;

fn fixture() -> Results {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/results/ci.json");
    Results::load(&path).unwrap()
}

#[test]
fn markdown_summary() {
    let md = String::from_utf8(Markdown.serialize(&fixture()).unwrap()).unwrap();
    insta::assert_snapshot!(md);
}

#[test]
fn comparison_markdown_with_an_injected_slowdown() {
    let base = fixture();
    let mut slow = base.clone();
    for r in slow.records.iter_mut().filter(|r| r.seq_len == 256) {
        r.samples.iter_mut().for_each(|s| *s *= 1.3);
        r.summary.median *= 1.3;
    }
    let opts = CompareOptions {
        gates: vec!["decode_latency@256=10%".parse().unwrap()],
        ..CompareOptions::default()
    };
    let cmp = compare(&base, &slow, &opts).unwrap();
    assert!(cmp.regressed());
    insta::assert_snapshot!(report::comparison::markdown(&cmp));
}

#[test]
fn html_is_self_contained_and_deterministic() {
    let results = fixture();
    let a = String::from_utf8(Html.serialize(&results).unwrap()).unwrap();
    let b = String::from_utf8(Html.serialize(&results).unwrap()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.matches("<svg").count(), 5);
    // Self-contained: no external scripts, styles or images.
    assert!(!a.contains("src=\"http") && !a.contains("<link") && !a.contains("<script"));
    assert!(a.contains("supported") && a.contains("not measured in this run"));
    assert!(a.contains(&results.machine.cpu_model));
}
