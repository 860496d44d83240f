//! Evaluating accuracy across sequence lengths: synthetic tasks, user task files and
//! perplexity corpora, per model, in-process, with results written after every cell so
//! an interrupted evaluation resumes where it stopped. Compute threads are the
//! process's (`RAYON_NUM_THREADS`): the CLI starts the evaluation in a process that has
//! the suite's.
//!
//! The pipeline is generate -> score -> records: [`crate::tasks`] makes examples in the
//! model's tokenizer, [`crate::score`] and [`crate::taskfile`] score them,
//! [`crate::perplexity`] measures losses, and this module turns scores into
//! [`Record`]s (0/1 samples with a Wilson interval for accuracies); the shared
//! [`Run`] pipeline records failures and assembles the results.

use std::path::PathBuf;

use models::tokenizer::{self, Tokenizer};
use models::{registry, weight_dtype, BuildOptions, CausalLm};
use results::accuracy::{AccuracyConfig, CorpusConfig};
use results::pipeline::{Cell, Observer, Phase, Run};
use results::stats::{wilson_interval, CONFIDENCE};
use results::suite::Suite;
use results::{Metric, ModelSpec, Record, Results, TaskFields};

use crate::perplexity::{buckets, corpus_files, document_loss};
use crate::score::score_example;
use crate::taskfile::{score_item, Item, TaskFile};
use crate::tasks::{self, TaskKind, TaskParams};
use crate::{Error, Result};

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
    /// A task at a length, with MQAR's key-value count where a grid sets it.
    Task(TaskKind, usize, Option<usize>),
    File(&'a TaskFile),
    Corpus(&'a CorpusConfig, &'a [(PathBuf, String)], usize),
}

impl Work<'_> {
    fn name(&self) -> String {
        match self {
            Work::Task(k, ..) => k.to_string(),
            Work::File(f) => f.name.clone(),
            Work::Corpus(c, _, _) => c.name(),
        }
    }

    fn cell(&self, model: &ModelSpec) -> Cell {
        let seq_len = match self {
            Work::Task(_, l, _) | Work::Corpus(_, _, l) => Some(*l),
            // Task files are not generated per length.
            Work::File(_) => None,
        };
        Cell {
            model: model.clone(),
            task: Some(self.name()),
            seq_len,
            pairs: match self {
                Work::Task(_, _, pairs) => *pairs,
                _ => None,
            },
        }
    }

    /// The metric whose record shows the cell was measured (a corpus's loss-by-position
    /// records sit at other lengths, so they do not count).
    fn headline(&self) -> Metric {
        match self {
            Work::Task(..) | Work::File(_) => Metric::Accuracy,
            Work::Corpus(..) => Metric::BitsPerByte,
        }
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
        let name = &self.suite.config.name;
        Record::from_samples(name, self.model.info(), metric, seq_len, samples, task)
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

    fn run(&mut self, work: &Work, cell: &Cell, obs: &mut dyn Observer) -> Result<Vec<Record>> {
        match work {
            Work::Task(kind, len, pairs) => self.task(*kind, *len, *pairs, cell, obs),
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
        pairs: Option<usize>,
        cell: &Cell,
        obs: &mut dyn Observer,
    ) -> Result<Vec<Record>> {
        self.check_length(len)?;
        let vocab = self.model.info().vocab;
        let seed = self.suite.config.seed;
        let params = match pairs {
            Some(k) => TaskParams {
                mqar_pairs: k,
                ..self.acc.params.clone()
            },
            None => self.acc.params.clone(),
        };
        let examples = tasks::generate(kind, self.tok, vocab, len, &params, seed)?;
        let chance = tasks::chance(kind, &params, vocab.min(self.tok.vocab_size()));

        let total = examples.len();
        obs.cell_progress(cell, Phase::Score, 0, total);
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
            obs.cell_progress(cell, Phase::Score, i + 1, total);
        }
        let mut out = Vec::new();
        for (depth, hits, ll) in groups {
            let fields = TaskFields {
                task: Some(kind.to_string()),
                depth,
                pairs,
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
        // The state or cache a whole example leaves behind: the memory the recall was
        // bought with (Zoology's x axis).
        if let Some(last) = examples.last() {
            self.model.reset()?;
            self.model.prefill(&last.tokens)?;
            let fields = TaskFields {
                task: Some(kind.to_string()),
                pairs,
                ..TaskFields::default()
            };
            let bytes = vec![self.model.state_bytes() as f64];
            out.extend(self.record(Metric::StateBytes, len, bytes, fields));
        }
        Ok(out)
    }

    fn file(&mut self, f: &TaskFile, cell: &Cell, obs: &mut dyn Observer) -> Result<Vec<Record>> {
        let (mut acc, mut norm, mut longest) = (Vec::new(), Vec::new(), 0);
        let total = f.items.len();
        obs.cell_progress(cell, Phase::Score, 0, total);
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
            obs.cell_progress(cell, Phase::Score, i + 1, total);
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
        cell: &Cell,
        obs: &mut dyn Observer,
    ) -> Result<Vec<Record>> {
        self.check_length(window)?;
        let fields = TaskFields {
            task: Some(c.name()),
            ..TaskFields::default()
        };
        let total = docs.len();
        obs.cell_progress(cell, Phase::Score, 0, total);
        let mut bpb = Vec::with_capacity(docs.len());
        let mut losses = Vec::with_capacity(docs.len());
        for (i, (path, text)) in docs.iter().enumerate() {
            let tokens = self.tok.encode(text)?;
            if tokens.len() < 2 {
                return Err(Error::task(
                    c.name(),
                    format!("{} has fewer than two tokens", path.display()),
                ));
            }
            let d = document_loss(self.model, self.tok, &tokens, window)?;
            bpb.push(d.bits_per_byte());
            losses.push(d);
            obs.cell_progress(cell, Phase::Score, i + 1, total);
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
        return Err(results::Error::Results {
            path: opts.results.clone(),
            message: "was written with another seed, dtype or task parameters: it cannot be \
                      resumed with this suite (choose another --out, or drop --resume)"
                .into(),
        }
        .into());
    }
    Ok(Some(prev))
}

/// Runs the accuracy part of `suite`, saving results to `opts.results` after every cell.
pub fn run_eval(suite: &Suite, opts: &EvalOptions, obs: &mut dyn Observer) -> Result<Results> {
    registry::check_suite(suite)?;
    let c = &suite.config;
    let acc = c.accuracy.as_ref().ok_or_else(|| {
        results::suite::suite_error(
            &suite.path,
            "has no `[accuracy]` section: nothing to evaluate",
        )
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
        for &kind in &acc.tasks {
            let grid = &acc.params.mqar_grid;
            if kind == TaskKind::Mqar && !grid.is_empty() {
                // Zoology's grid: every count that fits, at most a quarter of the length.
                work.extend(
                    grid.iter()
                        .filter(|&&k| 4 * k <= len)
                        .map(|&k| Work::Task(kind, len, Some(k))),
                );
            } else {
                work.push(Work::Task(kind, len, None));
            }
        }
    }
    work.extend(files.iter().map(Work::File));
    for (corpus, docs) in &corpora {
        for &len in &c.seq_lens {
            work.push(Work::Corpus(corpus, docs, len));
        }
    }

    let total = work.len() * c.models.len();
    let mut run = match previous(suite, opts)? {
        Some(prev) => Run::resume(suite, total, prev),
        None => Run::start(suite, total),
    };
    run.threads_used = Some(candle_core::utils::get_num_threads());
    let save = |run: &Run| -> Result<Results> {
        let results = run.results(&acc.gates);
        results.save(&opts.results)?;
        Ok(results)
    };
    let longest = c.seq_lens.iter().copied().max().unwrap_or(0);
    let build = BuildOptions {
        dtype: weight_dtype(c.dtype),
        seed: c.seed,
        ..BuildOptions::default()
    };
    for spec in &c.models {
        let mut pending = Vec::new();
        for w in &work {
            let cell = w.cell(spec);
            let done = run
                .records()
                .iter()
                .any(|r| r.metric == w.headline() && cell.holds(&r.key()));
            if done {
                run.skip(obs, &cell);
            } else {
                pending.push((cell, w));
            }
        }
        if pending.is_empty() {
            continue;
        }
        obs.model_loading(spec);
        let (mut model, tok) = match load(spec, &build) {
            Ok(x) => x,
            Err(e) => {
                for (cell, w) in pending {
                    run.begin(obs, &cell);
                    run.end(obs, &cell, Err(format!("{}: {e}", w.name())));
                }
                save(&run)?;
                continue;
            }
        };
        let mut info = model.info().clone();
        info.tokenizer = Some(tok.describe());
        run.add_model(info);
        let mut cx = Cx {
            suite,
            acc,
            model: model.as_mut(),
            tok: tok.as_ref(),
            longest,
        };
        for (cell, w) in pending {
            run.begin(obs, &cell);
            match cx.run(w, &cell, obs) {
                Ok(new) => {
                    run.end(obs, &cell, Ok(&new));
                    run.add_records(new);
                }
                Err(e) => run.end(obs, &cell, Err(format!("{}: {e}", w.name()))),
            }
            save(&run)?;
        }
    }
    save(&run)
}

/// Builds a model and its tokenizer, and checks that they fit together.
fn load(spec: &ModelSpec, opts: &BuildOptions) -> Result<(Box<dyn CausalLm>, Box<dyn Tokenizer>)> {
    let tok = tokenizer::load(&tokenizer::for_model(spec)?)?;
    let mut model = registry::build(spec, opts)?;
    let vocab = model.info().vocab;
    if tok.vocab_size() > vocab {
        return Err(Error::spec(
            spec,
            format!(
                "tokenizer {} has {} ids, but the model's vocabulary has {vocab}",
                tok.describe(),
                tok.vocab_size()
            ),
        ));
    }
    model.reset()?;
    Ok((model, tok))
}
