//! The world vocabulary's line format (`ID LITERAL BYTE_LENGTH`, the literal a Python
//! `str` or `bytes` literal), swept: arbitrary bytes and lines never panic, a literal
//! written any way Python may write it parses back to its bytes, and a malformed line
//! is named by file and line.

use std::path::Path;

use models::tokenizer::world::{parse_literal, WorldTokenizer};
use models::tokenizer::Tokenizer;
use proptest::prelude::*;
use proptest::sample::Index;

/// The text of an error, if it is one line that names `path`.
fn one_line_naming(e: &models::Error, path: &Path) -> Result<String, String> {
    let text = e.to_string();
    if text.contains(['\n', '\r']) {
        return Err(format!("more than one line: {text:?}"));
    }
    if !text.contains(&path.display().to_string()) {
        return Err(format!("does not name {}: {text}", path.display()));
    }
    Ok(text)
}

/// Bytes `b` as one item of a Python `bytes` literal quoted by `quote`; `how` picks
/// among the spellings Python accepts.
fn byte_item(b: u8, quote: char, how: u8) -> String {
    let simple = match b {
        b'\\' => Some("\\\\"),
        b'\'' => Some("\\'"),
        b'"' => Some("\\\""),
        0x07 => Some("\\a"),
        0x08 => Some("\\b"),
        0x0c => Some("\\f"),
        b'\n' => Some("\\n"),
        b'\r' => Some("\\r"),
        b'\t' => Some("\\t"),
        0x0b => Some("\\v"),
        _ => None,
    };
    let plain = (0x20..=0x7e).contains(&b) && b != b'\\' && b as char != quote;
    match how % 4 {
        0 if plain => (b as char).to_string(),
        1 if simple.is_some() => simple.unwrap_or_default().to_string(),
        2 => format!("\\{b:03o}"),
        _ => format!("\\x{b:02x}"),
    }
}

/// Char `c` as one item of a Python `str` literal quoted by `quote`.
fn char_item(c: char, quote: char, how: u8) -> String {
    let v = c as u32;
    let plain = !c.is_control() && c != '\\' && c != quote;
    match how % 6 {
        0 if plain => c.to_string(),
        1 if v < 0x80 && !plain => byte_item(v as u8, quote, 1),
        2 if v <= 0xff => format!("\\x{v:02x}"),
        3 if v <= 0o777 => format!("\\{v:03o}"),
        4 if v <= 0xffff => format!("\\u{v:04x}"),
        _ => format!("\\U{v:08x}"),
    }
}

/// A literal and the bytes it stands for: a `str` literal of arbitrary text (UTF-8
/// encoded) or a `bytes` literal of arbitrary bytes, each item spelled one of the ways
/// Python allows.
fn literal() -> impl Strategy<Value = (String, Vec<u8>)> {
    let quote = prop::sample::select(vec!['\'', '"']);
    let text = (
        quote.clone(),
        prop::collection::vec((any::<char>(), any::<u8>()), 1..12),
    )
        .prop_map(|(q, items)| {
            let body: String = items.iter().map(|&(c, how)| char_item(c, q, how)).collect();
            let text: String = items.iter().map(|&(c, _)| c).collect();
            (format!("{q}{body}{q}"), text.into_bytes())
        });
    let bytes = (
        quote,
        prop::sample::select(vec!["b", "B"]),
        prop::collection::vec((any::<u8>(), any::<u8>()), 1..12),
    )
        .prop_map(|(q, prefix, items)| {
            let body: String = items.iter().map(|&(b, how)| byte_item(b, q, how)).collect();
            let bytes = items.iter().map(|&(b, _)| b).collect();
            (format!("{prefix}{q}{body}{q}"), bytes)
        });
    prop_oneof![text, bytes]
}

/// Text built from the pieces a literal is made of, most of it malformed.
fn literal_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "'",
            "\"",
            "b",
            "B",
            "r",
            "\\",
            "\\x",
            "\\x4",
            "\\xzz",
            "\\u",
            "\\u12",
            "\\ud800",
            "\\U",
            "\\U0011ffff",
            "\\UFFFFFFFF",
            "\\777",
            "\\0",
            "\\N{DASH}",
            "\\q",
            " ",
            "é",
            "中",
            "\u{0}",
            "\r",
        ])
        .prop_map(String::from),
        "[a-z0-9]{1,3}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..10).prop_map(|v| v.concat())
}

/// A vocabulary line as it may be found: fields of every shape and count.
fn line() -> impl Strategy<Value = String> {
    let id = prop_oneof![
        any::<u32>().prop_map(|v| v.to_string()),
        (0u32..300).prop_map(|v| v.to_string()),
        prop::sample::select(vec!["", "-1", "4294967296", "1e3", "0x10", " 7", "٣"])
            .prop_map(String::from),
    ];
    let len = prop_oneof![
        (0usize..40).prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        prop::sample::select(vec!["", "-1", "x", " 3", "3 ", "18446744073709551616"])
            .prop_map(String::from),
    ];
    prop_oneof![
        4 => (id, prop_oneof![literal().prop_map(|l| l.0), literal_like()], len)
            .prop_map(|(i, l, n)| format!("{i} {l} {n}")),
        1 => any::<String>().prop_map(|s| s.replace('\n', " ")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn a_literal_parses_back_to_its_bytes((lit, bytes) in literal()) {
        prop_assert_eq!(parse_literal(&lit), Ok(bytes), "{}", lit);
    }

    #[test]
    fn literal_like_text_parses_or_fails_quoting_it(lit in literal_like()) {
        // Every message quotes the literal it is about.
        if let Err(m) = parse_literal(&lit) {
            prop_assert!(m.contains(lit.as_str()), "{m:?} does not quote {lit:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// A vocabulary of generated literals under distinct, sparse ids: every id decodes
    /// to its bytes, and the vocabulary is one larger than its largest id.
    #[test]
    fn generated_vocabularies_decode_every_id_to_its_bytes(
        tokens in prop::collection::vec(literal(), 1..40),
        stride in 1u32..5000,
        first in prop_oneof![0u32..10, Just(u32::MAX - 200_000)],
    ) {
        let ids: Vec<u32> = (0..tokens.len() as u32).map(|i| first + i * stride).collect();
        let text: String = ids
            .iter()
            .zip(&tokens)
            .map(|(id, (lit, bytes))| format!("{id} {lit} {}\n", bytes.len()))
            .collect();
        let t = WorldTokenizer::parse(Path::new("vocab.txt"), &text);
        prop_assert!(t.is_ok(), "{}\n{text}", t.err().unwrap());
        let t = t.unwrap();
        prop_assert_eq!(t.vocab_size(), *ids.last().unwrap() as usize + 1);
        for (id, (_, bytes)) in ids.iter().zip(&tokens) {
            prop_assert_eq!(&t.decode_bytes(&[*id]).unwrap(), bytes);
        }
    }

    /// Valid lines with one malformed line among them: the error names the file and
    /// that line's number.
    #[test]
    fn a_malformed_line_is_named_by_file_and_line(
        good in prop::collection::vec(literal(), 0..12),
        at in any::<Index>(),
        bad in prop::sample::select(vec![
            "NEW",
            "NEW 'a'",
            "x 'a' 1",
            "-1 'a' 1",
            "4294967296 'a' 1",
            "NEW 'a' x",
            "NEW 'a' -1",
            "NEW 'ab' 1",
            "NEW 'a 1",
            "NEW a 1",
            "NEW r'a' 1",
            "NEW '\\x4' 1",
            "NEW '\\ud800' 3",
            "NEW b'\u{e9}' 2",
            "NEW '\\N{DASH}' 3",
            "NEW '' 0",
            "NEW 'a'b' 3",
            "DUP 'a' 1",
        ]),
    ) {
        let mut lines: Vec<String> = good
            .iter()
            .enumerate()
            .map(|(i, (lit, bytes))| format!("{} {lit} {}", i + 1, bytes.len()))
            .collect();
        let k = at.index(lines.len() + 1);
        // A duplicate needs an id defined before it; without one it names id 1 early.
        let bad = if bad.starts_with("DUP") && k == 0 { "NEW" } else { bad };
        lines.insert(k, bad.replace("NEW", "100000").replace("DUP", "1"));
        let text = lines.join("\n");
        let path = Path::new("dir/rwkv_vocab.txt");
        match WorldTokenizer::parse(path, &text) {
            Ok(_) => prop_assert!(false, "parsed, with line {}: {:?}", k + 1, lines[k]),
            Err(e) => {
                let m = one_line_naming(&e, path);
                prop_assert!(m.is_ok(), "{}", m.unwrap_err());
                let m = m.unwrap();
                prop_assert!(m.contains(&format!(": line {}: ", k + 1)), "{m}\n{text}");
            }
        }
    }

    /// Lines of every shape: a tokenizer or an error naming the file and, where the
    /// error is about a line, that line.
    #[test]
    fn arbitrary_lines_parse_or_fail_naming_file_and_line(
        lines in prop::collection::vec(line(), 0..8),
    ) {
        let text = lines.join("\n");
        let path = Path::new("rwkv_vocab_v20230424.txt");
        if let Err(e) = WorldTokenizer::parse(path, &text) {
            let m = one_line_naming(&e, path);
            prop_assert!(m.is_ok(), "{}", m.unwrap_err());
            let m = m.unwrap();
            prop_assert!(m.contains(": line ") || m.ends_with("no tokens in the file"), "{m}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary bytes in a vocabulary file (invalid UTF-8 included).
    #[test]
    fn arbitrary_files_load_or_fail_naming_the_file(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            prop::collection::vec(line(), 0..8).prop_map(|l| l.join("\n").into_bytes()),
        ],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rwkv_vocab_v20230424.txt");
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = WorldTokenizer::from_file(&path) {
            let m = one_line_naming(&e, &path);
            prop_assert!(m.is_ok(), "{}", m.unwrap_err());
        }
    }
}

/// One line defining id `u32::MAX` used to allocate a table of 2^32 entries (about
/// 100 GB) and abort.
#[test]
fn a_huge_id_is_a_sparse_entry() {
    let t = WorldTokenizer::parse(Path::new("v.txt"), "1 'a' 1\n4294967295 'b' 1\n").unwrap();
    assert_eq!(t.vocab_size(), 1 << 32);
    assert_eq!(t.encode("ab").unwrap(), vec![1, u32::MAX]);
    assert!(t.decode_bytes(&[2]).is_err());
}
