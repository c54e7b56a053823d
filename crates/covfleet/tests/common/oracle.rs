//! Running `go tool covdata` and `covfleet covdata` on the same input and
//! comparing what they print.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::fixtures::fixtures;

/// What one tool run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The `-o` output (a file's contents), when the command wrote one.
    pub file: Option<String>,
}

/// Which tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Go,
    Covfleet,
}

/// How long one tool run may take.
pub const TOOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The placeholder for the per-tool output path in an argument list.
pub const OUT: &str = "{OUT}";

fn expand(args: &[String], out: &Path) -> Vec<String> {
    args.iter()
        .map(|a| a.replace(OUT, &out.to_string_lossy()))
        .collect()
}

/// Runs `tool` with `args` (where `{OUT}` is replaced by a fresh path under
/// `scratch`, named after the tool), in `cwd`.
pub fn run_tool(tool: Tool, args: &[String], scratch: &Path, out_is_dir: bool) -> Out {
    run_tool_in(tool, args, scratch, out_is_dir, None)
}

/// [`run_tool`] in the working directory `cwd`.
pub fn run_tool_in(
    tool: Tool,
    args: &[String],
    scratch: &Path,
    out_is_dir: bool,
    cwd: Option<&Path>,
) -> Out {
    let out_path = scratch.join(match tool {
        Tool::Go => "go.out",
        Tool::Covfleet => "cf.out",
    });
    let _ = std::fs::remove_dir_all(&out_path);
    let _ = std::fs::remove_file(&out_path);
    if out_is_dir {
        std::fs::create_dir_all(&out_path).unwrap();
    }
    let args = expand(args, &out_path);
    let mut c = match tool {
        Tool::Go => Command::new(&fixtures().covdata),
        Tool::Covfleet => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_covfleet"));
            c.arg("covdata");
            c
        }
    };
    c.args(&args);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    // Output to files and a time limit: Go's reader can loop forever on
    // malformed input (reported as exit code None, "timed out").
    let tag = match tool {
        Tool::Go => "go",
        Tool::Covfleet => "cf",
    };
    let so = scratch.join(format!("{tag}.stdout"));
    let se = scratch.join(format!("{tag}.stderr"));
    c.stdout(std::fs::File::create(&so).unwrap());
    c.stderr(std::fs::File::create(&se).unwrap());
    let mut child = c.spawn().expect("run tool");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > TOOL_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let mut stderr = std::fs::read(&se).unwrap_or_default();
    if status.is_none() {
        stderr.extend_from_slice(format!("timed out after {TOOL_TIMEOUT:?}\n").as_bytes());
    }
    let o = std::process::Output {
        status: status.unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            std::process::ExitStatus::from_raw(9)
        }),
        stdout: std::fs::read(&so).unwrap_or_default(),
        stderr,
    };
    let file = if out_is_dir {
        None
    } else {
        std::fs::read(&out_path).ok().map(|b| latin1(&b))
    };
    Out {
        code: o.status.code(),
        stdout: latin1(&o.stdout),
        stderr: latin1(&o.stderr),
        file,
    }
}

/// Bytes as a string, one char per byte (Latin-1), so that comparisons are
/// byte-exact even for output that is not UTF-8 (Go writes names as raw
/// bytes).
pub fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

/// The path the `{OUT}` placeholder became for `tool`.
pub fn out_path(tool: Tool, scratch: &Path) -> PathBuf {
    scratch.join(match tool {
        Tool::Go => "go.out",
        Tool::Covfleet => "cf.out",
    })
}

/// Turns `&["a", "b"]` into owned strings.
pub fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// `-i=a,b,c`.
pub fn i_arg(dirs: &[PathBuf]) -> String {
    let joined: Vec<String> = dirs
        .iter()
        .map(|d| d.to_string_lossy().into_owned())
        .collect();
    format!("-i={}", joined.join(","))
}

/// Go's textfmt sort key of one line `file:SL.SC,EL.EC N C`:
/// (file, StLine, EnLine, StCol, EnCol, NxStmts). Parsed right to left, as
/// the file name may contain `:`.
pub fn textfmt_key(line: &str) -> Option<(String, u32, u32, u32, u32, u32)> {
    let (rest, _count) = line.rsplit_once(' ')?;
    let (rest, n) = rest.rsplit_once(' ')?;
    let (file, range) = rest.rsplit_once(':')?;
    let (st, en) = range.split_once(',')?;
    let (sl, sc) = st.split_once('.')?;
    let (el, ec) = en.split_once('.')?;
    Some((
        file.to_string(),
        sl.parse().ok()?,
        el.parse().ok()?,
        sc.parse().ok()?,
        ec.parse().ok()?,
        n.parse().ok()?,
    ))
}

/// Compares two textfmt outputs: the same `mode:` line, the same multiset of
/// lines, and both sorted by Go's key, i.e. equal up to the order of lines
/// with the same key. Returns a description of the first difference.
pub fn textfmt_diff(go: &str, cf: &str) -> Option<String> {
    if go == cf {
        return None;
    }
    let gl: Vec<&str> = go.lines().collect();
    let cl: Vec<&str> = cf.lines().collect();
    if gl.first() != cl.first() {
        return Some(format!(
            "first line: go {:?} covfleet {:?}",
            gl.first(),
            cl.first()
        ));
    }
    if go.ends_with('\n') != cf.ends_with('\n') {
        return Some("trailing newline differs".into());
    }
    for (who, lines) in [("go", &gl), ("covfleet", &cl)] {
        let mut prev = None;
        for l in lines.iter().skip(1) {
            let Some(k) = textfmt_key(l) else {
                return Some(format!("{who}: unparsable line {l:?}"));
            };
            if let Some(p) = &prev
                && *p > k
            {
                return Some(format!("{who}: line out of order: {l:?}"));
            }
            prev = Some(k);
        }
    }
    let mut gs: Vec<&str> = gl[1..].to_vec();
    let mut cs: Vec<&str> = cl[1..].to_vec();
    gs.sort_unstable();
    cs.sort_unstable();
    if gs != cs {
        return Some(first_diff(&gs.join("\n"), &cs.join("\n")));
    }
    None
}

/// A short description of where two texts first differ.
pub fn first_diff(a: &str, b: &str) -> String {
    let al: Vec<&str> = a.lines().collect();
    let bl: Vec<&str> = b.lines().collect();
    for i in 0..al.len().max(bl.len()) {
        if al.get(i) != bl.get(i) {
            let mut s = format!(
                "line {}: go {:?}\n          covfleet {:?}",
                i + 1,
                al.get(i),
                bl.get(i)
            );
            if al.len() != bl.len() {
                let _ = write!(s, "\n  ({} lines vs {} lines)", al.len(), bl.len());
            }
            return s;
        }
    }
    format!(
        "texts differ only in line endings ({} vs {} bytes)",
        a.len(),
        b.len()
    )
}

/// Masks debugdump's ` *\t<argv>` header line (argv[0] differs).
pub fn mask_debugdump(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_header = false;
    for (i, l) in s.split_inclusive('\n').enumerate() {
        if i == 0 && l.starts_with("/*") {
            in_header = true;
        }
        if in_header && l.starts_with(" *\t") {
            out.push_str(" *\t<argv>\n");
        } else {
            out.push_str(l);
        }
        if in_header && l.starts_with(" */") {
            in_header = false;
        }
    }
    out
}

/// How to compare stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Exact,
    Debugdump,
}

/// Collects mismatches over many cases so that one test reports all of them.
#[derive(Debug, Default)]
pub struct Report {
    /// Working directory for the tools (relative `-i` paths).
    pub cwd: Option<PathBuf>,
    /// Skip `func` when reading merge outputs back (its grouping follows
    /// Go's unspecified order of tied units).
    pub ties: bool,
    pub cases: usize,
    pub failures: Vec<String>,
}

impl Report {
    pub fn fail(&mut self, case: &str, what: String) {
        self.failures.push(format!("[{case}] {what}"));
    }

    /// Panics with every mismatch, if any.
    pub fn finish(self, name: &str) {
        assert!(self.cases > 0, "{name}: no cases ran");
        if !self.failures.is_empty() {
            let mut msg = format!(
                "{name}: {} of {} cases differ from go tool covdata:\n",
                self.failures.len(),
                self.cases
            );
            for f in self.failures.iter().take(40) {
                let f: String = f.chars().take(1500).collect();
                msg.push_str(&f);
                msg.push('\n');
            }
            panic!("{msg}");
        }
    }

    /// Runs both tools with `args`, compares exit code, stdout, stderr and
    /// the `-o` file (textfmt semantics when `textfmt_file`). Returns both
    /// outputs.
    pub fn compare(
        &mut self,
        case: &str,
        args: &[String],
        cmp: Cmp,
        textfmt_file: bool,
    ) -> (Out, Out) {
        self.cases += 1;
        let scratch = tempfile::tempdir().unwrap();
        let cwd = self.cwd.clone();
        let g = run_tool_in(Tool::Go, args, scratch.path(), false, cwd.as_deref());
        let c = run_tool_in(Tool::Covfleet, args, scratch.path(), false, cwd.as_deref());
        // Output paths differ by tool: make them comparable.
        let gp = out_path(Tool::Go, scratch.path())
            .to_string_lossy()
            .into_owned();
        let cp = out_path(Tool::Covfleet, scratch.path())
            .to_string_lossy()
            .into_owned();
        let norm = |t: &str, p: &str| t.replace(p, "{OUT}");
        self.check_outs(
            case,
            &g,
            &c,
            cmp,
            textfmt_file,
            &norm(&g.stderr, &gp),
            &norm(&c.stderr, &cp),
        );
        (g, c)
    }

    #[allow(clippy::too_many_arguments)]
    fn check_outs(
        &mut self,
        case: &str,
        g: &Out,
        c: &Out,
        cmp: Cmp,
        textfmt_file: bool,
        gerr: &str,
        cerr: &str,
    ) {
        if g.code != c.code {
            self.fail(
                case,
                format!(
                    "exit code: go {:?} covfleet {:?}\n  go stderr: {}\n  covfleet stderr: {}",
                    g.code,
                    c.code,
                    g.stderr.trim(),
                    c.stderr.trim()
                ),
            );
            return;
        }
        if g.code == Some(2) {
            // Usage errors: Go prints its flag usage; compare the first line.
            if gerr.lines().next() != cerr.lines().next() {
                self.fail(
                    case,
                    format!(
                        "usage error first line: go {:?} covfleet {:?}",
                        gerr.lines().next(),
                        cerr.lines().next()
                    ),
                );
            }
        } else if gerr != cerr {
            self.fail(case, format!("stderr: {}", first_diff(gerr, cerr)));
        }
        let (gs, cs) = match cmp {
            Cmp::Exact => (g.stdout.clone(), c.stdout.clone()),
            Cmp::Debugdump => (mask_debugdump(&g.stdout), mask_debugdump(&c.stdout)),
        };
        if gs != cs {
            self.fail(case, format!("stdout: {}", first_diff(&gs, &cs)));
        }
        match (&g.file, &c.file) {
            (None, None) => {}
            (Some(gf), Some(cf)) => {
                let d = if textfmt_file {
                    textfmt_diff(gf, cf)
                } else {
                    (gf != cf).then(|| first_diff(gf, cf))
                };
                if let Some(d) = d {
                    self.fail(case, format!("-o file: {d}"));
                }
            }
            (gf, cf) => self.fail(
                case,
                format!(
                    "-o file exists: go {} covfleet {}",
                    gf.is_some(),
                    cf.is_some()
                ),
            ),
        }
    }
}

/// `go tool covdata textfmt` of a directory list, for reading merge outputs back.
pub fn go_textfmt(dirs: &[PathBuf]) -> Result<String, String> {
    let scratch = tempfile::tempdir().unwrap();
    let o = scratch.path().join("t.txt");
    let out = Command::new(&fixtures().covdata)
        .arg("textfmt")
        .arg(i_arg(dirs))
        .arg(format!("-o={}", o.display()))
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(latin1(&out.stderr));
    }
    Ok(std::fs::read(o).map(|b| latin1(&b)).unwrap_or_default())
}

/// Sorted file names of a directory.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
