//! Writing the static site: `index.html`, one page per row under `b/`, the
//! per-file coverage data next to each page, the source texts under `src/`
//! (shared between pages), and the assets.
//!
//! Everything is local: no CDN, no fetch (pages work from `file://`). A
//! file's data and text are loaded on demand through `<script>` tags, bundled
//! (per page, and per package for sources) to keep the number of files low,
//! so a binary with thousands of files opens instantly.
//!
//! Pages carry the hash of their inputs (`<meta name="covfleet-input">`);
//! a page whose inputs did not change is neither regenerated nor rewritten.
//! Other files are written only when their bytes differ.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use askama::Template;
use covdata::hash::{Fnv128, HashWriter};
use serde::Serialize;

use crate::cov::FuncCov;
use crate::funcs;
use crate::model::{FileCoverage, OwnerRow, SiteSource, line_states};
use crate::source::{self, SourceIndex};

/// Bump when the generated HTML/JSON changes shape: forces a rewrite.
const FORMAT_VERSION: &str = "covfleet-site-2";

const CSS: &str = include_str!("../assets/covfleet.css");
const INDEX_JS: &str = include_str!("../assets/index.js");
const BINARY_JS: &str = include_str!("../assets/binary.js");
/// Part of every page's input hash: a changed template rewrites the pages.
const BINARY_TEMPLATE: &str = include_str!("../templates/binary.html");

/// Errors that stop a render (per-row problems are reported in [`Summary`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the rows to render")]
    Rows(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rendering the template of {what}")]
    Template {
        what: String,
        #[source]
        source: askama::Error,
    },
}

/// What to render, and where.
#[derive(Debug, Clone)]
pub struct Options {
    pub out_dir: PathBuf,
    /// `DIR/repos`, the checkouts of `covfleet clone-sources`.
    pub repos_dir: PathBuf,
    /// More source roots (each a module root with a `go.mod`).
    pub extra_source_roots: Vec<PathBuf>,
    /// Shown in the page titles.
    pub title: String,
}

/// What a render did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub rows: usize,
    pub pages_written: usize,
    pub pages_unchanged: usize,
    pub files_with_source: usize,
    pub files_without_source: usize,
    pub stale_removed: usize,
    /// Rows whose page failed (the index still links them, greyed out).
    pub row_errors: Vec<String>,
}

/// Rows whose files are fetched before their pages are written in parallel.
const CHUNK: usize = 64;

/// Renders the whole site.
///
/// Rows' files are read from `src` on the calling thread (a database handle
/// need not be shared), then each chunk of pages is built and written on all
/// cores.
pub fn render<S: SiteSource>(src: &S, opts: &Options) -> Result<Summary, Error> {
    use rayon::prelude::*;

    let rows = src.rows().map_err(|e| Error::Rows(Box::new(e)))?;
    let index = SourceIndex::new(&opts.repos_dir, opts.extra_source_roots.clone());
    let mut summary = Summary {
        rows: rows.len(),
        ..Summary::default()
    };
    let pages_dir = opts.out_dir.join("b");
    create_dir(&pages_dir)?;
    create_dir(&opts.out_dir.join("src"))?;
    create_dir(&opts.out_dir.join("assets"))?;
    // Temporary files of an earlier run that was killed mid-write.
    remove_stale_temporaries(&opts.out_dir);
    write_if_changed(&opts.out_dir.join("assets/covfleet.css"), CSS.as_bytes())?;
    write_if_changed(&opts.out_dir.join("assets/index.js"), INDEX_JS.as_bytes())?;
    write_if_changed(&opts.out_dir.join("assets/binary.js"), BINARY_JS.as_bytes())?;

    let mut slugs = Vec::with_capacity(rows.len());
    let mut used = HashSet::new();
    for row in &rows {
        let mut slug = page_slug(row);
        while !used.insert(slug.clone()) {
            slug.push('_');
        }
        slugs.push(slug);
    }

    let mut index_rows = Vec::with_capacity(rows.len());
    let mut sources_in_use: HashSet<String> = HashSet::new();
    let mut unions = BinaryUnions::default();
    let work: Vec<(&OwnerRow, &String)> = rows.iter().zip(&slugs).collect();
    for chunk in work.chunks(CHUNK) {
        let fetched: Vec<_> = chunk
            .iter()
            .map(|(row, _)| src.files(row).map_err(|e| RowError::Files(Box::new(e))))
            .collect();
        for ((row, _), files) in chunk.iter().zip(&fetched) {
            if let Ok(files) = files {
                unions.add(row, files);
            }
        }
        let prepared: Vec<Result<PreparedRow, RowError>> = chunk
            .par_iter()
            .zip(fetched)
            .map(|((row, slug), files)| Ok(prepare_row(&index, opts, row, slug, files?)))
            .collect();
        // Functions only for the pages that are written.
        let funcs: Vec<Result<Vec<FuncCov>, RowError>> = chunk
            .iter()
            .zip(&prepared)
            .map(|((row, _), p)| match p {
                Ok(p) if p.unchanged.is_none() => src
                    .functions(row)
                    .map_err(|e| RowError::Functions(Box::new(e))),
                _ => Ok(Vec::new()),
            })
            .collect();
        let outcomes: Vec<Result<RowOutcome, RowError>> = chunk
            .par_iter()
            .zip(prepared)
            .zip(funcs)
            .map(|(((row, slug), p), funcs)| {
                let p = p?;
                match p.unchanged {
                    Some(outcome) => Ok(outcome),
                    None => write_row(opts, row, slug, p, &funcs?),
                }
            })
            .collect();
        for ((row, slug), outcome) in chunk.iter().zip(outcomes) {
            let ok = match outcome {
                Ok(o) => {
                    if o.written {
                        summary.pages_written += 1;
                    } else {
                        summary.pages_unchanged += 1;
                    }
                    summary.files_with_source += o.with_source;
                    summary.files_without_source += o.without_source;
                    sources_in_use.extend(o.sources);
                    true
                }
                Err(e) => {
                    summary.row_errors.push(format!(
                        "{}/{}/{}: {}",
                        row.namespace,
                        row.owner,
                        row.binary,
                        db::error::chain(&e)
                    ));
                    false
                }
            };
            index_rows.push(IndexRow::new(row, ok.then(|| format!("b/{slug}.html"))));
        }
    }

    let history = src.history().map_err(|e| Error::Rows(Box::new(e)))?;
    let (phases, times) = crate::history::to_json(&history, &rows);
    let data = IndexData {
        title: &opts.title,
        rows: index_rows,
        bins: unions.covered(),
        phases,
        times,
    };
    let page = IndexPage {
        title: &opts.title,
        data: script_json(&data),
        diffs: diff_pages(&opts.out_dir),
        histories: linked_pages(&opts.out_dir, LinkedPage::History),
    };
    let html = page.render().map_err(|source| Error::Template {
        what: "index.html".into(),
        source,
    })?;
    write_if_changed(&opts.out_dir.join("index.html"), html.as_bytes())?;

    // Pages and data dirs of rows that are gone, and sources no page uses.
    let keep: BTreeSet<String> = slugs.iter().cloned().collect();
    if let Ok(rd) = std::fs::read_dir(&pages_dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".html").unwrap_or(&name).to_string();
            if keep.contains(&stem) {
                continue;
            }
            let path = e.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path).is_ok()
            } else {
                std::fs::remove_file(&path).is_ok()
            };
            summary.stale_removed += usize::from(removed);
        }
    }
    if let Ok(rd) = std::fs::read_dir(opts.out_dir.join("src")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".js").unwrap_or(&name);
            if !sources_in_use.contains(stem) {
                summary.stale_removed += usize::from(std::fs::remove_file(e.path()).is_ok());
            }
        }
    }
    Ok(summary)
}

#[derive(Debug, thiserror::Error)]
enum RowError {
    #[error("reading its files")]
    Files(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("reading its functions")]
    Functions(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Site(#[from] Error),
}

/// One file of a page, as the page's JSON lists it. The JSON keys are one
/// or two letters because a page of a large binary lists thousands of files;
/// `binary.js` reads them under the same names.
#[derive(Debug, Serialize)]
struct PageFile<'a> {
    /// `p`: the path as in the coverage data.
    #[serde(rename = "p")]
    path: &'a str,
    /// `t`: statements in the file.
    #[serde(rename = "t")]
    total_stmts: u64,
    /// `c`: statements covered.
    #[serde(rename = "c")]
    covered_stmts: u64,
    /// `s`: whether the source was found.
    #[serde(rename = "s")]
    has_source: bool,
    /// `n`: number of lines (0 without source).
    #[serde(rename = "n")]
    lines: usize,
    /// `d`: number of the page's data script holding the file (`<page>/<d>.js`).
    #[serde(rename = "d")]
    data_script: usize,
    /// `h`: hash of the source text …
    #[serde(rename = "h")]
    source_hash: Option<String>,
    /// `sb`: … found in the shared script `../src/<sb>.js`.
    #[serde(rename = "sb")]
    source_bundle: Option<String>,
    /// `fn`: the file's functions in the page's function list and their
    /// statements never run (absent without functions).
    #[serde(rename = "fn", skip_serializing_if = "Option::is_none")]
    functions: Option<(usize, u64)>,
}

#[derive(Debug, Serialize)]
struct PageData<'a> {
    title: &'a str,
    row: IndexRow,
    source_root: Option<String>,
    source_via: Option<&'static str>,
    /// The page's data scripts' directory, relative to the page.
    data_dir: &'a str,
    /// `pk`: the package tree (see [`package_tree`]).
    #[serde(rename = "pk")]
    packages: Vec<PkgNode>,
    /// `fn`: how many functions `<data_dir>/funcs.js` lists (0: none, no script).
    #[serde(rename = "fn")]
    functions: usize,
    files: Vec<PageFile<'a>>,
}

/// The script of a page's function list, in its data directory:
/// `covfleetFuncs([[file, line, name, receiver, covered, total], …])`, with
/// `file` an index into the page's files. Loaded when the list is opened.
const FUNCS_SCRIPT: &str = "funcs.js";

/// One function of a page's list: (file index, declaration line, name,
/// receiver or "", statements covered, statements).
type PageFunc = (usize, u32, String, String, u64, u64);

/// The functions of a page as `covfleet report --func` lists them (same
/// lines, names and statement counts: [`funcs::lines_of`]), the source
/// texts the page shows used to find each `func` keyword. Functions of files
/// the page does not list are left out.
fn page_functions(
    files: &[FileCoverage],
    texts: &[Option<String>],
    funcs: &[FuncCov],
) -> Vec<PageFunc> {
    if funcs.is_empty() {
        return Vec::new();
    }
    let index: HashMap<&str, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_str(), i))
        .collect();
    let lines = funcs::lines_of(funcs, |file| {
        let text = texts.get(*index.get(file)?)?.as_deref()?;
        Some(text.lines().map(str::to_string).collect())
    });
    lines
        .into_iter()
        .filter_map(|l| {
            let i = *index.get(l.file.as_str())?;
            Some((
                i,
                l.line,
                l.name,
                l.receiver.unwrap_or_default(),
                l.covered,
                l.total,
            ))
        })
        .collect()
}

/// A node of a page's package tree: a directory of the coverage paths
/// (an import path, for module builds) with everything under it. Chains of
/// directories holding nothing but one subdirectory are one node
/// (`github.com/acme/api`), so the tree starts where the code does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PkgNode {
    /// `n`: the node's name below its parent (one or more path segments).
    #[serde(rename = "n")]
    pub name: String,
    /// `p`: the full directory path.
    #[serde(rename = "p")]
    pub path: String,
    /// `c`: statements covered in the directory and below.
    #[serde(rename = "c")]
    pub covered: u64,
    /// `t`: statements in the directory and below.
    #[serde(rename = "t")]
    pub total: u64,
    /// `f`: files in the directory and below.
    #[serde(rename = "f")]
    pub files: usize,
    /// `o`: files directly in the directory (0: only subdirectories).
    #[serde(rename = "o")]
    pub own_files: usize,
    /// `k`: subdirectories, by name.
    #[serde(rename = "k")]
    pub children: Vec<PkgNode>,
}

/// The package tree of a page's files: directories nested by path segment,
/// each with the statements of every file in and below it.
pub fn package_tree(files: &[FileCoverage]) -> Vec<PkgNode> {
    #[derive(Default)]
    struct Dir<'a> {
        own: (u64, u64, usize),
        sub: BTreeMap<&'a str, Dir<'a>>,
    }
    let mut root = Dir::default();
    for f in files {
        let dir = f.path.rsplit_once('/').map_or("", |(d, _)| d);
        let mut node = &mut root;
        if !dir.is_empty() {
            for seg in dir.split('/') {
                node = node.sub.entry(seg).or_default();
            }
        }
        node.own.0 += f.covered_stmts;
        node.own.1 += f.total_stmts;
        node.own.2 += 1;
    }
    fn build(name: &str, path: String, d: Dir<'_>) -> PkgNode {
        let mut children: Vec<PkgNode> = d
            .sub
            .into_iter()
            .map(|(seg, sub)| build(seg, format!("{path}/{seg}"), sub))
            .collect();
        // A directory holding only one subdirectory merges with it.
        if d.own.2 == 0 && children.len() == 1 {
            let mut only = children.remove(0);
            only.name = format!("{name}/{}", only.name);
            return only;
        }
        let (mut c, mut t, mut n) = d.own;
        for k in &children {
            c += k.covered;
            t += k.total;
            n += k.files;
        }
        PkgNode {
            name: name.to_string(),
            path,
            covered: c,
            total: t,
            files: n,
            own_files: d.own.2,
            children,
        }
    }
    let top: Vec<PkgNode> = root
        .sub
        .into_iter()
        .map(|(seg, sub)| build(seg, seg.to_string(), sub))
        .collect();
    if root.own.2 == 0 {
        return top;
    }
    // Files without a directory: a top node of their own, first.
    let mut out = vec![PkgNode {
        name: String::new(),
        path: String::new(),
        covered: root.own.0,
        total: root.own.1,
        files: root.own.2,
        own_files: root.own.2,
        children: Vec::new(),
    }];
    out.extend(top);
    out
}

/// Per-file coverage, loaded by the page on demand.
#[derive(Debug, Serialize)]
struct FileData {
    /// One char per line: `.` no code, `c` covered, `m` missed, `p` partial
    /// (empty without source).
    st: String,
    /// Hit count per line (0 for lines without code).
    n: Vec<u64>,
    /// Blocks: `[st_line, st_col, en_line, en_col, stmts, count]`.
    b: Vec<[u64; 6]>,
}

/// What rendering one row did.
#[derive(Debug)]
struct RowOutcome {
    written: bool,
    with_source: usize,
    without_source: usize,
    /// Keys of the shared source scripts the page uses.
    sources: Vec<String>,
}

/// The list of shared sources a page uses, kept next to its data files so an
/// unchanged page need not be read to know them.
const SOURCES_MANIFEST: &str = "sources.txt";

/// A source file found for a file of the coverage data, with its metadata
/// (size and modification time count in the page's input hash).
type Located = Option<(PathBuf, std::fs::Metadata)>;

/// A row's page before it is written: its files and their sources found,
/// its input hash, and whether the page on disk already has it.
struct PreparedRow {
    files: Vec<FileCoverage>,
    resolved: Option<source::Resolved>,
    located: Vec<Located>,
    input_hash: String,
    page_path: PathBuf,
    data_dir: PathBuf,
    /// `Some`: the page is up to date and not written again.
    unchanged: Option<RowOutcome>,
}

/// Finds a row's sources and hashes its inputs (the functions are not among
/// them: they come from the binary's meta-data, which the row's binary key
/// names).
fn prepare_row(
    index: &SourceIndex,
    opts: &Options,
    row: &OwnerRow,
    slug: &str,
    mut files: Vec<FileCoverage>,
) -> PreparedRow {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let resolved = index.resolve(row, &files);
    let located = locate_sources(resolved.as_ref(), &files);
    let input_hash = page_input_hash(opts, row, &files, &located);
    let page_path = opts.out_dir.join("b").join(format!("{slug}.html"));
    let data_dir = opts.out_dir.join("b").join(slug);
    let unchanged = unchanged_page(&page_path, &data_dir, &input_hash, &located);
    PreparedRow {
        files,
        resolved,
        located,
        input_hash,
        page_path,
        data_dir,
        unchanged,
    }
}

/// Writes one binary's page: the shared source bundles, the page's data
/// scripts and function list, then the page itself.
fn write_row(
    opts: &Options,
    row: &OwnerRow,
    slug: &str,
    p: PreparedRow,
    funcs: &[FuncCov],
) -> Result<RowOutcome, RowError> {
    let PreparedRow {
        files,
        resolved,
        located,
        input_hash,
        page_path,
        data_dir,
        unchanged: _,
    } = p;
    create_dir(&data_dir)?;
    let texts: Vec<Option<String>> = located
        .iter()
        .map(|loc| loc.as_ref().and_then(|(p, _)| source::read_source(p)))
        .collect();
    let text_hashes: Vec<Option<String>> = texts
        .iter()
        .map(|t| t.as_deref().map(content_hash))
        .collect();
    let (bundle_of, sources) = write_source_bundles(opts, &files, &texts, &text_hashes)?;
    let data = write_file_data(&data_dir, &files, &texts, &text_hashes, &bundle_of)?;
    let manifest: String = sources.iter().map(|h| format!("{h}\n")).collect();
    write_if_changed(&data_dir.join(SOURCES_MANIFEST), manifest.as_bytes())?;
    let mut written = data.scripts;
    written.insert(SOURCES_MANIFEST.to_string());
    let functions = page_functions(&files, &texts, funcs);
    let mut page_files = data.files;
    for &(i, _, _, _, covered, total) in &functions {
        if let Some(pf) = page_files.get_mut(i) {
            let (n, missed) = pf.functions.get_or_insert((0, 0));
            *n += 1;
            *missed += total - covered;
        }
    }
    if !functions.is_empty() {
        let js = format!("covfleetFuncs({});\n", script_json(&functions));
        write_if_changed(&data_dir.join(FUNCS_SCRIPT), js.as_bytes())?;
        written.insert(FUNCS_SCRIPT.to_string());
    }
    remove_stale_data(&data_dir, &written);

    let page_data = PageData {
        title: &opts.title,
        row: IndexRow::new(row, None),
        source_root: resolved
            .as_ref()
            .map(|r| r.checkout.root.to_string_lossy().into_owned()),
        source_via: resolved.as_ref().map(|r| r.strategy.as_str()),
        data_dir: slug,
        packages: package_tree(&files),
        functions: functions.len(),
        files: page_files,
    };
    let page = BinaryPage {
        title: &opts.title,
        input_hash: &input_hash,
        namespace: &row.namespace,
        owner: &row.owner,
        binary: &row.binary,
        data: script_json(&page_data),
    };
    let html = page.render().map_err(|source| Error::Template {
        what: page_path.display().to_string(),
        source,
    })?;
    // The page last: it carries the input hash, so a render interrupted
    // before this point redoes the row next time.
    write_if_changed(&page_path, html.as_bytes())?;
    Ok(RowOutcome {
        written: true,
        with_source: data.with_source,
        without_source: files.len() - data.with_source,
        sources: sources.into_iter().collect(),
    })
}

/// The source file of each coverage file, when a checkout was resolved and
/// the file is there and not too large.
fn locate_sources(resolved: Option<&source::Resolved>, files: &[FileCoverage]) -> Vec<Located> {
    files
        .iter()
        .map(|f| {
            let r = resolved?;
            let p = source::locate(&r.checkout, &f.path)?;
            let m = std::fs::metadata(&p).ok()?;
            (m.len() <= source::MAX_SOURCE_BYTES).then_some((p, m))
        })
        .collect()
}

/// The hash of everything the page is made of. Source files count by path,
/// size and modification time (their text is hashed when written).
fn page_input_hash(
    opts: &Options,
    row: &OwnerRow,
    files: &[FileCoverage],
    located: &[Located],
) -> String {
    let mut h = Fnv128::new();
    for part in [FORMAT_VERSION, CSS, BINARY_JS, BINARY_TEMPLATE, &opts.title] {
        hash_str(&mut h, part);
    }
    hash_str(&mut h, &serde_json::to_string(row).unwrap_or_default());
    for (f, s) in files.iter().zip(located) {
        hash_str(&mut h, &f.path);
        h.write(&(f.blocks.len() as u64).to_le_bytes());
        for b in &f.blocks {
            for v in [b.st_line, b.st_col, b.en_line, b.en_col, b.stmts] {
                h.write(&v.to_le_bytes());
            }
            h.write(&b.count.to_le_bytes());
        }
        match s {
            Some((p, m)) => {
                hash_str(&mut h, &p.to_string_lossy());
                h.write(&m.len().to_le_bytes());
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                h.write(&mtime.to_le_bytes());
            }
            None => hash_str(&mut h, "\0none"),
        }
    }
    covdata::hex(&h.finish())
}

/// The outcome of a page whose inputs did not change since it was written
/// (`None`: it must be written).
fn unchanged_page(
    page_path: &Path,
    data_dir: &Path,
    input_hash: &str,
    located: &[Located],
) -> Option<RowOutcome> {
    if existing_input_hash(page_path).as_deref() != Some(input_hash) {
        return None;
    }
    let manifest = std::fs::read_to_string(data_dir.join(SOURCES_MANIFEST)).ok()?;
    let with_source = located.iter().filter(|s| s.is_some()).count();
    Some(RowOutcome {
        written: false,
        with_source,
        without_source: located.len() - with_source,
        sources: manifest.lines().map(str::to_string).collect(),
    })
}

/// Writes the source texts, grouped by package directory into shared
/// bundles; returns each file's bundle key and the set of keys.
fn write_source_bundles(
    opts: &Options,
    files: &[FileCoverage],
    texts: &[Option<String>],
    text_hashes: &[Option<String>],
) -> Result<(Vec<Option<String>>, BTreeSet<String>), Error> {
    let mut packages: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        if texts[i].is_some() {
            let dir = f.path.rsplit_once('/').map_or("", |(d, _)| d);
            packages.entry(dir).or_default().push(i);
        }
    }
    let mut bundle_of = vec![None; files.len()];
    let mut sources = BTreeSet::new();
    for members in packages.values() {
        let key = write_source_bundle(&opts.out_dir, members, texts, text_hashes)?;
        for &i in members {
            bundle_of[i] = Some(key.clone());
        }
        sources.insert(key);
    }
    Ok((bundle_of, sources))
}

/// What [`write_file_data`] wrote.
struct FileDataWritten<'a> {
    /// The page's file list.
    files: Vec<PageFile<'a>>,
    /// Names of the data scripts written into the page's directory.
    scripts: BTreeSet<String>,
    /// Files with source.
    with_source: usize,
}

/// Per-file coverage (line states, blocks), bundled per page into scripts
/// of about [`DATA_BUNDLE_BYTES`]: a few scripts instead of one per file.
fn write_file_data<'a>(
    data_dir: &Path,
    files: &'a [FileCoverage],
    texts: &[Option<String>],
    text_hashes: &[Option<String>],
    bundle_of: &[Option<String>],
) -> Result<FileDataWritten<'a>, Error> {
    let mut page_files = Vec::with_capacity(files.len());
    let mut written = BTreeSet::new();
    let mut with_source = 0;
    let mut bundle = String::new();
    let mut bundle_no = 0usize;
    let mut flush = |bundle: &mut String, no: &mut usize| -> Result<(), Error> {
        if bundle.is_empty() {
            return Ok(());
        }
        let name = format!("{no}.js");
        let js = format!("covfleetFiles({no},{{{bundle}}});\n");
        write_if_changed(&data_dir.join(&name), js.as_bytes())?;
        written.insert(name);
        bundle.clear();
        *no += 1;
        Ok(())
    };
    for (i, f) in files.iter().enumerate() {
        let text = texts[i].as_deref();
        let nlines = text.map_or(0, count_lines);
        let (st, n) = if text.is_some() {
            with_source += 1;
            line_states(&f.blocks, nlines)
        } else {
            (Vec::new(), Vec::new())
        };
        let fd = FileData {
            st: st.iter().map(|s| s.as_char()).collect(),
            n,
            b: f.blocks
                .iter()
                .map(|b| {
                    [
                        u64::from(b.st_line),
                        u64::from(b.st_col),
                        u64::from(b.en_line),
                        u64::from(b.en_col),
                        u64::from(b.stmts),
                        b.count,
                    ]
                })
                .collect(),
        };
        let json = serde_json::to_string(&fd).unwrap_or_else(|_| "{}".into());
        if !bundle.is_empty() && bundle.len() + json.len() > DATA_BUNDLE_BYTES {
            flush(&mut bundle, &mut bundle_no)?;
        }
        if !bundle.is_empty() {
            bundle.push(',');
        }
        bundle.push_str(&format!("\"{i}\":{json}"));
        page_files.push(PageFile {
            path: &f.path,
            total_stmts: f.total_stmts,
            covered_stmts: f.covered_stmts,
            has_source: text.is_some(),
            lines: nlines,
            data_script: bundle_no,
            source_hash: text_hashes[i].clone(),
            source_bundle: bundle_of[i].clone(),
            functions: None,
        });
    }
    flush(&mut bundle, &mut bundle_no)?;
    Ok(FileDataWritten {
        files: page_files,
        scripts: written,
        with_source,
    })
}

/// Removes data files of earlier renders that this one did not write.
fn remove_stale_data(data_dir: &Path, written: &BTreeSet<String>) {
    if let Ok(rd) = std::fs::read_dir(data_dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !written.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Per-file coverage scripts of a page hold files up to about this size.
const DATA_BUNDLE_BYTES: usize = 256 << 10;

fn content_hash(text: &str) -> String {
    let mut h = Fnv128::new();
    h.write(text.as_bytes());
    covdata::hex(&h.finish())
}

/// Writes the source texts of one package of a page as
/// `OUT/src/<key>.js`, keyed by the hashes of its texts: every page showing
/// the same package at the same content shares it (skipped when present).
fn write_source_bundle(
    out_dir: &Path,
    members: &[usize],
    texts: &[Option<String>],
    hashes: &[Option<String>],
) -> Result<String, Error> {
    let mut h = Fnv128::new();
    for &i in members {
        hash_str(&mut h, hashes[i].as_deref().unwrap_or_default());
    }
    let key = covdata::hex(&h.finish());
    let path = out_dir.join("src").join(format!("{key}.js"));
    if !path.exists() {
        let mut map = serde_json::Map::new();
        for &i in members {
            if let (Some(hash), Some(text)) = (&hashes[i], &texts[i]) {
                map.insert(hash.clone(), serde_json::Value::String(text.clone()));
            }
        }
        let js = format!(
            "covfleetSources({},{});\n",
            serde_json::to_string(&key).unwrap_or_default(),
            serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
        );
        write_if_changed(&path, js.as_bytes())?;
    }
    Ok(key)
}

fn hash_str(h: &mut Fnv128, s: &str) {
    h.write(&(s.len() as u64).to_le_bytes());
    h.write(s.as_bytes());
}

fn count_lines(text: &str) -> usize {
    if text.is_empty() {
        return 0;
    }
    let n = text.bytes().filter(|&b| b == b'\n').count();
    if text.ends_with('\n') { n } else { n + 1 }
}

/// The hash in `<meta name="covfleet-input" content="…">` near the top of an
/// existing page.
fn existing_input_hash(page: &Path) -> Option<String> {
    let mut head = [0u8; 1024];
    let mut f = std::fs::File::open(page).ok()?;
    let n = f.read(&mut head).ok()?;
    let head = String::from_utf8_lossy(&head[..n]);
    let i = head.find("name=\"covfleet-input\" content=\"")?;
    let rest = &head[i + 31..];
    Some(rest[..rest.find('"')?].to_string())
}

/// An index row as the pages' JSON carries it (short keys: the index of a
/// large cluster holds thousands).
#[derive(Debug, Serialize)]
struct IndexRow {
    ns: String,
    ty: String,
    ow: String,
    bin: String,
    pods: Vec<String>,
    hosts: Vec<String>,
    images: Vec<String>,
    ctrs: Vec<String>,
    t: u64,
    c: u64,
    key: String,
    src: Option<String>,
    commit: Option<String>,
    /// Page link, relative to index.html; `None` when the page failed.
    page: Option<String>,
}

impl IndexRow {
    fn new(r: &OwnerRow, page: Option<String>) -> IndexRow {
        IndexRow {
            ns: r.namespace.clone(),
            ty: r.owner_type.clone(),
            ow: r.owner.clone(),
            bin: r.binary.clone(),
            pods: r.pods.clone(),
            hosts: r.hosts.clone(),
            images: r.images.clone(),
            ctrs: r.containers.clone(),
            t: r.total_stmts,
            c: r.covered_stmts,
            key: binary_key(r),
            src: r.source_url.clone(),
            commit: r.source_commit.clone(),
            page,
        }
    }
}

#[derive(Debug, Serialize)]
struct IndexData<'a> {
    title: &'a str,
    rows: Vec<IndexRow>,
    /// Per binary key: statements run by any of its rows together.
    bins: BTreeMap<String, u64>,
    /// Phases (the index's phase switch and run history strip).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    phases: Vec<crate::history::PhaseJson>,
    /// Collection times (to the minute) and reports collected then.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    times: Vec<(String, usize)>,
}

/// What all rows of one binary ran together: a block counts once, as run
/// when any row ran it. Rows of one binary (same meta-data) have the same
/// blocks in the same order; a key whose rows disagree gets no union.
#[derive(Debug, Default)]
struct BinaryUnions {
    by_key: HashMap<String, Option<Vec<(u32, bool)>>>,
}

impl BinaryUnions {
    fn add(&mut self, row: &OwnerRow, files: &[FileCoverage]) {
        let key = binary_key(row);
        let blocks = files
            .iter()
            .flat_map(|f| f.blocks.iter().map(|b| (b.stmts, b.count > 0)));
        match self.by_key.get_mut(&key) {
            None => {
                self.by_key.insert(key, Some(blocks.collect()));
            }
            Some(slot) => {
                let n: usize = files.iter().map(|f| f.blocks.len()).sum();
                match slot {
                    Some(acc) if acc.len() == n => {
                        for (a, (stmts, hit)) in acc.iter_mut().zip(blocks) {
                            if a.0 != stmts {
                                *slot = None;
                                return;
                            }
                            a.1 |= hit;
                        }
                    }
                    _ => *slot = None,
                }
            }
        }
    }

    fn covered(&self) -> BTreeMap<String, u64> {
        self.by_key
            .iter()
            .filter_map(|(k, v)| {
                let c = v
                    .as_ref()?
                    .iter()
                    .filter(|(_, hit)| *hit)
                    .map(|(s, _)| u64::from(*s))
                    .sum();
                Some((k.clone(), c))
            })
            .collect()
    }
}

fn binary_key(r: &OwnerRow) -> String {
    if r.binary_key.is_empty() {
        r.binary.clone()
    } else {
        r.binary_key.clone()
    }
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    title: &'a str,
    /// JSON made safe for a `<script>` element by [`script_json`].
    data: String,
    /// Diff pages found in the output directory (file names), linked from
    /// the index.
    diffs: Vec<String>,
    /// History pages (`covfleet history --html`) found there.
    histories: Vec<String>,
}

/// The diff pages of a site: `diff.html` and `diff-<name>.html` in its
/// output directory (where `covfleet diff --html` is told to write them),
/// sorted by name with `diff.html` first. Names are restricted to
/// `[A-Za-z0-9._-]`, so a link never needs escaping beyond askama's.
pub fn diff_pages(out_dir: &Path) -> Vec<String> {
    linked_pages(out_dir, LinkedPage::Diff)
}

/// Pages other commands write next to a site for its index to link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkedPage {
    /// `covfleet diff --html`: `diff.html`, `diff-<name>.html`.
    Diff,
    /// `covfleet history --html`: `history.html`, `history-<name>.html`.
    History,
}

impl LinkedPage {
    /// The file name stem the pages start with.
    pub fn stem(self) -> &'static str {
        match self {
            LinkedPage::Diff => "diff",
            LinkedPage::History => "history",
        }
    }

    /// Whether `name` is a page of this kind.
    pub fn matches(self, name: &str) -> bool {
        let Some(stem) = name.strip_suffix(".html") else {
            return false;
        };
        stem == self.stem()
            || stem
                .strip_prefix(self.stem())
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(|rest| {
                    !rest.is_empty()
                        && rest
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                })
    }
}

/// The pages of one kind in a site's output directory, sorted by name,
/// the bare `<stem>.html` first.
pub fn linked_pages(out_dir: &Path, kind: LinkedPage) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(out_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| kind.matches(n))
        .collect();
    let bare = format!("{}.html", kind.stem());
    found.sort_by(|a, b| (*a != bare).cmp(&(*b != bare)).then(a.cmp(b)));
    found
}

#[derive(Template)]
#[template(path = "binary.html")]
struct BinaryPage<'a> {
    title: &'a str,
    input_hash: &'a str,
    namespace: &'a str,
    owner: &'a str,
    binary: &'a str,
    data: String,
}

/// JSON for a `<script type="application/json">` element: `<`, `>` and `&`
/// become `\u003c` etc., so no data can close the element or open a comment.
/// (They can only occur inside JSON strings, where the escapes are equivalent.)
pub fn script_json<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    let mut out = String::with_capacity(json.len() + 16);
    for ch in json.chars() {
        match ch {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A file-system-safe, collision-free page name for a row.
pub fn page_slug(row: &OwnerRow) -> String {
    let mut h = Fnv128::new();
    for part in [
        &row.id,
        &row.namespace,
        &row.owner_type,
        &row.owner,
        &row.binary,
    ] {
        hash_str(&mut h, part);
    }
    let hash = covdata::hex(&h.finish());
    let mut readable = String::new();
    for part in [&row.namespace, &row.owner, &row.binary] {
        if part.is_empty() {
            continue;
        }
        if !readable.is_empty() {
            readable.push_str("--");
        }
        readable.extend(part.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        }));
    }
    let readable: String = readable.trim_start_matches('.').chars().take(80).collect();
    if readable.is_empty() {
        hash[..12].to_string()
    } else {
        format!("{readable}-{}", &hash[..8])
    }
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `bytes` unless the file already holds exactly them (keeps mtimes,
/// and caches downstream of the site, stable). Writes via a temp file + rename.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool, Error> {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.len() == bytes.len() as u64
        && std::fs::read(path).is_ok_and(|old| old == bytes)
    {
        return Ok(false);
    }
    let err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    // A name of its own: pages are written in parallel, and two may write
    // the same shared source at once.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".{}.{seq}.tmp~", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    // A failed write (disk full) leaves nothing behind.
    if let Err(e) = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(true)
}

/// Removes `*.tmp~` files (this module's temporaries) left in the site's
/// directories by a run that was killed while writing.
fn remove_stale_temporaries(out_dir: &Path) {
    let mut dirs = vec![out_dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name();
            if ft.is_dir() {
                dirs.push(e.path());
            } else if ft.is_file() && name.to_string_lossy().ends_with(".tmp~") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Block;

    fn file(path: &str, covered: u32, total: u32) -> FileCoverage {
        let b = |stmts, count| Block {
            st_line: 1,
            st_col: 1,
            en_line: 2,
            en_col: 1,
            stmts,
            count,
        };
        FileCoverage::from_blocks(path, vec![b(covered, 1), b(total - covered, 0)])
    }

    /// Every node of a tree, depth first.
    fn walk<'a>(nodes: &'a [PkgNode], out: &mut Vec<&'a PkgNode>) {
        for n in nodes {
            out.push(n);
            walk(&n.children, out);
        }
    }

    #[test]
    fn package_tree_sums_every_file_below_each_node() {
        let files = vec![
            file("github.com/acme/api/main.go", 3, 10),
            file("github.com/acme/api/internal/store/db.go", 5, 5),
            file("github.com/acme/api/internal/store/cache.go", 0, 7),
            file("github.com/acme/api/internal/http/h.go", 2, 4),
            file("github.com/acme/api/pkg/deep/er/x.go", 1, 2),
            file("/workspace/cmd/tool.go", 1, 1),
            file("root.go", 0, 3),
        ];
        let tree = package_tree(&files);
        let mut nodes = Vec::new();
        walk(&tree, &mut nodes);
        // Computed another way: filter the files by path prefix.
        for n in &nodes {
            let under: Vec<&FileCoverage> = files
                .iter()
                .filter(|f| {
                    let dir = f.path.rsplit_once('/').map_or("", |(d, _)| d);
                    dir == n.path || f.path.starts_with(&format!("{}/", n.path))
                })
                .collect();
            let own = files
                .iter()
                .filter(|f| f.path.rsplit_once('/').map_or("", |(d, _)| d) == n.path)
                .count();
            let c: u64 = under.iter().map(|f| f.covered_stmts).sum();
            let t: u64 = under.iter().map(|f| f.total_stmts).sum();
            if n.path.is_empty() {
                assert_eq!((n.covered, n.total, n.files, n.own_files), (0, 3, 1, 1));
                continue;
            }
            assert_eq!((n.covered, n.total), (c, t), "{}", n.path);
            assert_eq!((n.files, n.own_files), (under.len(), own), "{}", n.path);
            assert!(n.path.ends_with(&n.name), "{} / {}", n.path, n.name);
        }
        let names: Vec<(&str, &str)> = nodes
            .iter()
            .map(|n| (n.name.as_str(), n.path.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("", ""),
                ("/workspace/cmd", "/workspace/cmd"),
                ("github.com/acme/api", "github.com/acme/api"),
                ("internal", "github.com/acme/api/internal"),
                ("http", "github.com/acme/api/internal/http"),
                ("store", "github.com/acme/api/internal/store"),
                ("pkg/deep/er", "github.com/acme/api/pkg/deep/er"),
            ]
        );
        // The tops add up to everything.
        let t: u64 = tree.iter().map(|n| n.total).sum();
        assert_eq!(t, files.iter().map(|f| f.total_stmts).sum::<u64>());
    }

    #[test]
    fn diff_pages_are_found_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "diff-e2e.html",
            "diff.html",
            "index.html",
            "diff-.html",
            "diff-a b.html",
            "diffx.html",
        ] {
            std::fs::write(dir.path().join(n), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join("diff-dir.html")).unwrap();
        assert_eq!(diff_pages(dir.path()), ["diff.html", "diff-e2e.html"]);
        assert!(diff_pages(&dir.path().join("missing")).is_empty());
        for n in [
            "history-never-ran.html",
            "history.html",
            "history-.html",
            "historyx.html",
        ] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        assert_eq!(
            linked_pages(dir.path(), LinkedPage::History),
            ["history.html", "history-never-ran.html"]
        );
        assert_eq!(diff_pages(dir.path()), ["diff.html", "diff-e2e.html"]);
    }
}
