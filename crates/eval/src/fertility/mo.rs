//! GNU gettext `.mo` catalogs read as parallel text: each entry's English source
//! (`msgid`) and its translation (`msgstr`). The gettext crates only look strings up;
//! none lists a catalog's entries, which is what measuring fertility needs.

/// One translated message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The English source, without its `msgctxt`; the singular of a plural message.
    pub source: String,
    /// Its translation; the first form of a plural message.
    pub translation: String,
}

const MAGIC: u32 = 0x9504_12de;

/// The entries of a `.mo` file, without its header and without untranslated ones.
/// `Err` says what is wrong with the file, in a few words.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let word = |at: usize, le: bool| -> Result<u32, String> {
        let b: [u8; 4] = bytes
            .get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| format!("truncated at byte {at} of {}", bytes.len()))?;
        Ok(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let le = match word(0, true)? {
        MAGIC => true,
        _ if word(0, false)? == MAGIC => false,
        m => return Err(format!("not a gettext .mo catalog (magic {m:#010x})")),
    };
    let major = word(4, le)? >> 16;
    if major > 1 {
        return Err(format!("unknown .mo revision {major}"));
    }
    let count = word(8, le)? as usize;
    let (originals, translations) = (word(12, le)? as usize, word(16, le)? as usize);
    let string = |table: usize, i: usize| -> Result<&[u8], String> {
        let len = word(table + 8 * i, le)? as usize;
        let at = word(table + 8 * i + 4, le)? as usize;
        bytes
            .get(at..at + len)
            .ok_or_else(|| format!("string {i} (bytes {at}..{}) lies past the end", at + len))
    };
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let (id, tr) = (string(originals, i)?, string(translations, i)?);
        // `msgctxt` comes before an EOT; plural forms are NUL-separated.
        let id = id.rsplit(|&b| b == 4).next().unwrap_or(id);
        let first = |s: &[u8]| -> Result<String, String> {
            let s = s.split(|&b| b == 0).next().unwrap_or(s);
            String::from_utf8(s.to_vec()).map_err(|_| format!("string {i} is not UTF-8"))
        };
        let (source, translation) = (first(id)?, first(tr)?);
        if !source.is_empty() && !translation.is_empty() {
            entries.push(Entry {
                source,
                translation,
            });
        }
    }
    Ok(entries)
}

/// A `.mo` file of `entries` (little-endian, no hash table), as `msgfmt` would write
/// it: for tests, which may not find one on the machine.
pub fn write(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut all: Vec<(&str, &str)> = vec![("", "Content-Type: text/plain; charset=UTF-8\n")];
    all.extend_from_slice(entries);
    all.sort_by(|a, b| a.0.cmp(b.0));
    let n = all.len();
    let (originals, translations) = (28, 28 + 8 * n);
    let mut strings_at = 28 + 16 * n;
    let mut head = Vec::new();
    for v in [
        MAGIC,
        0,
        n as u32,
        originals as u32,
        translations as u32,
        0,
        0,
    ] {
        head.extend_from_slice(&v.to_le_bytes());
    }
    let mut tables = [Vec::new(), Vec::new()];
    let mut data = Vec::new();
    for (table, pick) in tables.iter_mut().zip([0usize, 1]) {
        for e in &all {
            let s = if pick == 0 { e.0 } else { e.1 };
            table.extend_from_slice(&(s.len() as u32).to_le_bytes());
            table.extend_from_slice(&(strings_at as u32).to_le_bytes());
            data.extend_from_slice(s.as_bytes());
            data.push(0);
            strings_at += s.len() + 1;
        }
    }
    [head, tables[0].clone(), tables[1].clone(), data].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_without_the_header() {
        let e = parse(&write(&[("Open file", "Buka berkas"), ("Quit", "Keluar")])).unwrap();
        assert_eq!(
            e,
            vec![
                Entry {
                    source: "Open file".into(),
                    translation: "Buka berkas".into()
                },
                Entry {
                    source: "Quit".into(),
                    translation: "Keluar".into()
                },
            ]
        );
    }

    #[test]
    fn context_and_plural_forms_are_stripped() {
        let e = parse(&write(&[("menu\u{4}File\0Files", "Berkas\0Berkas-berkas")])).unwrap();
        assert_eq!(e[0].source, "File");
        assert_eq!(e[0].translation, "Berkas");
    }

    #[test]
    fn bad_files_are_named_not_panicked_on() {
        assert!(parse(b"hello world, not a catalog")
            .unwrap_err()
            .contains("not a gettext"));
        let good = write(&[("a", "b")]);
        let e = parse(&good[..good.len() - 3]).unwrap_err();
        assert!(e.contains("past the end"), "{e}");
        assert!(parse(&good[..10]).unwrap_err().contains("truncated"));
    }
}
