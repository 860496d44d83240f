//! The "training costs 40–60 % less" claim, judged from training-step records with
//! known ratios: supported from the length where the transformer's step is 1.67× or
//! more, not supported below it, inconclusive when the interval straddles it.

use std::path::Path;

use report::claims::{claims, Verdict};
use results::analysis::analyse;
use results::{Arch, Metric, Record, Results};

fn fixture() -> Results {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/results/ci.json");
    Results::load(&path).unwrap()
}

/// The fixture's pair with training records only: RWKV steps of 1000 ms at every
/// length, the transformer's `ratio(len)` times that, each with `spread` relative
/// jitter over 6 samples.
fn with_train(ratio: impl Fn(usize) -> f64, spread: f64) -> Results {
    let mut results = fixture();
    results.suite.config.train.tokens_per_step = 8192;
    let jitter = [-1.0, -0.6, -0.2, 0.2, 0.6, 1.0];
    let mut records = Vec::new();
    for m in &results.models {
        for len in [512usize, 1024, 2048, 4096, 8192] {
            let base = match m.arch {
                Arch::Rwkv => 1000.0,
                Arch::Transformer => 1000.0 * ratio(len),
            };
            let samples = jitter.iter().map(|j| base * (1.0 + spread * j)).collect();
            records.push(
                Record::from_samples(
                    "train",
                    m,
                    Metric::TrainStepTime,
                    len,
                    samples,
                    Default::default(),
                )
                .unwrap(),
            );
        }
    }
    results.analysis = analyse(&results.models, &records);
    results.records = records;
    results
}

fn train_claim(results: &Results) -> report::claims::Claim {
    claims(results)
        .into_iter()
        .find(|c| c.claim == "training costs 40–60 % less")
        .unwrap()
}

#[test]
fn supported_from_the_length_where_the_saving_reaches_40_percent() {
    let r = with_train(|len| if len >= 2048 { 2.0 } else { 1.2 }, 0.02);
    let c = train_claim(&r);
    assert_eq!(c.verdict, Verdict::Supported, "{}", c.measured);
    assert!(
        c.measured.contains("at least 40 % less from 2k"),
        "{}",
        c.measured
    );
    assert!(
        c.measured.contains("8192 tokens per step"),
        "{}",
        c.measured
    );
    assert!(
        c.measured.contains("50 % less at the longest"),
        "{}",
        c.measured
    );
}

#[test]
fn more_than_claimed_is_said() {
    let c = train_claim(&with_train(|_| 4.0, 0.02));
    assert_eq!(c.verdict, Verdict::Supported);
    assert!(c.measured.contains("more than claimed"), "{}", c.measured);
    assert!(c.measured.contains("from 512"), "{}", c.measured);
}

#[test]
fn not_supported_when_the_saving_stays_small() {
    let c = train_claim(&with_train(|_| 1.2, 0.02));
    assert_eq!(c.verdict, Verdict::NotSupported, "{}", c.measured);
    assert!(
        c.measured.contains("not 40 % less at any length"),
        "{}",
        c.measured
    );
}

#[test]
fn inconclusive_when_the_interval_straddles_the_threshold() {
    let c = train_claim(&with_train(|_| 1.67, 0.3));
    assert_eq!(c.verdict, Verdict::Inconclusive, "{}", c.measured);
    assert!(c.to_decide.is_some());
}

#[test]
fn not_measured_without_training_cells() {
    let c = train_claim(&fixture());
    assert_eq!(c.verdict, Verdict::NotMeasured);
}
