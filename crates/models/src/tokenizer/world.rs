//! The RWKV "world" tokenizer: the official vocabulary file (`rwkv_vocab_v20230424.txt`)
//! and the greedy longest-match encoder of the official `TRIE_TOKENIZER`.
//!
//! Each line of the file is `ID LITERAL BYTE_LENGTH`, where `LITERAL` is a Python string
//! (`'…'`, `"…"`, UTF-8 encoded) or bytes literal (`b'…'`) with Python's escapes
//! (`\xNN`, `\uNNNN`, `\UNNNNNNNN`, `\n`, `\\`, `\'`, octal, …). Note that `\xNN` is a
//! code point in a string literal (`'\xe9'` is `é`, two UTF-8 bytes) but a byte in a
//! bytes literal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Tokenizer;
use crate::{Error, Result};

/// A world vocabulary and its byte trie.
pub struct WorldTokenizer {
    path: PathBuf,
    /// Bytes of each id the file defines. A map, not a table indexed by id: ids need
    /// not be dense, and one huge id must not allocate a huge table.
    tokens: HashMap<u32, Vec<u8>>,
    /// One more than the largest id.
    vocab_size: usize,
    /// Trie edges: (node, byte) -> child node. Node 0 is the root.
    edges: HashMap<(u32, u8), u32>,
    /// The token that ends at each node, if any.
    terminal: Vec<Option<u32>>,
}

impl WorldTokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(path, &text)
    }

    /// Parses vocabulary text; `path` names it in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let fail = |line: usize, message: String| Error::Tokenizer {
            path: path.to_path_buf(),
            message: format!("line {line}: {message}"),
        };
        let mut entries: Vec<(usize, u32, Vec<u8>)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let (id, rest) = line
                .split_once(' ')
                .ok_or_else(|| fail(n, "expected `ID LITERAL BYTE_LENGTH`".into()))?;
            let (literal, len) = rest
                .rsplit_once(' ')
                .ok_or_else(|| fail(n, "expected `ID LITERAL BYTE_LENGTH`".into()))?;
            let id: u32 = id
                .parse()
                .map_err(|_| fail(n, format!("`{id}` is not a token id")))?;
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| fail(n, format!("`{len}` is not a byte length")))?;
            let bytes = parse_literal(literal.trim()).map_err(|m| fail(n, m))?;
            if bytes.len() != len {
                return Err(fail(
                    n,
                    format!(
                        "literal {} is {} bytes, but the line says {len}",
                        literal.trim(),
                        bytes.len()
                    ),
                ));
            }
            if bytes.is_empty() {
                return Err(fail(n, "empty token".into()));
            }
            entries.push((n, id, bytes));
        }
        if entries.is_empty() {
            return Err(Error::Tokenizer {
                path: path.to_path_buf(),
                message: "no tokens in the file".into(),
            });
        }
        let vocab_size = entries
            .iter()
            .map(|(_, id, _)| *id as usize + 1)
            .max()
            .unwrap_or(0);
        let mut tokens: HashMap<u32, Vec<u8>> = HashMap::with_capacity(entries.len());
        let mut edges = HashMap::new();
        let mut terminal: Vec<Option<u32>> = vec![None];
        for (n, id, bytes) in entries {
            if tokens.contains_key(&id) {
                return Err(fail(n, format!("token id {id} is defined twice")));
            }
            let mut node = 0u32;
            for &b in &bytes {
                node = *edges.entry((node, b)).or_insert_with(|| {
                    terminal.push(None);
                    (terminal.len() - 1) as u32
                });
            }
            // Two ids with the same bytes: the first one wins, as in the official code.
            terminal[node as usize].get_or_insert(id);
            tokens.insert(id, bytes);
        }
        Ok(Self {
            path: path.to_path_buf(),
            tokens,
            vocab_size,
            edges,
            terminal,
        })
    }

    /// Greedy longest match over `bytes`.
    pub fn encode_bytes(&self, bytes: &[u8]) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(bytes.len() / 3 + 1);
        let mut at = 0;
        while at < bytes.len() {
            let mut node = 0u32;
            let mut best: Option<(usize, u32)> = None;
            for (j, &b) in bytes[at..].iter().enumerate() {
                match self.edges.get(&(node, b)) {
                    Some(&child) => node = child,
                    None => break,
                }
                if let Some(id) = self.terminal[node as usize] {
                    best = Some((j + 1, id));
                }
            }
            let (len, id) = best.ok_or_else(|| Error::Tokenizer {
                path: self.path.clone(),
                message: format!("no token starts with byte 0x{:02x}", bytes[at]),
            })?;
            out.push(id);
            at += len;
        }
        Ok(out)
    }
}

impl Tokenizer for WorldTokenizer {
    fn describe(&self) -> String {
        format!("world:{}", self.path.display())
    }

    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_bytes(text.as_bytes())
    }

    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for &id in ids {
            let bytes = self.tokens.get(&id).ok_or_else(|| Error::Tokenizer {
                path: self.path.clone(),
                message: format!("token {id} is not in the vocabulary"),
            })?;
            out.extend_from_slice(bytes);
        }
        Ok(out)
    }
}

/// The bytes of a Python `str` (UTF-8 encoded) or `bytes` literal.
pub fn parse_literal(lit: &str) -> std::result::Result<Vec<u8>, String> {
    let (is_bytes, quoted) = match lit.as_bytes().first() {
        Some(b'b' | b'B') => (true, &lit[1..]),
        Some(b'r' | b'R') => return Err(format!("raw literal {lit} is not supported")),
        _ => (false, lit),
    };
    let quote = quoted
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"')
        .ok_or_else(|| format!("{lit} is not a quoted literal"))?;
    let body = quoted
        .strip_prefix(quote)
        .and_then(|s| s.strip_suffix(quote))
        .filter(|_| quoted.len() >= 2)
        .ok_or_else(|| format!("{lit} is not closed by {quote}"))?;

    let mut out = Vec::with_capacity(body.len());
    let push_char = |out: &mut Vec<u8>, c: char| {
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    };
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if c == quote {
                return Err(format!("{lit}: unescaped {quote} inside the literal"));
            }
            if is_bytes && !c.is_ascii() {
                return Err(format!("{lit}: bytes literals may hold only ASCII"));
            }
            push_char(&mut out, c);
            continue;
        }
        let e = chars
            .next()
            .ok_or_else(|| format!("{lit}: a lone backslash ends the literal"))?;
        let simple = match e {
            '\\' => Some(b'\\'),
            '\'' => Some(b'\''),
            '"' => Some(b'"'),
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let mut hex = |digits: usize| -> std::result::Result<u32, String> {
            let s: String = (0..digits).filter_map(|_| chars.next()).collect();
            if s.len() != digits || !s.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!("{lit}: \\{e} needs {digits} hex digits"));
            }
            u32::from_str_radix(&s, 16).map_err(|err| format!("{lit}: {err}"))
        };
        match e {
            'x' => {
                let v = hex(2)?;
                if is_bytes {
                    out.push(v as u8);
                } else {
                    push_char(&mut out, char::from_u32(v).unwrap_or('\u{fffd}'));
                }
            }
            'u' | 'U' if !is_bytes => {
                let v = hex(if e == 'u' { 4 } else { 8 })?;
                let c = char::from_u32(v)
                    .ok_or_else(|| format!("{lit}: \\{e}{v:x} is not a Unicode scalar value"))?;
                push_char(&mut out, c);
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                if is_bytes {
                    out.push((v & 0xff) as u8);
                } else {
                    push_char(&mut out, char::from_u32(v).unwrap_or('\u{fffd}'));
                }
            }
            'N' if !is_bytes => return Err(format!("{lit}: \\N{{…}} escapes are not supported")),
            // Python keeps unknown escapes verbatim (and `\u` in bytes literals).
            other => {
                out.push(b'\\');
                push_char(&mut out, other);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_parse_exactly_like_python() {
        let cases: &[(&str, &[u8])] = &[
            ("'a'", b"a"),
            ("' the'", b" the"),
            (r"'\n'", b"\n"),
            (r"'\\'", b"\\"),
            (r"'\''", b"'"),
            (r#""'s""#, b"'s"),
            (r#"'"'"#, b"\""),
            (r"'\x00'", &[0]),
            (r"'\t\r'", b"\t\r"),
            // A code point in a str literal: U+00E9, two UTF-8 bytes.
            (r"'\xe9'", &[0xc3, 0xa9]),
            // A byte in a bytes literal.
            (r"b'\xe9'", &[0xe9]),
            (r"b'\xe4\xb8'", &[0xe4, 0xb8]),
            (r"'\u4e2d'", "中".as_bytes()),
            (r"'\U0001f600'", "😀".as_bytes()),
            ("'中文'", "中文".as_bytes()),
            (r"b'a\'b'", b"a'b"),
            (r"'\101'", b"A"),
            // Unknown escapes stay as written; `\u` means nothing in bytes.
            (r"'\q'", b"\\q"),
            (r"b'\u00'", b"\\u00"),
        ];
        for (lit, want) in cases {
            assert_eq!(parse_literal(lit).unwrap(), *want, "{lit}");
        }
        for bad in [r"'abc", "abc", r"'\x4'", r"'\ud800'", "b'é'", "r'a'"] {
            assert!(parse_literal(bad).is_err(), "{bad}");
        }
    }

    /// A small vocabulary in the official format, written the way Python's `repr`
    /// writes it.
    fn vocab() -> String {
        let mut lines: Vec<String> = (0u8..=255)
            .map(|b| {
                let lit = match b {
                    0x20..=0x7e if b != b'\'' && b != b'\\' => format!("'{}'", b as char),
                    b'\'' => r#""'""#.to_string(),
                    b'\\' => r"'\\'".to_string(),
                    b'\n' => r"'\n'".to_string(),
                    _ if b < 0x80 => format!(r"'\x{b:02x}'"),
                    _ => format!(r"b'\x{b:02x}'"),
                };
                format!("{} {lit} 1", b as u32 + 1)
            })
            .collect();
        lines.push("257 ' the' 4".into());
        lines.push("258 ' th' 3".into());
        lines.push("259 'pass' 4".into());
        lines.push(r"260 '\n\n' 2".into());
        lines.push("261 '中' 3".into());
        lines.push(r"262 '\u4e2d\u6587' 6".into());
        lines.push(r"263 b'\xe6\x96' 2".into());
        lines.join("\n")
    }

    fn tokenizer() -> WorldTokenizer {
        WorldTokenizer::parse(Path::new("vocab.txt"), &vocab()).unwrap()
    }

    #[test]
    fn greedy_longest_match_over_bytes() {
        let t = tokenizer();
        assert_eq!(t.vocab_size(), 264);
        // " the" beats " th" + "e"; "pass" is one token; bytes fall back to byte tokens.
        assert_eq!(
            t.encode(" the pass").unwrap(),
            vec![257, b' ' as u32 + 1, 259]
        );
        assert_eq!(t.encode(" thx").unwrap(), vec![258, b'x' as u32 + 1]);
        assert_eq!(t.encode("\n\n\n").unwrap(), vec![260, b'\n' as u32 + 1]);
        // "中文" as one token (from \u escapes) beats "中" + bytes.
        assert_eq!(t.encode("中文中").unwrap(), vec![262, 261]);
        // "文" alone: the bytes-literal prefix token, then a byte token.
        assert_eq!(t.encode("文").unwrap(), vec![263, 0x87 + 1]);
        for text in [" the pass\n\n中文 ok", "a'b\\c", "é"] {
            assert_eq!(t.decode(&t.encode(text).unwrap()).unwrap(), text);
        }
        assert!(t.decode(&[0]).is_err(), "id 0 is not in the file");
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let e = WorldTokenizer::parse(Path::new("v.txt"), "1 'a' 1\n2 'bc' 3\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("v.txt") && e.contains("line 2"), "{e}");
        let e = WorldTokenizer::parse(Path::new("v.txt"), "1 'a' 1\nx 'b' 1\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        let e = WorldTokenizer::parse(Path::new("v.txt"), "1 'a' 1\n")
            .unwrap()
            .encode("ab")
            .unwrap_err()
            .to_string();
        assert!(e.contains("0x62"), "{e}");
    }
}
