//! Files only their owner may read: checked when read, created with mode 0600 from the start
//! and replaced atomically (a temporary file in the same directory, then a rename), so no
//! reader ever sees half a file and no other user ever sees any of it, even briefly.

use std::io::{Read as _, Write as _};
use std::path::Path;

use zeroize::Zeroizing;

use super::IdentityError;

/// The contents of `path`, or `None` if it does not exist. Refuses a file that group or
/// others may read: for the identity that would mean its key may have leaked, and for
/// `known_peers` that someone else may have rewritten whom we trust.
pub(crate) fn read(path: &Path) -> Result<Option<Zeroizing<String>>, IdentityError> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(IdentityError::io(path, error)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let metadata = file.metadata().map_err(|error| IdentityError::io(path, error))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::ReadableByOthers { path: path.to_owned(), mode });
        }
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.read_to_end(&mut bytes).map_err(|error| IdentityError::io(path, error))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Some(Zeroizing::new(text.to_owned()))),
        Err(_) => Err(IdentityError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
        )),
    }
}

/// Writes `contents` to `path` atomically with mode 0600, creating the directory (mode 0700)
/// if needed. With `replace` false, an existing file is left alone and this fails, so two
/// processes starting at once cannot both create an identity and have one silently win.
pub(crate) fn write(path: &Path, contents: &[u8], replace: bool) -> Result<(), IdentityError> {
    let io = |error| IdentityError::io(path, error);
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(directory).map_err(io)?;

    let mut temporary = tempfile::Builder::new();
    temporary.prefix(".chatter-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // tempfile's default is 0600 too; saying so keeps it true if that default changes.
        temporary.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let mut file = temporary.tempfile_in(directory).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    let persisted =
        if replace { file.persist(path).map(drop) } else { file.persist_noclobber(path).map(drop) };
    persisted.map_err(|error| io(error.error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn written_files_are_private_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("file");
        write(&path, b"one", false).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let sub = std::fs::metadata(dir.path().join("sub")).unwrap();
        assert_eq!(sub.permissions().mode() & 0o777, 0o700);
        assert!(write(&path, b"two", false).is_err(), "no clobbering without replace");
        write(&path, b"three", true).unwrap();
        assert_eq!(read(&path).unwrap().unwrap().as_str(), "three");
        // Nothing but the file itself is left behind.
        assert_eq!(std::fs::read_dir(dir.path().join("sub")).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn files_others_can_read_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        write(&path, b"x", false).unwrap();
        for mode in [0o640, 0o604, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = read(&path).unwrap_err();
            assert!(matches!(error, IdentityError::ReadableByOthers { .. }), "{error}");
            assert!(error.to_string().contains("chmod 600"), "{error}");
        }
        assert!(read(&dir.path().join("missing")).unwrap().is_none());
    }
}
