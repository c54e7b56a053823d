//! The view model the site is rendered from.
//!
//! Plain data, independent of where it comes from (the SQLite database written
//! by `covfleet compile`, or a test that builds it by hand): a list of
//! [`OwnerRow`]s for the index, and each row's [`FileCoverage`], both read
//! through a [`SiteSource`].

use serde::Serialize;

use crate::cov::FuncCov;

/// One row of the index: a (namespace, owner type, owner, binary) group.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OwnerRow {
    /// Stable identifier of the row in its data source (database key).
    pub id: String,
    pub namespace: String,
    /// `Deployment`, `DaemonSet`, `StatefulSet`, `Job`, `Host`, …
    pub owner_type: String,
    pub owner: String,
    pub binary: String,
    pub pods: Vec<String>,
    pub hosts: Vec<String>,
    pub images: Vec<String>,
    pub containers: Vec<String>,
    pub total_stmts: u64,
    pub covered_stmts: u64,
    /// Identifies the binary across owners (e.g. binary name + meta hash):
    /// the index's totals count each binary once.
    pub binary_key: String,
    /// A hash of the row's coverage inputs when the data source knows one
    /// (the database's merge input hash); pages are rewritten only when it
    /// (or the source text) changes.
    pub input_hash: Option<String>,
    /// Where the binary's source came from, when known (image labels, the
    /// coverage server's identity headers).
    pub source_url: Option<String>,
    pub source_commit: Option<String>,
    /// The Go module path of the binary's main module, when known.
    pub module_path: Option<String>,
}

impl OwnerRow {
    pub fn coverage_pct(&self) -> f64 {
        pct(self.covered_stmts, self.total_stmts)
    }
}

/// Coverage of one source file of one row.
#[derive(Debug, Clone, Default)]
pub struct FileCoverage {
    /// The file as the coverage data names it (`github.com/org/repo/pkg/f.go`,
    /// `/workspace/pkg/f.go`, …).
    pub path: String,
    pub total_stmts: u64,
    pub covered_stmts: u64,
    /// Coverage blocks, in any order.
    pub blocks: Vec<Block>,
}

/// One coverage block: a source range, its statement count and hit count
/// (the shared [`covdata::Block`]).
pub use covdata::Block;

impl FileCoverage {
    /// Builds a file from its blocks, computing the statement totals.
    pub fn from_blocks(path: impl Into<String>, blocks: Vec<Block>) -> FileCoverage {
        let total_stmts = blocks.iter().map(|b| u64::from(b.stmts)).sum();
        let covered_stmts = blocks
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| u64::from(b.stmts))
            .sum();
        FileCoverage {
            path: path.into(),
            total_stmts,
            covered_stmts,
            blocks,
        }
    }
}

/// Where the rows and their files come from.
pub trait SiteSource {
    type Error: std::error::Error + Send + Sync + 'static;
    /// The functions of one row with their units' counts (from the binary's
    /// meta-data). A source without function data returns none, and the
    /// row's page then has no function list. Asked only for pages that are
    /// written: functions are not part of a page's input hash, so they may
    /// change only with the row's `binary_key` or `input_hash` (as they do
    /// in the database: the key carries the meta-data hash).
    fn functions(&self, row: &OwnerRow) -> Result<Vec<FuncCov>, Self::Error> {
        let _ = row;
        Ok(Vec::new())
    }
    /// All index rows.
    fn rows(&self) -> Result<Vec<OwnerRow>, Self::Error>;
    /// The files of one row, with their blocks.
    fn files(&self, row: &OwnerRow) -> Result<Vec<FileCoverage>, Self::Error>;
    /// Phases and collection times, for the index's phase switch and run
    /// history (none by default).
    fn history(&self) -> Result<crate::history::History, Self::Error> {
        Ok(crate::history::History::default())
    }
}

/// An in-memory source: rows with their files.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    pub rows: Vec<(OwnerRow, Vec<FileCoverage>)>,
}

impl SiteSource for MemorySource {
    type Error = std::convert::Infallible;
    fn rows(&self) -> Result<Vec<OwnerRow>, Self::Error> {
        Ok(self.rows.iter().map(|(r, _)| r.clone()).collect())
    }
    fn files(&self, row: &OwnerRow) -> Result<Vec<FileCoverage>, Self::Error> {
        Ok(self
            .rows
            .iter()
            .find(|(r, _)| r.id == row.id)
            .map(|(_, f)| f.clone())
            .unwrap_or_default())
    }
}

/// A malformed line of a Go text profile.
#[derive(Debug, thiserror::Error)]
#[error("line {line} of the coverage profile: {why}: {text:?}")]
pub struct ProfileError {
    pub line: usize,
    pub why: &'static str,
    pub text: String,
}

/// Reads a Go text profile (`mode: …` then `file:L.C,L.C stmts count` lines)
/// into files in order of first appearance; repeated blocks add up, as in
/// `go tool cover`.
pub fn files_from_profile(text: &str) -> Result<Vec<FileCoverage>, ProfileError> {
    use std::collections::HashMap;
    let mut order: Vec<String> = Vec::new();
    // Per file: its blocks, and each range's index among them.
    type Blocks = (Vec<Block>, HashMap<(u32, u32, u32, u32), usize>);
    let mut by_file: HashMap<String, Blocks> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let err = |why| ProfileError {
            line: i + 1,
            why,
            text: line.chars().take(200).collect(),
        };
        if line.trim().is_empty() || (i == 0 && line.starts_with("mode:")) {
            continue;
        }
        let (file, rest) = line.rsplit_once(':').ok_or_else(|| err("no ':'"))?;
        let mut it = rest.split_whitespace();
        let (Some(range), Some(stmts), Some(count), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(err("want `range stmts count`"));
        };
        let (a, b) = range.split_once(',').ok_or_else(|| err("bad range"))?;
        let lc = |s: &str| -> Option<(u32, u32)> {
            let (l, c) = s.split_once('.')?;
            Some((l.parse().ok()?, c.parse().ok()?))
        };
        let ((sl, sc), (el, ec)) = lc(a).zip(lc(b)).ok_or_else(|| err("bad position"))?;
        let stmts: u32 = stmts.parse().map_err(|_| err("bad statement count"))?;
        let count: u64 = count.parse().map_err(|_| err("bad count"))?;
        let entry = by_file.entry(file.to_string()).or_insert_with(|| {
            order.push(file.to_string());
            (Vec::new(), HashMap::new())
        });
        let key = (sl, sc, el, ec);
        if let Some(&k) = entry.1.get(&key) {
            entry.0[k].count = entry.0[k].count.saturating_add(count);
        } else {
            entry.1.insert(key, entry.0.len());
            entry.0.push(Block {
                st_line: sl,
                st_col: sc,
                en_line: el,
                en_col: ec,
                stmts,
                count,
            });
        }
    }
    Ok(order
        .into_iter()
        .map(|f| {
            let blocks = by_file.remove(&f).map(|e| e.0).unwrap_or_default();
            FileCoverage::from_blocks(f, blocks)
        })
        .collect())
}

/// Percentage with 0 for an empty total.
pub fn pct(covered: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        covered as f64 * 100.0 / total as f64
    }
}

/// Per-line state of an annotated file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineState {
    /// No coverage block touches the line.
    None,
    /// Every block on the line ran.
    Covered,
    /// No block on the line ran.
    Missed,
    /// Some blocks on the line ran, some did not.
    Partial,
}

impl LineState {
    pub fn as_char(self) -> char {
        match self {
            LineState::None => '.',
            LineState::Covered => 'c',
            LineState::Missed => 'm',
            LineState::Partial => 'p',
        }
    }
}

/// Per-line states and hit counts for a file with `nlines` lines (1-based
/// lines map to index `line-1`). A line's count is the highest count of the
/// blocks touching it. A block ending at column 1 of a later line does not
/// touch that line (it covers nothing on it).
pub fn line_states(blocks: &[Block], nlines: usize) -> (Vec<LineState>, Vec<u64>) {
    let mut state = vec![LineState::None; nlines];
    let mut counts = vec![0u64; nlines];
    for b in blocks {
        if b.st_line == 0 || b.en_line < b.st_line {
            continue;
        }
        let first = b.st_line as usize;
        let mut last = b.en_line as usize;
        // A block like `{` … `}` ending at column 1 of the next line does not
        // cover code on that line.
        if b.en_col <= 1 && last > first {
            last -= 1;
        }
        for line in first..=last.min(nlines) {
            let i = line - 1;
            let hit = b.count > 0;
            state[i] = match (state[i], hit) {
                (LineState::None, true) => LineState::Covered,
                (LineState::None, false) => LineState::Missed,
                (LineState::Covered, false) | (LineState::Missed, true) => LineState::Partial,
                (s, _) => s,
            };
            counts[i] = counts[i].max(b.count);
        }
    }
    (state, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blk(sl: u32, sc: u32, el: u32, ec: u32, count: u64) -> Block {
        Block {
            st_line: sl,
            st_col: sc,
            en_line: el,
            en_col: ec,
            stmts: 1,
            count,
        }
    }

    #[test]
    fn line_states_mark_covered_missed_and_partial() {
        let blocks = [blk(2, 10, 4, 2, 3), blk(4, 2, 6, 3, 0), blk(8, 1, 9, 1, 0)];
        let (s, c) = line_states(&blocks, 10);
        let chars: String = s.iter().map(|s| s.as_char()).collect();
        assert_eq!(chars, ".ccpmm.m..");
        assert_eq!(c[1], 3);
        assert_eq!(c[3], 3);
        assert_eq!(c[4], 0);
    }

    #[test]
    fn profiles_parse_and_merge_repeats() {
        let p = "mode: count\na/b.go:1.2,3.4 2 5\na/c.go:1.1,1.9 1 0\na/b.go:1.2,3.4 2 1\n";
        let f = files_from_profile(p).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].path, "a/b.go");
        assert_eq!(f[0].blocks[0].count, 6);
        assert_eq!((f[1].total_stmts, f[1].covered_stmts), (1, 0));
        let e = files_from_profile("mode: set\nx.go:1.2 1\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn blocks_past_the_end_are_clipped() {
        let (s, _) = line_states(&[blk(3, 1, 50, 4, 1)], 4);
        assert_eq!(s.len(), 4);
        assert_eq!(s[3], LineState::Covered);
    }

    #[test]
    fn file_totals_come_from_blocks() {
        let mut b = blk(1, 1, 2, 2, 0);
        b.stmts = 4;
        let f = FileCoverage::from_blocks("a.go", vec![b, blk(3, 1, 3, 9, 7)]);
        assert_eq!((f.total_stmts, f.covered_stmts), (5, 1));
    }
}
