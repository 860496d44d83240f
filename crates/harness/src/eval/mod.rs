//! Evaluating accuracy across sequence lengths: synthetic tasks, user task files and
//! perplexity corpora, per model, in-process, with results written after every cell so
//! an interrupted evaluation resumes where it stopped. Compute threads are the
//! process's (`RAYON_NUM_THREADS`): the CLI starts the evaluation in a process that has
//! the suite's.
//!
//! The pipeline is generate -> score -> records: [`crate::tasks`] makes examples in the
//! model's tokenizer, [`crate::score`] and [`crate::tasks::taskfile`] score them,
//! [`crate::perplexity`] measures losses, and this module turns scores into
//! [`Record`]s (0/1 samples with a Wilson interval for accuracies).

pub mod config;
pub mod gate;

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use crate::adapters::BuildOptions;
use crate::analysis::analyse;
use crate::machine::Machine;
use crate::model::{CausalLm, ModelInfo};
use crate::perplexity::{buckets, corpus_files, document_loss};
use crate::registry;
use crate::results::{
    Failure, Metric, Record, Results, RunSettings, SuiteRecord, TaskFields, SCHEMA_VERSION,
};
use crate::runner::tool;
use crate::score::score_example;
use crate::stats::{summarize, wilson_interval, CONFIDENCE};
use crate::suite::Suite;
use crate::tasks::taskfile::{score_item, Item, TaskFile};
use crate::tasks::{self, TaskKind};
use crate::tokenizer::{split_model_spec, Tokenizer, TokenizerSpec};
use crate::{Error, Result};

use config::{AccuracyConfig, CorpusConfig};

/// One unit of work: a task, task file or corpus on one model at one length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalCell {
    pub model: String,
    pub task: String,
    /// `None` for task files, which are not generated per length.
    pub seq_len: Option<usize>,
}

impl std::fmt::Display for EvalCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq_len {
            Some(l) => write!(f, "{} {} @ {l}", self.model, self.task),
            None => write!(f, "{} {}", self.model, self.task),
        }
    }
}

/// Receives progress; the CLI draws it. Library code never prints.
pub trait EvalObserver {
    fn model_loading(&mut self, _model: &str) {}
    /// `items`: examples, task-file items or documents the cell will score.
    fn cell_started(&mut self, _cell: &EvalCell, _index: usize, _total: usize, _items: usize) {}
    fn item_done(&mut self, _cell: &EvalCell, _done: usize) {}
    fn cell_finished(&mut self, _cell: &EvalCell, _result: std::result::Result<&[Record], &str>) {}
    /// The cell's records were already in the results being resumed.
    fn cell_skipped(&mut self, _cell: &EvalCell, _index: usize, _total: usize) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl EvalObserver for Silent {}

/// Where results go and whether to resume them.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The results file, rewritten after every cell.
    pub results: PathBuf,
    /// Keep the records of an earlier run of the same suite in `results` and run only
    /// the missing cells.
    pub resume: bool,
}

/// What a cell evaluates.
enum Work<'a> {
    Task(TaskKind, usize),
    File(&'a TaskFile),
    Corpus(&'a CorpusConfig, &'a [(PathBuf, String)], usize),
}

impl Work<'_> {
    fn name(&self) -> String {
        match self {
            Work::Task(k, _) => k.to_string(),
            Work::File(f) => f.name.clone(),
            Work::Corpus(c, _, _) => c.name(),
        }
    }

    fn seq_len(&self) -> Option<usize> {
        match self {
            Work::Task(_, l) | Work::Corpus(_, _, l) => Some(*l),
            Work::File(_) => None,
        }
    }

    /// Whether `records` already hold this cell's results for `model`.
    fn done(&self, model: &str, records: &[Record]) -> bool {
        let (task, metric) = match self {
            Work::Task(..) | Work::File(_) => (self.name(), Metric::Accuracy),
            Work::Corpus(..) => (self.name(), Metric::BitsPerByte),
        };
        records.iter().any(|r| {
            r.model == model
                && r.metric == metric
                && r.task.task.as_deref() == Some(task.as_str())
                && (matches!(self, Work::File(_)) || Some(r.seq_len) == self.seq_len())
        })
    }
}

/// A model and the context its cells share.
struct Cx<'a> {
    suite: &'a Suite,
    acc: &'a AccuracyConfig,
    model: &'a mut dyn CausalLm,
    tok: &'a dyn Tokenizer,
    longest: usize,
}

impl Cx<'_> {
    fn record(
        &self,
        metric: Metric,
        seq_len: usize,
        samples: Vec<f64>,
        task: TaskFields,
    ) -> Option<Record> {
        let info = self.model.info();
        let summary = summarize(&samples)?;
        Some(Record {
            suite: self.suite.config.name.clone(),
            model: info.spec.clone(),
            implementation: info.implementation.clone(),
            arch: info.arch,
            metric,
            seq_len,
            unit: metric.unit(),
            samples,
            summary,
            task,
        })
    }

    /// An accuracy record: 0/1 samples with their Wilson interval.
    fn accuracy(
        &self,
        metric: Metric,
        seq_len: usize,
        hits: Vec<bool>,
        mut task: TaskFields,
    ) -> Option<Record> {
        let k = hits.iter().filter(|&&h| h).count();
        task.wilson = Some(wilson_interval(k, hits.len(), CONFIDENCE));
        let samples = hits
            .into_iter()
            .map(|h| if h { 1.0 } else { 0.0 })
            .collect();
        self.record(metric, seq_len, samples, task)
    }

    fn run(
        &mut self,
        work: &Work,
        cell: &EvalCell,
        obs: &mut dyn EvalObserver,
    ) -> Result<Vec<Record>> {
        match work {
            Work::Task(kind, len) => self.task(*kind, *len, cell, obs),
            Work::File(f) => self.file(f, cell, obs),
            Work::Corpus(c, docs, len) => self.corpus(c, docs, *len, cell, obs),
        }
    }

    fn check_length(&self, len: usize) -> Result<()> {
        match self.model.info().max_seq_len {
            Some(max) if len > max => Err(Error::Unsupported(format!(
                "{len} tokens, but {} supports at most {max} positions",
                self.model.info().spec
            ))),
            _ => Ok(()),
        }
    }

    fn task(
        &mut self,
        kind: TaskKind,
        len: usize,
        cell: &EvalCell,
        obs: &mut dyn EvalObserver,
    ) -> Result<Vec<Record>> {
        self.check_length(len)?;
        let vocab = self.model.info().vocab;
        let seed = self.suite.config.seed;
        let examples = tasks::generate(kind, self.tok, vocab, len, &self.acc.params, seed)?;
        let chance = tasks::chance(kind, &self.acc.params, vocab.min(self.tok.vocab_size()));
        // (depth, exact-match hits, mean log-likelihoods), in the order depths were given.
        let mut groups: Vec<(Option<f64>, Vec<bool>, Vec<f64>)> = Vec::new();
        for (i, ex) in examples.iter().enumerate() {
            let scores = score_example(self.model, ex)?;
            let g = match groups.iter().position(|g| g.0 == ex.depth) {
                Some(g) => g,
                None => {
                    groups.push((ex.depth, Vec::new(), Vec::new()));
                    groups.len() - 1
                }
            };
            for s in scores {
                groups[g].1.push(s.correct);
                groups[g].2.push(s.mean_log_likelihood());
            }
            obs.item_done(cell, i + 1);
        }
        let mut out = Vec::new();
        for (depth, hits, ll) in groups {
            let fields = TaskFields {
                task: Some(kind.to_string()),
                depth,
                wilson: None,
                chance: Some(chance),
                seed: Some(seed),
            };
            out.extend(self.accuracy(Metric::Accuracy, len, hits, fields.clone()));
            out.extend(self.record(
                Metric::AnswerLogLikelihood,
                len,
                ll,
                TaskFields {
                    chance: None,
                    ..fields
                },
            ));
        }
        Ok(out)
    }

    fn file(
        &mut self,
        f: &TaskFile,
        cell: &EvalCell,
        obs: &mut dyn EvalObserver,
    ) -> Result<Vec<Record>> {
        let (mut acc, mut norm, mut longest) = (Vec::new(), Vec::new(), 0);
        for (i, (line, item)) in f.items.iter().enumerate() {
            let at_line = |e: Error| Error::TaskFile {
                path: f.path.clone(),
                line: *line,
                message: e.to_string(),
            };
            let s = score_item(self.model, self.tok, item).map_err(at_line)?;
            self.check_length(s.tokens).map_err(at_line)?;
            longest = longest.max(s.tokens);
            acc.push(s.correct);
            norm.extend(s.correct_norm);
            obs.item_done(cell, i + 1);
        }
        let choices: Vec<f64> = f
            .items
            .iter()
            .filter_map(|(_, it)| match it {
                Item::Choice(c) => Some(1.0 / c.choices.len() as f64),
                Item::Generate(_) => None,
            })
            .collect();
        let fields = |chance: f64| TaskFields {
            task: Some(f.name.clone()),
            chance: Some(chance),
            ..TaskFields::default()
        };
        let mut out = Vec::new();
        out.extend(self.accuracy(Metric::Accuracy, longest, acc, fields(f.chance())));
        if !norm.is_empty() {
            let chance = choices.iter().sum::<f64>() / choices.len() as f64;
            out.extend(self.accuracy(Metric::AccuracyNorm, longest, norm, fields(chance)));
        }
        Ok(out)
    }

    fn corpus(
        &mut self,
        c: &CorpusConfig,
        docs: &[(PathBuf, String)],
        window: usize,
        cell: &EvalCell,
        obs: &mut dyn EvalObserver,
    ) -> Result<Vec<Record>> {
        self.check_length(window)?;
        let fields = TaskFields {
            task: Some(c.name()),
            ..TaskFields::default()
        };
        let mut bpb = Vec::with_capacity(docs.len());
        let mut losses = Vec::with_capacity(docs.len());
        for (i, (path, text)) in docs.iter().enumerate() {
            let tokens = self.tok.encode(text)?;
            if tokens.len() < 2 {
                return Err(Error::Task {
                    task: c.name(),
                    message: format!("{} has fewer than two tokens", path.display()),
                });
            }
            let d = document_loss(self.model, self.tok, &tokens, window)?;
            bpb.push(d.bits_per_byte());
            losses.push(d);
            obs.item_done(cell, i + 1);
        }
        let mut out: Vec<Record> = self
            .record(Metric::BitsPerByte, window, bpb, fields.clone())
            .into_iter()
            .collect();
        // The loss curve comes from the longest window only, so that positions mean
        // the same thing in every record.
        if window == self.longest {
            for (lo, hi) in buckets(window) {
                let per_doc: Vec<f64> = losses.iter().filter_map(|d| d.mean_loss(lo, hi)).collect();
                out.extend(self.record(Metric::LossByPosition, hi, per_doc, fields.clone()));
            }
        }
        Ok(out)
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// An earlier results file that can be resumed with this suite, if any.
fn previous(suite: &Suite, opts: &EvalOptions) -> Result<Option<Results>> {
    if !opts.resume || !opts.results.exists() {
        return Ok(None);
    }
    let prev = Results::load(&opts.results)?;
    let same = prev.suite.config.seed == suite.config.seed
        && prev.suite.config.dtype == suite.config.dtype
        && prev.suite.config.accuracy.as_ref().map(|a| &a.params)
            == suite.config.accuracy.as_ref().map(|a| &a.params);
    if !same {
        return Err(Error::Results {
            path: opts.results.clone(),
            message: "was written with another seed, dtype or task parameters: it cannot be \
                      resumed with this suite (choose another --out, or drop --resume)"
                .into(),
        });
    }
    Ok(Some(prev))
}

/// Runs the accuracy part of `suite`, saving results to `opts.results` after every cell.
pub fn run_eval(suite: &Suite, opts: &EvalOptions, obs: &mut dyn EvalObserver) -> Result<Results> {
    let c = &suite.config;
    let acc = c.accuracy.as_ref().ok_or_else(|| Error::Suite {
        path: suite.path.clone(),
        message: "has no `[accuracy]` section: nothing to evaluate".into(),
    })?;
    let files = acc
        .task_files
        .iter()
        .map(|f| TaskFile::load(&f.path, f.name.as_deref()))
        .collect::<Result<Vec<_>>>()?;
    let mut corpora = Vec::with_capacity(acc.corpora.len());
    for corpus in &acc.corpora {
        let docs = corpus_files(&corpus.path)?
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
                Ok((p, text))
            })
            .collect::<Result<Vec<_>>>()?;
        corpora.push((corpus, docs));
    }
    let mut work: Vec<Work> = Vec::new();
    for &len in &c.seq_lens {
        work.extend(acc.tasks.iter().map(|&k| Work::Task(k, len)));
    }
    work.extend(files.iter().map(Work::File));
    for (corpus, docs) in &corpora {
        for &len in &c.seq_lens {
            work.push(Work::Corpus(corpus, docs, len));
        }
    }

    let prev = previous(suite, opts)?;
    let clock = Instant::now();
    let started_at = prev
        .as_ref()
        .map(|p| p.started_at.clone())
        .unwrap_or_else(now_rfc3339);
    let earlier_s = prev.as_ref().map_or(0.0, |p| p.duration_s);
    let mut records: Vec<Record> = prev.as_ref().map(|p| p.records.clone()).unwrap_or_default();
    let mut models: Vec<ModelInfo> = prev.map(|p| p.models).unwrap_or_default();
    let mut failures: Vec<Failure> = Vec::new();
    let machine = Machine::capture();
    let save =
        |records: &[Record], models: &[ModelInfo], failures: &[Failure]| -> Result<Results> {
            let results = Results {
                schema_version: SCHEMA_VERSION,
                tool: tool(),
                started_at: started_at.clone(),
                finished_at: now_rfc3339(),
                duration_s: earlier_s + clock.elapsed().as_secs_f64(),
                machine: machine.clone(),
                settings: RunSettings {
                    threads_requested: c.threads,
                    threads_used: Some(candle_core::utils::get_num_threads()),
                    dtype: format!("{:?}", c.dtype).to_lowercase(),
                    device: "cpu".into(),
                },
                suite: SuiteRecord {
                    path: suite.path.display().to_string(),
                    source: suite.source.clone(),
                    config: c.clone(),
                },
                models: models.to_vec(),
                records: records.to_vec(),
                failures: failures.to_vec(),
                analysis: analyse(models, records),
                gates: gate::check(models, records, &acc.gates),
            };
            results.save(&opts.results)?;
            Ok(results)
        };

    let total = work.len() * c.models.len();
    let longest = c.seq_lens.iter().copied().max().unwrap_or(0);
    let opts_build = BuildOptions {
        dtype: c.dtype.candle(),
        seed: c.seed,
        ..BuildOptions::default()
    };
    let mut index = 0;
    for raw in &c.models {
        let (spec, tok_spec) = split_model_spec(raw)?;
        let pending: Vec<&Work> = work.iter().filter(|w| !w.done(&spec, &records)).collect();
        for w in work.iter().filter(|w| w.done(&spec, &records)) {
            let cell = EvalCell {
                model: spec.clone(),
                task: w.name(),
                seq_len: w.seq_len(),
            };
            obs.cell_skipped(&cell, index, total);
            index += 1;
        }
        if pending.is_empty() {
            continue;
        }
        obs.model_loading(&spec);
        let loaded = load(&spec, tok_spec, &opts_build);
        let (mut model, tok) = match loaded {
            Ok(x) => x,
            Err(e) => {
                for w in pending {
                    let cell = EvalCell {
                        model: spec.clone(),
                        task: w.name(),
                        seq_len: w.seq_len(),
                    };
                    obs.cell_started(&cell, index, total, 0);
                    index += 1;
                    let error = format!("{}: {e}", w.name());
                    obs.cell_finished(&cell, Err(&error));
                    failures.push(Failure {
                        model: spec.clone(),
                        seq_len: w.seq_len().unwrap_or(0),
                        error,
                    });
                }
                save(&records, &models, &failures)?;
                continue;
            }
        };
        let mut info = model.info().clone();
        info.tokenizer = Some(tok.describe());
        models.retain(|m| m.spec != spec);
        models.push(info);
        let mut cx = Cx {
            suite,
            acc,
            model: model.as_mut(),
            tok: tok.as_ref(),
            longest,
        };
        for w in pending {
            let cell = EvalCell {
                model: spec.clone(),
                task: w.name(),
                seq_len: w.seq_len(),
            };
            let items = match w {
                Work::Task(k, _) => {
                    acc.params.examples
                        * if k.uses_depths() {
                            acc.params.depths.len()
                        } else {
                            1
                        }
                }
                Work::File(f) => f.items.len(),
                Work::Corpus(_, docs, _) => docs.len(),
            };
            obs.cell_started(&cell, index, total, items);
            index += 1;
            match cx.run(w, &cell, obs) {
                Ok(new) => {
                    obs.cell_finished(&cell, Ok(&new));
                    records.extend(new);
                }
                Err(e) => {
                    let error = format!("{}: {e}", w.name());
                    obs.cell_finished(&cell, Err(&error));
                    failures.push(Failure {
                        model: spec.clone(),
                        seq_len: w.seq_len().unwrap_or(0),
                        error,
                    });
                }
            }
            save(&records, &models, &failures)?;
        }
    }
    save(&records, &models, &failures)
}

/// Builds a model and its tokenizer, and checks that they fit together.
fn load(
    spec: &str,
    tok_spec: Option<TokenizerSpec>,
    opts: &BuildOptions,
) -> Result<(Box<dyn CausalLm>, Box<dyn Tokenizer>)> {
    let (_, parsed) = registry::resolve(spec)?;
    let tok_spec = match tok_spec {
        Some(t) => t,
        None => TokenizerSpec::default_for(&parsed)?,
    };
    let tok = tok_spec.load()?;
    let mut model = registry::build(spec, opts)?;
    let vocab = model.info().vocab;
    if tok.vocab_size() > vocab {
        return Err(Error::Spec {
            spec: spec.to_string(),
            message: format!(
                "tokenizer {} has {} ids, but the model's vocabulary has {vocab}",
                tok.describe(),
                tok.vocab_size()
            ),
        });
    }
    model.reset()?;
    Ok((model, tok))
}
