//! Writing files so that a reader sees the old content or the new, never half of it.

use std::io::Write;
use std::path::Path;

use tempfile::NamedTempFile;

use crate::{Error, Result};

/// A temporary file in `path`'s directory (created if needed), to be filled and then
/// [`persist`]ed over `path`. Readable by others, as files the user writes normally are
/// (a temporary file is owner-only by default).
pub fn temp_beside(path: &Path) -> Result<NamedTempFile> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    builder.tempfile_in(dir).map_err(|e| Error::io(dir, e))
}

/// Syncs `tmp` and renames it over `path`.
pub fn persist(tmp: NamedTempFile, path: &Path) -> Result<()> {
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over
/// `path`. Creates the parent directory if needed.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = temp_beside(path)?;
    tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
    persist(tmp, path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_content_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/results.json");
        super::write(&path, b"one").unwrap();
        super::write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o044,
                0o044,
                "readable by group and others: {mode:o}"
            );
        }
    }
}
