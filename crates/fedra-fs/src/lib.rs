//! Durable file writes: the one way Fedra replaces a file.
//!
//! [`write_atomic`] writes a temporary file beside the target, fsyncs it, renames it
//! over the target and fsyncs the directory, so that after it returns the new
//! content survives a crash, and at any moment a reader sees either the old file or
//! the new one, never a torn mix. Every checkpoint, cache, key, model and report
//! writer goes through it; code that deletes an older file after writing a newer
//! one must do so only after `write_atomic` returned.
//!
//! Files are created with the mode the caller asks for ([`Mode`]): secrets and a
//! party's private outputs `0600`, public ones `0644` (on Unix; elsewhere the
//! platform default). The temporary file is created exclusively (`O_EXCL`), so a
//! symlink planted at its name is never followed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Who may read a file written by [`write_atomic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Owner only (`0600`): keys, checkpoints, private outputs.
    Private,
    /// Owner writes, everyone reads (`0644`).
    Public,
}

impl Mode {
    #[cfg(unix)]
    fn bits(self) -> u32 {
        match self {
            Mode::Private => 0o600,
            Mode::Public => 0o644,
        }
    }
}

/// Replaces `path` with `contents` durably and atomically (see the crate docs).
///
/// The parent directory must exist. On error the target is unchanged and the
/// temporary file is removed.
pub fn write_atomic(path: &Path, contents: &[u8], mode: Mode) -> io::Result<()> {
    write_atomic_with(path, mode, |f| f.write_all(contents))
}

/// Like [`write_atomic`], with the content produced by `fill` writing into the
/// (buffered) temporary file — for large outputs that should not be built in memory.
pub fn write_atomic_with(
    path: &Path,
    mode: Mode,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temp_path(path)?;
    let result = (|| {
        let file = create_new(&tmp, mode)?;
        let mut w = io::BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` (and its parents) and makes `dir` itself owner-only (`0700` on Unix):
/// the folder of a party's private outputs (aligned data, models, predictions, keys).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// A temporary name beside `path`, unique to this process and call.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(path.with_file_name(tmp_name))
}

fn create_new(path: &Path, mode: Mode) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode.bits());
    }
    #[cfg(not(unix))]
    let _ = mode;
    o.open(path)
}

/// Makes a rename in `path`'s directory durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("model.json");
        write_atomic(&p, b"one", Mode::Public).unwrap();
        write_atomic(&p, b"two", Mode::Public).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn failed_fill_keeps_the_old_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cache.bin");
        write_atomic(&p, b"old", Mode::Private).unwrap();
        let e = write_atomic_with(&p, Mode::Private, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "disk full");
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("key.pem");
        write_atomic(&p, b"secret", Mode::Private).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn private_dirs_are_0700() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out/guest");
        create_private_dir(&p).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn missing_directory_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("nope/x");
        assert!(write_atomic(&p, b"x", Mode::Public).is_err());
    }
}
