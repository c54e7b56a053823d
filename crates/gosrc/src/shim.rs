//! The `go` wrapper that builds everything with `-cover -covermode=atomic`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// The shim script (POSIX sh). See its header comment for the rules.
pub const SHIM_SCRIPT: &str = include_str!("shim.sh");

const SHIM_MARK: &str = "covfleet go shim";

/// Writes `dir/go` (mode 0755), creating `dir` if needed. Refuses to
/// overwrite a `go` that is not a covfleet shim (such as the real toolchain).
pub fn install(dir: &Path) -> Result<PathBuf, Error> {
    install_with(dir, None)
}

/// [`install`], recording `coverpkg` (comma-separated package patterns) as
/// the shim's default `-coverpkg` (`$COVFLEET_COVERPKG` still overrides it).
pub fn install_with(dir: &Path, coverpkg: Option<&str>) -> Result<PathBuf, Error> {
    let script = match coverpkg.filter(|c| !c.is_empty()) {
        None => SHIM_SCRIPT.to_string(),
        Some(c) => {
            let ok = c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._/,~+@-".contains(&b));
            if !ok {
                return Err(Error::CoverPkg {
                    value: c.to_string(),
                });
            }
            SHIM_SCRIPT.replacen("default_coverpkg=''", &format!("default_coverpkg='{c}'"), 1)
        }
    };
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let target = dir.join("go");
    if let Ok(existing) = fs::read(&target) {
        let head = &existing[..existing.len().min(512)];
        if !String::from_utf8_lossy(head).contains(SHIM_MARK) {
            return Err(Error::NotOurs { path: target });
        }
    }
    let tmp = dir.join(format!(".go.covfleet-tmp-{}", std::process::id()));
    fs::write(&tmp, script).map_err(|e| Error::io(&tmp, e))?;
    set_executable(&tmp)?;
    fs::rename(&tmp, &target).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(&target, e)
    })?;
    Ok(target)
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(path, e))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> Result<(), Error> {
    Ok(())
}
