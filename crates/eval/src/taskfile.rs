//! User task files (JSON Lines): the team's own go/no-go checks.
//!
//! One JSON object per line, of either kind:
//!
//! ```text
//! {"context": "Q: 2 + 2 = ? A:", "choices": [" 3", " 4", " 5"], "answer": 1}
//! {"prompt": "The capital of France is", "answer": " Paris", "until": ["\n", "."], "max_tokens": 16}
//! ```
//!
//! - **Multiple choice** (`context`, `choices`, `answer` = index of the right choice):
//!   each choice is scored by `log p(choice | context)`; `acc` takes the most likely,
//!   `acc_norm` the most likely per byte of the choice (as lm-evaluation-harness does
//!   per character). Write choices with their leading space.
//! - **Generate until** (`prompt`, `answer`, optional `until` = stop strings, default
//!   `["\n"]`, optional `max_tokens`, default 32): greedy continuation cut at the first
//!   stop string, exact match with `answer` after trimming whitespace.
//!
//! An optional `id` names an item. Blank lines are allowed; anything else that does not
//! parse is an error naming the file and line. Nothing is skipped silently.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::score::greedy;
use crate::{Error, Result};
use models::model::CausalLm;
use models::tokenizer::Tokenizer;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    #[serde(default)]
    pub id: Option<String>,
    pub context: String,
    pub choices: Vec<String>,
    pub answer: usize,
}

fn default_until() -> Vec<String> {
    vec!["\n".into()]
}

fn default_max_tokens() -> usize {
    32
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    #[serde(default)]
    pub id: Option<String>,
    pub prompt: String,
    pub answer: String,
    #[serde(default = "default_until")]
    pub until: Vec<String>,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Choice(Choice),
    Generate(Generate),
}

/// A parsed task file.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFile {
    /// The task name in records: the file stem unless the suite names it.
    pub name: String,
    pub path: PathBuf,
    /// `(line number, item)`.
    pub items: Vec<(usize, Item)>,
}

fn parse_line(line: &str) -> std::result::Result<Item, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = value.as_object().ok_or(
        "expected a JSON object such as {\"context\": …, \"choices\": […], \"answer\": 0}",
    )?;
    let item = if obj.contains_key("choices") {
        let c: Choice =
            serde_json::from_value(value).map_err(|e| format!("multiple choice: {e}"))?;
        if c.choices.len() < 2 {
            return Err("`choices` needs at least two choices".into());
        }
        if c.answer >= c.choices.len() {
            return Err(format!(
                "`answer` is {}, but there are only {} choices (answer is a 0-based index)",
                c.answer,
                c.choices.len()
            ));
        }
        if c.context.is_empty() || c.choices.iter().any(String::is_empty) {
            return Err("`context` and every choice must be non-empty".into());
        }
        Item::Choice(c)
    } else if obj.contains_key("prompt") {
        let g: Generate = serde_json::from_value(value).map_err(|e| format!("generate: {e}"))?;
        if g.prompt.is_empty() || g.max_tokens == 0 {
            return Err("`prompt` must be non-empty and `max_tokens` at least 1".into());
        }
        if g.until.iter().any(String::is_empty) {
            return Err("`until` strings must be non-empty".into());
        }
        Item::Generate(g)
    } else {
        return Err(
            "neither a multiple-choice item (`context`, `choices`, `answer`) nor a generate item (`prompt`, `answer`)"
                .into(),
        );
    };
    Ok(item)
}

impl TaskFile {
    pub fn load(path: &Path, name: Option<&str>) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(path, name, &text)
    }

    /// Parses JSON Lines text; `path` names it in messages.
    pub fn parse(path: &Path, name: Option<&str>, text: &str) -> Result<Self> {
        let mut items = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let item = parse_line(line).map_err(|message| Error::TaskFile {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            })?;
            items.push((i + 1, item));
        }
        if items.is_empty() {
            return Err(Error::TaskFile {
                path: path.to_path_buf(),
                line: 0,
                message: "no items".into(),
            });
        }
        let name = name.map(str::to_string).unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "tasks".into())
        });
        Ok(Self {
            name,
            path: path.to_path_buf(),
            items,
        })
    }

    /// Mean score of a uniform guesser over the items (exact match of free text: 0).
    pub fn chance(&self) -> f64 {
        let sum: f64 = self
            .items
            .iter()
            .map(|(_, item)| match item {
                Item::Choice(c) => 1.0 / c.choices.len() as f64,
                Item::Generate(_) => 0.0,
            })
            .sum();
        sum / self.items.len() as f64
    }
}

/// The score of one item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ItemScore {
    /// Multiple choice: the most likely choice is right. Generate: exact match.
    pub correct: bool,
    /// Multiple choice only: the most likely choice per byte is right.
    pub correct_norm: Option<bool>,
    /// Tokens of the longest sequence the item ran.
    pub tokens: usize,
}

/// Text of generated ids; ids the tokenizer cannot decode (a model's vocabulary is often
/// padded beyond its tokenizer's) become U+FFFD, which matches no answer.
fn decode_generated(tok: &dyn Tokenizer, ids: &[u32]) -> String {
    tok.decode(ids).unwrap_or_else(|_| {
        ids.iter()
            .map(|&id| tok.decode(&[id]).unwrap_or_else(|_| "\u{fffd}".into()))
            .collect()
    })
}

fn first_max(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Scores one item.
pub fn score_item(model: &mut dyn CausalLm, tok: &dyn Tokenizer, item: &Item) -> Result<ItemScore> {
    match item {
        Item::Choice(c) => {
            let context = tok.encode(&c.context)?;
            let mut ll = Vec::with_capacity(c.choices.len());
            let mut per_byte = Vec::with_capacity(c.choices.len());
            let mut longest = 0;
            for choice in &c.choices {
                let ids = tok.encode(choice)?;
                let mut seq = context.clone();
                seq.extend_from_slice(&ids);
                longest = longest.max(seq.len());
                let lp = model.log_probs(&seq)?;
                let sum: f64 = lp[context.len() - 1..].iter().map(|&x| x as f64).sum();
                ll.push(sum);
                per_byte.push(sum / choice.len() as f64);
            }
            Ok(ItemScore {
                correct: first_max(&ll) == c.answer,
                correct_norm: Some(first_max(&per_byte) == c.answer),
                tokens: longest,
            })
        }
        Item::Generate(g) => {
            let prompt = tok.encode(&g.prompt)?;
            let stops = |out: &[u32]| {
                let text = decode_generated(tok, out);
                g.until.iter().any(|u| text.contains(u.as_str()))
            };
            let out = greedy(model, &prompt, g.max_tokens, stops)?;
            let mut text = decode_generated(tok, &out);
            if let Some(cut) = g.until.iter().filter_map(|u| text.find(u.as_str())).min() {
                text.truncate(cut);
            }
            Ok(ItemScore {
                correct: text.trim() == g.answer.trim(),
                correct_norm: None,
                tokens: prompt.len() + out.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::testing::copier;
    use models::tokenizer::bytes::ByteTokenizer;

    #[test]
    fn both_kinds_parse_and_blank_lines_are_allowed() {
        let text = r#"{"context": "2 + 2 =", "choices": [" 3", " 4"], "answer": 1}

{"id": "fr", "prompt": "The capital of France is", "answer": " Paris", "until": ["."]}
"#;
        let f = TaskFile::parse(Path::new("dir/qa.jsonl"), None, text).unwrap();
        assert_eq!(f.name, "qa");
        assert_eq!(f.items.len(), 2);
        assert_eq!(f.items[1].0, 3, "line numbers count blank lines");
        assert!(matches!(&f.items[1].1, Item::Generate(g) if g.max_tokens == 32));
        assert!((f.chance() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn a_malformed_line_is_reported_with_its_number() {
        let cases = [
            ("{\"context\": \"a\", \"choices\": [\"b\"", "not valid JSON"),
            (
                "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answer\": 2}",
                "0-based",
            ),
            (
                "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answr\": 0}",
                "answr",
            ),
            ("{\"question\": \"a\"}", "neither"),
            ("[1, 2]", "JSON object"),
            (
                "{\"prompt\": \"a\", \"answer\": \"b\", \"max_tokens\": 0}",
                "max_tokens",
            ),
        ];
        for (bad, says) in cases {
            let text = format!(
                "{{\"prompt\": \"p\", \"answer\": \"a\"}}\n{{\"prompt\": \"q\", \"answer\": \"b\"}}\n{bad}\n"
            );
            let e = TaskFile::parse(Path::new("t.jsonl"), None, &text)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("t.jsonl:3: "), "{e}");
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = TaskFile::parse(Path::new("t.jsonl"), None, "\n\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no items"), "{e}");
    }

    #[test]
    fn items_are_scored_by_likelihood_and_by_greedy_exact_match() {
        // The copier continues "abc abc ab" with "c abc…": choice "c" over "x" by
        // likelihood, and generates "c" before the stop string " ".
        let tok = ByteTokenizer;
        let (_dir, mut m) = copier(256);
        let choice = Item::Choice(Choice {
            id: None,
            context: "abc abc ab".into(),
            choices: vec!["x".into(), "c".into()],
            answer: 1,
        });
        let s = score_item(m.as_mut(), &tok, &choice).unwrap();
        assert!(s.correct && s.correct_norm == Some(true));
        let gen = |answer: &str| {
            Item::Generate(Generate {
                id: None,
                prompt: "abc abc ab".into(),
                answer: answer.into(),
                until: vec![" ".into()],
                max_tokens: 8,
            })
        };
        assert!(score_item(m.as_mut(), &tok, &gen("c")).unwrap().correct);
        assert!(!score_item(m.as_mut(), &tok, &gen("cab")).unwrap().correct);
    }

    #[test]
    fn ids_beyond_the_tokenizer_decode_as_replacement_characters() {
        // A padded model vocabulary can generate ids the tokenizer lacks: they make
        // the answer wrong, not the run fail.
        let tok = ByteTokenizer;
        let mut prompt = tok.encode("ab").unwrap();
        prompt.extend([300, 301, 300]);
        let text = decode_generated(&tok, &prompt);
        assert!(text.starts_with("ab\u{fffd}"), "{text}");
    }
}
