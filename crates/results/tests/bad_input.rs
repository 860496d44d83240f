//! Bad input, swept: suite files, model specs and results files mutated at random, and
//! results files truncated at many offsets. Each gives a value or a one-line error
//! naming the file; none panics.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use results::suite::Suite;
use results::{ModelSpec, Results};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shipped suites, in name order, with their text.
static SUITES: LazyLock<Vec<(PathBuf, String)>> = LazyLock::new(|| {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo().join("suites"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 5, "suites/ lost its files: {paths:?}");
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            Suite::parse(&p, text.clone()).unwrap_or_else(|e| panic!("unmutated: {e}"));
            (p, text)
        })
        .collect()
});

/// The results files in the repository (a schema-1 fixture and the CI baseline), with
/// their text.
static RESULTS: LazyLock<Vec<(PathBuf, String)>> = LazyLock::new(|| {
    [
        "tests/fixtures/results/ci.json",
        ".github/bench-baseline/ci.json",
    ]
    .into_iter()
    .map(|f| {
        let path = repo().join(f);
        Results::load(&path).unwrap_or_else(|e| panic!("unmutated: {e}"));
        let text = std::fs::read_to_string(&path).unwrap();
        (path, text)
    })
    .collect()
});

/// The text of an error, if it is one line that starts by naming `path`.
fn one_line_naming(e: &results::Error, path: &Path) -> Result<String, String> {
    let text = e.to_string();
    if text.contains(['\n', '\r']) {
        return Err(format!("more than one line: {text:?}"));
    }
    if !text.starts_with(&format!("{}: ", path.display())) {
        return Err(format!("does not start with {}: {text}", path.display()));
    }
    Ok(text)
}

/// A value that can replace a number in a suite: edges of every integer and float type,
/// TOML's special floats, and forms TOML does not accept.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "-0",
            "-1",
            "1",
            "nan",
            "+nan",
            "-nan",
            "inf",
            "+inf",
            "-inf",
            "1e308",
            "1e309",
            "-1e309",
            "1e-320",
            "0.0",
            "0.5",
            "1e20",
            "4294967296",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999999999",
            "0x7fffffff",
            "0o17",
            "0b101",
            "1_000",
            "1__0",
            "01",
            "1.",
            ".5",
            "1e",
            "--1",
            "true",
            "\"16\"",
            "[]",
            "{}",
        ])
        .prop_map(String::from),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
    ]
}

/// A string written as a TOML basic string: arbitrary text, or text shaped like the
/// values suites hold (model specs, dtypes, task names, paths). Quoted with Rust's
/// escapes, which TOML shares except `\u{…}`: that one is bad input of its own.
fn toml_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9_-]{0,12}(:(preset=)?[a-z0-9./,=:_-]{0,24})?",
        prop::sample::select(vec![
            "",
            "f32",
            "bf16",
            "f64",
            "passkey",
            "accuracy",
            "rwkv7:preset=tiny,tokenizer=bytes",
            "llama:preset=tiny,tokenizer=bytes,tokenizer=bytes",
            "rwkv7:",
            "rwkv7:preset=",
            "llama:/nonexistent,tokenizer=world:",
            "tasks/../../../../etc/passwd",
            "line\nbreak",
            "carriage\rreturn",
        ])
        .prop_map(String::from),
    ]
    .prop_map(|s| format!("{s:?}").replace("\\'", "'"))
}

/// One edit of a text file.
#[derive(Debug, Clone)]
enum Edit {
    DeleteBytes(Index, usize),
    InsertText(Index, String),
    ReplaceBytes(Index, usize, String),
    DeleteLine(Index),
    /// A second copy of a line: a duplicate key, or a duplicate table header.
    DuplicateLine(Index),
    SwapLines(Index, Index),
    ReplaceLine(Index, String),
    /// Replaces the value after a line's `=` (or the whole line without one).
    ReplaceValue(Index, String),
    /// Replaces one of the file's numbers.
    ReplaceNumber(Index, String),
}

fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        number(),
        toml_string(),
        prop::collection::vec(prop_oneof![number(), toml_string()], 0..4)
            .prop_map(|v| format!("[{}]", v.join(", "))),
        Just("{ prefill = false }".to_string()),
        Just("[[1]]".to_string()),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    let snippet = prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            "=", "[", "]", "[[", "]]", "\"", "'", "\"\"\"", "#", "\n", "\r\n", "\\", ",", "{", "}",
            ".", "\u{0}", "\u{feff}", "é", "中",
        ])
        .prop_map(String::from),
    ];
    prop_oneof![
        (any::<Index>(), 1..16usize).prop_map(|(i, n)| Edit::DeleteBytes(i, n)),
        (any::<Index>(), snippet.clone()).prop_map(|(i, s)| Edit::InsertText(i, s)),
        (any::<Index>(), 1..8usize, snippet).prop_map(|(i, n, s)| Edit::ReplaceBytes(i, n, s)),
        any::<Index>().prop_map(Edit::DeleteLine),
        any::<Index>().prop_map(Edit::DuplicateLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (any::<Index>(), "[ -~]{0,40}").prop_map(|(i, s)| Edit::ReplaceLine(i, s)),
        (any::<Index>(), toml_value()).prop_map(|(i, v)| Edit::ReplaceValue(i, v)),
        (any::<Index>(), number()).prop_map(|(i, v)| Edit::ReplaceNumber(i, v)),
    ]
}

/// Byte ranges of the numbers in `text`: digit runs (with a sign, point and exponent)
/// that do not continue a word.
fn numbers(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let word_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if b[i].is_ascii_digit() && !word_before {
            let start = if i > 0 && b[i - 1] == b'-' { i - 1 } else { i };
            let mut end = i;
            while end < b.len() && (b[end].is_ascii_alphanumeric() || b"._+-".contains(&b[end])) {
                end += 1;
            }
            out.push((start, end));
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// The largest char boundary of `s` at or below `at`.
fn floor_boundary(s: &str, at: usize) -> usize {
    (0..=at.min(s.len()))
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

fn apply(text: &str, edit: &Edit) -> String {
    let lines = || text.split_inclusive('\n').collect::<Vec<_>>();
    let at = |i: &Index| floor_boundary(text, i.index(text.len() + 1));
    let with_lines = |f: &dyn Fn(&mut Vec<String>)| {
        let mut v: Vec<String> = lines().into_iter().map(String::from).collect();
        if !v.is_empty() {
            f(&mut v);
        }
        v.concat()
    };
    match edit {
        Edit::DeleteBytes(i, n) => {
            let a = i.index(text.len() + 1);
            let mut bytes = text.as_bytes().to_vec();
            bytes.drain(a..(a + n).min(bytes.len()));
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Edit::InsertText(i, s) => {
            let a = at(i);
            format!("{}{s}{}", &text[..a], &text[a..])
        }
        Edit::ReplaceBytes(i, n, s) => {
            let a = i.index(text.len() + 1);
            let mut bytes = text.as_bytes().to_vec();
            bytes.splice(a..(a + n).min(bytes.len()), s.bytes());
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Edit::DeleteLine(i) => with_lines(&|v| {
            v.remove(i.index(v.len()));
        }),
        Edit::DuplicateLine(i) => with_lines(&|v| {
            let k = i.index(v.len());
            let mut line = v[k].clone();
            if !line.ends_with('\n') {
                line.insert(0, '\n');
            }
            v.insert(k + 1, line);
        }),
        Edit::SwapLines(a, b) => with_lines(&|v| {
            let (a, b) = (a.index(v.len()), b.index(v.len()));
            v.swap(a, b);
        }),
        Edit::ReplaceLine(i, s) => with_lines(&|v| {
            let k = i.index(v.len());
            v[k] = format!("{s}\n");
        }),
        Edit::ReplaceValue(i, value) => with_lines(&|v| {
            let k = i.index(v.len());
            v[k] = match v[k].split_once('=') {
                Some((key, _)) => format!("{key}= {value}\n"),
                None => format!("{value}\n"),
            };
        }),
        Edit::ReplaceNumber(i, value) => {
            let spans = numbers(text);
            if spans.is_empty() {
                return text.to_string();
            }
            let (a, b) = spans[i.index(spans.len())];
            format!("{}{value}{}", &text[..a], &text[b..])
        }
    }
}

/// What every suite that validates must give the runner: a timeout that is a
/// `Duration`, a memory budget that is a byte count, and lengths whose cells fit in
/// the positions a `usize` counts (saturated, so a preset's limit rejects them).
fn usable(suite: &Suite) -> Result<(), String> {
    let c = &suite.config;
    Duration::try_from_secs_f64(c.limits.cell_timeout_s)
        .map_err(|e| format!("cell_timeout_s {}: {e}", c.limits.cell_timeout_s))?;
    if let Some(mb) = c.limits.memory_budget_mb {
        mb.checked_mul(1 << 20)
            .filter(|&b| b > 0)
            .ok_or(format!("memory_budget_mb {mb} is no byte count"))?;
    }
    for &len in &c.seq_lens {
        if suite.positions_needed(len) < len {
            return Err(format!("positions_needed({len}) wrapped"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Mutations of the shipped suites (1..=4 edits each).
    #[test]
    fn mutated_suites_parse_or_fail_on_one_line_naming_the_file(
        which in any::<Index>(),
        edits in prop::collection::vec(edit(), 1..=4),
    ) {
        let (path, text) = &SUITES[which.index(SUITES.len())];
        let mutated = edits.iter().fold(text.clone(), |t, e| apply(&t, e));
        match Suite::parse(path, mutated) {
            Ok(suite) => prop_assert!(usable(&suite).is_ok(), "{}", usable(&suite).unwrap_err()),
            Err(e) => {
                let checked = one_line_naming(&e, path);
                prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary text, and lines built from TOML's own tokens.
    #[test]
    fn arbitrary_text_as_a_suite_fails_on_one_line_naming_the_file(
        text in prop_oneof![
            any::<String>(),
            prop::collection::vec(
                ("[a-z_.]{1,12}", toml_value()).prop_map(|(k, v)| format!("{k} = {v}")),
                0..8,
            )
            .prop_map(|v| v.join("\n")),
        ],
    ) {
        let path = Path::new("suites/arbitrary.toml");
        match Suite::parse(path, text) {
            Ok(suite) => prop_assert!(usable(&suite).is_ok(), "{}", usable(&suite).unwrap_err()),
            Err(e) => {
                let checked = one_line_naming(&e, path);
                prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
            }
        }
    }
}

/// Text shaped like a model spec, so that most cases get past the first colon.
fn spec_text() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[a-z_0-9]{1,8}=[^,]{0,8}",
        "tokenizer=(bytes|world:|hf:|world:[a-z/.,]{1,8}|hf:[a-z/.]{1,8}|[a-z:]{0,8})",
        "preset=[a-z0-9.]{0,6}",
        "[^,]{0,10}",
    ];
    prop_oneof![
        any::<String>(),
        (
            "[a-z0-9_-]{0,10}",
            prop_oneof!["preset=[a-z0-9.]{0,6}", "[^,]{0,16}"],
            prop::collection::vec(segment, 0..4),
        )
            .prop_map(|(name, source, segments)| {
                let mut s = format!("{name}:{source}");
                for seg in segments {
                    s.push(',');
                    s.push_str(&seg);
                }
                s
            }),
    ]
}

/// A spec built field by field: an implementation name, a preset or a path (which may
/// hold commas), a tokenizer and options, as `FromStr` accepts them.
fn valid_spec() -> impl Strategy<Value = ModelSpec> {
    let source = prop_oneof![
        "[a-z0-9.=:_-]{1,8}".prop_map(results::Source::Preset),
        "/[a-z0-9 ./_-]{0,12}(,[a-z0-9. /]{1,6})?".prop_map(|p| results::Source::Path(p.into())),
    ];
    let tokenizer = prop::option::of(prop_oneof![
        Just(results::TokenizerSpec::Bytes),
        "[a-z0-9/._:=-]{1,12}".prop_map(|p| results::TokenizerSpec::World(p.into())),
        "[a-z0-9/._:=-]{1,12}".prop_map(|p| results::TokenizerSpec::Hf(p.into())),
    ]);
    let options = prop::collection::btree_map("[a-z0-9_]{1,6}", "[^,]{0,8}", 0..3)
        .prop_map(|m| m.into_iter().filter(|(k, _)| k != "tokenizer").collect());
    ("[a-z0-9_,-]{1,12}", source, tokenizer, options).prop_map(
        |(implementation, source, tokenizer, options)| ModelSpec {
            implementation,
            source,
            tokenizer,
            options,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// Any text parses or fails naming the spec; what parses prints back to itself.
    #[test]
    fn spec_text_parses_or_fails_naming_the_spec(raw in spec_text()) {
        match raw.parse::<ModelSpec>() {
            Ok(spec) => {
                let printed = spec.to_string();
                let again = printed.parse::<ModelSpec>();
                prop_assert!(again.is_ok(), "{raw:?} printed as {printed:?}: {:?}", again);
                prop_assert_eq!(again.unwrap(), spec.clone());
                // Through JSON too, as results files carry it.
                let json = serde_json::to_string(&spec).unwrap();
                prop_assert_eq!(serde_json::from_str::<ModelSpec>(&json).unwrap(), spec);
            }
            Err(e) => {
                let text = e.to_string();
                prop_assert!(text.starts_with("model spec `"), "{text}");
                prop_assert!(!text.contains(['\n', '\r']), "more than one line: {text:?}");
            }
        }
    }

    #[test]
    fn a_valid_spec_prints_as_text_that_parses_back_to_it(spec in valid_spec()) {
        let printed = spec.to_string();
        let back = printed.parse::<ModelSpec>();
        prop_assert!(back.is_ok(), "{spec:?} printed as {printed:?}: {:?}", back);
        prop_assert_eq!(back.unwrap(), spec);
    }
}

/// One edit of a JSON document, at the `at`-th node in document order.
#[derive(Debug, Clone)]
enum JsonEdit {
    Replace(Index, Value),
    DeleteKey(Index),
    RenameKey(Index, String),
    /// Text-level: the document printed, then bytes removed or inserted.
    DeleteBytes(Index, usize),
    InsertText(Index, String),
    /// Text-level: a key written twice in one object.
    DuplicateKey(Index),
}

fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop::sample::select(vec![
            0.0,
            -0.0,
            -1.0,
            0.5,
            1e300,
            -1e300,
            f64::MIN_POSITIVE,
            f64::MAX,
            4294967296.0,
        ])
        .prop_map(Value::from),
        prop::sample::select(vec![0u64, 1, 2, 3, 99, u32::MAX as u64, u64::MAX])
            .prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "rwkv7:preset=tiny",
            "not a spec",
            "line\nbreak",
            "decode_latency",
            "ms",
            "rwkv7",
            "llama",
            "random",
            "checkpoint",
        ])
        .prop_map(Value::from),
        Just(Value::Array(Vec::new())),
        Just(Value::Object(Default::default())),
        Just(serde_json::json!([1, "a", null])),
        Just(serde_json::json!({"kind": "random"})),
    ]
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        4 => (any::<Index>(), json_value()).prop_map(|(i, v)| JsonEdit::Replace(i, v)),
        2 => any::<Index>().prop_map(JsonEdit::DeleteKey),
        1 => (any::<Index>(), prop_oneof![any::<String>(), "[a-z_]{1,12}", Just("a\nb".to_string())])
            .prop_map(|(i, k)| JsonEdit::RenameKey(i, k)),
        1 => (any::<Index>(), 1..64usize).prop_map(|(i, n)| JsonEdit::DeleteBytes(i, n)),
        1 => (any::<Index>(), prop_oneof![any::<String>(), "[\\[\\]{},:\"0-9e.-]{1,4}"])
            .prop_map(|(i, s)| JsonEdit::InsertText(i, s)),
        1 => any::<Index>().prop_map(JsonEdit::DuplicateKey),
    ]
}

/// JSON pointers to every node of `v` but the root, parents before children.
fn pointers(v: &Value) -> Vec<String> {
    fn walk(v: &Value, at: &str, out: &mut Vec<String>) {
        let mut child = |key: &str, c: &Value| {
            let p = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
            out.push(p.clone());
            walk(c, &p, out);
        };
        match v {
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, c)| child(&i.to_string(), c)),
            Value::Object(o) => o.iter().for_each(|(k, c)| child(k, c)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

/// The parent pointer and the key of an object member's pointer.
fn member(pointer: &str) -> Option<(&str, String)> {
    let (parent, key) = pointer.rsplit_once('/')?;
    Some((parent, key.replace("~1", "/").replace("~0", "~")))
}

/// Applies `edit` to the JSON document `text`.
fn apply_json(text: &str, edit: &JsonEdit) -> String {
    let mut doc: Value = serde_json::from_str(text).expect("edits start from valid JSON");
    let ptrs = pointers(&doc);
    let pick = |i: &Index| ptrs[i.index(ptrs.len())].clone();
    let object_member = |doc: &mut Value, p: &str| -> Option<(String, Value)> {
        let (parent, key) = member(p)?;
        let obj = doc.pointer_mut(parent)?.as_object_mut()?;
        obj.remove(&key).map(|v| (key, v))
    };
    let print = |doc: &Value| serde_json::to_string_pretty(doc).unwrap();
    match edit {
        JsonEdit::Replace(i, v) => {
            *doc.pointer_mut(&pick(i)).unwrap() = v.clone();
            print(&doc)
        }
        JsonEdit::DeleteKey(i) => {
            object_member(&mut doc, &pick(i));
            print(&doc)
        }
        JsonEdit::RenameKey(i, new) => {
            let p = pick(i);
            if let Some((_, v)) = object_member(&mut doc, &p) {
                let (parent, _) = member(&p).unwrap();
                doc.pointer_mut(parent)
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .insert(new.clone(), v);
            }
            print(&doc)
        }
        JsonEdit::DeleteBytes(i, n) => {
            let mut bytes = text.as_bytes().to_vec();
            let a = i.index(bytes.len() + 1);
            bytes.drain(a..(a + n).min(bytes.len()));
            String::from_utf8_lossy(&bytes).into_owned()
        }
        JsonEdit::InsertText(i, s) => {
            let a = floor_boundary(text, i.index(text.len() + 1));
            format!("{}{s}{}", &text[..a], &text[a..])
        }
        JsonEdit::DuplicateKey(i) => {
            // The picked member written a second time at the start of its object: the
            // object is swapped for a marker string, whose printed form is then
            // replaced by the object's text with the copy spliced in.
            let p = pick(i);
            let (parent, key) = member(&p).unwrap();
            let Some(obj) = doc.pointer(parent).filter(|v| v.is_object()).cloned() else {
                return print(&doc);
            };
            let dup = format!("{}: {},", Value::from(key.clone()), obj[&key]);
            let mut body = serde_json::to_string(&obj).unwrap();
            body.insert_str(1, &dup);
            let marker = Value::from("\u{1}marker\u{1}");
            *doc.pointer_mut(parent).unwrap() = marker.clone();
            print(&doc).replacen(&marker.to_string(), &body, 1)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The repository's results files with 1..=3 edits: values of other types and
    /// ranges, keys deleted, renamed or duplicated, bytes deleted or inserted.
    #[test]
    fn mutated_results_load_or_fail_on_one_line_naming_the_file(
        which in any::<Index>(),
        edits in prop::collection::vec(json_edit(), 1..=3),
    ) {
        let mut text = RESULTS[which.index(RESULTS.len())].1.clone();
        for e in &edits {
            // Once an edit breaks the JSON, later edits have no document to work on.
            if serde_json::from_str::<Value>(&text).is_err() {
                break;
            }
            text = apply_json(&text, e);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mutated.json");
        std::fs::write(&path, &text).unwrap();
        if let Err(e) = Results::load(&path) {
            let checked = one_line_naming(&e, &path);
            prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
        }
    }
}

/// Offsets to cut a file of `len` bytes at: the first and last 64, 256 evenly spaced,
/// and every offset within 8 bytes of each `extra` offset.
fn cut_offsets(len: usize, extra: &[usize]) -> Vec<usize> {
    let mut v: Vec<usize> = (0..64.min(len))
        .chain(len.saturating_sub(64)..len)
        .chain((0..256).map(|k| k * len / 256))
        .chain(
            extra
                .iter()
                .flat_map(|&x| x.saturating_sub(8)..(x + 8).min(len)),
        )
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A results file with text beyond ASCII (a suite description, as users write them),
/// and the offsets of its multi-byte characters.
fn results_with_unicode() -> (String, Vec<usize>) {
    let path = repo().join(".github/bench-baseline/ci.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let words = "latency – mémoire 中文 😀";
    v["suite"]["config"]["description"] = words.into();
    v["machine"]["cpu_model"] = format!("CPU {words}").into();
    let text = serde_json::to_string_pretty(&v).unwrap();
    let wide = text
        .char_indices()
        .filter(|(_, c)| !c.is_ascii())
        .map(|(i, _)| i)
        .collect();
    (text, wide)
}

/// Every cut of a results file is refused as truncated, naming the file, on one line;
/// only the whole file (or one missing trailing whitespace) loads.
#[test]
fn truncated_results_are_refused_as_truncated_at_every_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut tried = 0;
    let mut texts: Vec<(String, String, Vec<usize>)> = RESULTS
        .iter()
        .map(|(f, text)| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            (name, text.clone(), Vec::new())
        })
        .collect();
    let (text, wide) = results_with_unicode();
    assert!(wide.len() >= 8, "the file holds multi-byte characters");
    texts.push(("unicode.json".into(), text, wide));
    for (k, (name, text, wide)) in texts.iter().enumerate() {
        let bytes = text.as_bytes();
        let path = dir.path().join(format!("{k}-{name}"));
        for cut in cut_offsets(bytes.len(), wide) {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            tried += 1;
            let got = Results::load(&path);
            let whole = text[..floor_boundary(text, cut)].trim_end() == text.trim_end();
            match got {
                Ok(_) if whole => {}
                Ok(_) => panic!("{name} cut at {cut} of {} loaded", bytes.len()),
                Err(e) => {
                    let text = one_line_naming(&e, &path)
                        .unwrap_or_else(|m| panic!("{name} cut at {cut}: {m}"));
                    assert!(text.contains("truncated"), "{name} cut at {cut}: {text}");
                }
            }
        }
        std::fs::write(&path, bytes).unwrap();
        Results::load(&path).unwrap();
    }
    eprintln!("truncated results: {tried} cuts");
    assert!(tried > 900, "{tried} cuts");
}
