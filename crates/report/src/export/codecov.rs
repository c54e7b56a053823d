//! Codecov's JSON coverage format (`{"coverage": {"path": {"line": hits}}}`),
//! one report per owner uploaded under its own flag so Codecov's
//! carry-forward keeps owners that were not collected this time.
//!
//! A line's value is the sum of the counts of the blocks spanning it, or
//! `"covered/blocks"` when only some of them ran (a partial line).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::ExportData;

/// The Codecov JSON report of an export.
pub fn codecov_json(data: &ExportData) -> String {
    let mut cov = serde_json::Map::new();
    let mut files: Vec<&super::ExportFile> = data.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for f in files {
        // line → (sum of counts, blocks run, blocks)
        let mut lines: BTreeMap<u32, (u64, u32, u32)> = BTreeMap::new();
        for (u, n) in f.units() {
            for l in u.st_line..=u.en_line.max(u.st_line) {
                let e = lines.entry(l).or_insert((0, 0, 0));
                e.0 = e.0.saturating_add(n);
                e.1 += u32::from(n > 0);
                e.2 += 1;
            }
        }
        let mut m = serde_json::Map::new();
        for (l, (sum, run, all)) in lines {
            let v = if run > 0 && run < all {
                serde_json::Value::String(format!("{run}/{all}"))
            } else {
                serde_json::Value::from(sum)
            };
            m.insert(l.to_string(), v);
        }
        cov.insert(f.path.clone(), serde_json::Value::Object(m));
    }
    let mut s =
        serde_json::to_string_pretty(&serde_json::json!({ "coverage": cov })).unwrap_or_default();
    s.push('\n');
    s
}

/// The Codecov flag of an export: `<namespace>-<owner>` restricted to
/// Codecov's alphabet (`[A-Za-z0-9_.-]`, at most 45 characters; longer names
/// keep 36 characters and a hash of the whole).
pub fn codecov_flag(data: &ExportData) -> String {
    let raw = match data.owners.as_slice() {
        [o] => format!("{}-{}", o.namespace, o.owner_name),
        _ => "merged".to_string(),
    };
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() <= 45 {
        return clean;
    }
    let h = raw.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{}-{:08x}", &clean[..36], h as u32)
}

/// A shell script uploading each `(flag, file)` under its flag with
/// Codecov's CLI, plus the carry-forward setting to put in `codecov.yml`.
pub fn codecov_upload_script(flags: &[(String, String)]) -> String {
    let mut s = String::from(
        "#!/bin/sh\n# Written by `covfleet export --format codecov`: one upload per flag.\n\
         # Enable carry-forward in codecov.yml so flags not uploaded this time keep\n\
         # their last coverage:\n#   flag_management:\n#     default_rules:\n#       carryforward: true\n\
         set -e\ncd \"$(dirname \"$0\")\"\n",
    );
    for (flag, file) in flags {
        let _ = writeln!(
            s,
            "codecovcli do-upload --disable-search --flag '{flag}' --file '{file}' \"$@\""
        );
    }
    s
}
