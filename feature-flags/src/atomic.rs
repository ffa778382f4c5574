//! The one way the workspace replaces a file: [`write_atomically`].
//!
//! The flags file, the Unleash backup, `fig flags export`, the proxy's rollback state, its shadow
//! samples and its generated admin token all go through it. It lives here because this is the
//! lowest crate the others depend on (`strangler-proxy` and the CLI both depend on
//! `feature-flags`).
//!
//! The new content goes into a temporary file created exclusively (`O_EXCL`, a random name, never
//! through a symlink someone planted) in the target's own directory, so the rename cannot cross
//! file systems. The file is written, given its mode, synced, renamed over the target, and the
//! directory is synced so the rename itself survives a crash. A reader sees the old file or the
//! new one, never a mix; when anything fails, the old file is left as it was and the temporary
//! file is removed. A symlink at the target is replaced, not followed.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;

/// The permissions of a file written by [`write_atomically`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    /// Keep the old file's permissions; a new file gets the default (0666 less the umask).
    Keep,
    /// Only the owner may read and write it (0600 on Unix), also when the old file was more
    /// open: for secrets such as tokens.
    OwnerOnly,
}

/// Replaces `path` with `bytes` atomically (see the module docs); `mode` says which permissions
/// the new file gets.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: FileMode) -> std::io::Result<()> {
    write_atomically_with(path, mode, |file| file.write_all(bytes))
}

/// As [`write_atomically`], but only when `path` does not exist yet: when it does (also when
/// another process created it meanwhile), the error is `AlreadyExists` and the file is
/// untouched. For a file made once, such as a generated token.
pub fn create_atomically(path: &Path, bytes: &[u8], mode: FileMode) -> std::io::Result<()> {
    write(path, mode, false, |file| file.write_all(bytes))
}

/// As [`write_atomically`], with the content written by `write` into the temporary file. When
/// `write` fails, the target is untouched and the error is returned.
pub fn write_atomically_with(
    path: &Path,
    mode: FileMode,
    write_content: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    write(path, mode, true, write_content)
}

fn write(
    path: &Path,
    mode: FileMode,
    replace: bool,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(file_name);
    prefix.push(".");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    let exact_mode = {
        use std::os::unix::fs::PermissionsExt as _;
        let exact = match mode {
            FileMode::OwnerOnly => Some(0o600),
            FileMode::Keep => std::fs::metadata(path)
                .ok()
                .map(|meta| meta.permissions().mode() & 0o7777),
        };
        // Created with the mode it ends with (or 0666 less the umask for a new file), so a
        // secret is never readable by others, not even for a moment.
        builder.permissions(std::fs::Permissions::from_mode(exact.unwrap_or(0o666)));
        exact
    };
    #[cfg(not(unix))]
    let _ = mode;
    let mut tmp = builder.tempfile_in(dir)?;
    write(tmp.as_file_mut())?;
    #[cfg(unix)]
    if let Some(exact) = exact_mode {
        use std::os::unix::fs::PermissionsExt as _;
        // The umask narrowed the mode at creation; the old file's mode is kept exactly.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(exact))?;
    }
    tmp.as_file().sync_all()?;
    if replace {
        tmp.persist(path).map_err(|err| err.error)?;
    } else {
        tmp.persist_noclobber(path).map_err(|err| err.error)?;
    }
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}
