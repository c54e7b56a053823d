//! `covfleet history`: questions over many published runs (see
//! `covfleet publish`): `--never-ran` (shipped in every run, never ran in
//! any cluster) and `--trend` (coverage per owner per run).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use history::{NeverRan, TrendPoint, Window};

use crate::cli::UsageError;
use crate::cmd::publish::open_dataset;
use crate::{Shared, output};

/// Arguments of `covfleet history`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("question").required(true).args(["never_ran", "trend"])))]
pub struct Args {
    /// The dataset: s3://BUCKET/PREFIX or file:///DIR (absolute).
    #[arg(long, value_name = "s3://B/P|file:///DIR")]
    pub dataset: String,
    /// Only clusters matching this glob.
    #[arg(long, value_name = "GLOB")]
    pub cluster: Option<String>,
    /// Only runs of the last DURATION (30d, 12h) or since a date (2026-11-01).
    #[arg(long, value_name = "DURATION|DATE")]
    pub since: Option<String>,
    /// Functions and files present in every run of their owner that never
    /// ran in any cluster (dead-code candidates), by statements.
    #[arg(long)]
    pub never_ran: bool,
    /// Coverage per owner per run.
    #[arg(long)]
    pub trend: bool,
    /// JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the answer as an HTML page (named history.html or
    /// history-NAME.html in a site's directory, the site's index links it).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Endpoint of an S3-compatible server (path-style requests), e.g. http://127.0.0.1:9000.
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL")]
    pub endpoint: Option<String>,
    /// Region (default: AWS_REGION, AWS_DEFAULT_REGION, then us-east-1).
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError::new(msg.into()))
}

/// `30d` → now − 30 days; `2026-11-01` or an RFC 3339 time → that time.
fn parse_since(s: &str, now: SystemTime) -> Option<SystemTime> {
    if let Ok(d) = humantime::parse_duration(s) {
        return now.checked_sub(d);
    }
    if s.len() == 10
        && let Ok(t) = humantime::parse_rfc3339_weak(&format!("{s}T00:00:00Z"))
    {
        return Some(t);
    }
    humantime::parse_rfc3339_weak(s).ok()
}

pub fn run(args: Args, _shared: &Shared) -> anyhow::Result<ExitCode> {
    let since = match &args.since {
        Some(s) => Some(parse_since(s, SystemTime::now()).ok_or_else(|| {
            usage(format!(
                "--since {s:?}: expected a duration (30d, 12h) or a date (2026-11-01)"
            ))
        })?),
        None => None,
    };
    if let Some(g) = &args.cluster {
        globset::Glob::new(g).map_err(|e| usage(format!("--cluster {g:?}: {e}")))?;
    }
    let sink = open_dataset(&args.dataset, args.endpoint, args.region, true)?;
    let window = Window {
        cluster_glob: args.cluster.clone(),
        since,
    };
    // The engine runs its partitions as tasks: a runtime on every core
    // (the shared one is current-thread, for I/O-bound commands).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the query runtime: {e}"))?;
    if args.never_ran {
        let answer = runtime.block_on(history::never_ran(&sink, &window))?;
        if args.json {
            output::json(&answer);
        } else {
            print!("{}", never_ran_table(&answer.rows));
        }
        if let Some(path) = &args.html {
            write_html(
                path,
                "Shipped but never ran",
                &never_ran_html(&answer.rows),
                answer.runs.len(),
            )?;
        }
        summary(
            answer.runs.len(),
            answer.rows.len(),
            "candidate",
            "candidates",
        );
    } else {
        let answer = runtime.block_on(history::trend(&sink, &window))?;
        if args.json {
            output::json(&answer);
        } else {
            print!("{}", trend_table(&answer.rows));
        }
        if let Some(path) = &args.html {
            write_html(
                path,
                "Coverage per owner per run",
                &trend_html(&answer.rows),
                answer.runs.len(),
            )?;
        }
        summary(answer.runs.len(), answer.rows.len(), "point", "points");
    }
    Ok(ExitCode::SUCCESS)
}

fn summary(runs: usize, rows: usize, one: &str, many: &str) {
    if runs == 0 {
        output::warn("no published runs in the window");
    }
    output::status(format_args!(
        "history: {} over {}",
        output::plural(rows, one, many),
        output::plural(runs, "run", "runs")
    ));
}

fn owner_label(ns: &str, ty: &str, name: &str, bin: &str) -> String {
    format!("{ns}/{ty}/{name} ({bin})")
}

/// Candidates grouped by repository and owner (groups by their statements,
/// largest first), each group's rows by statements.
fn groups(rows: &[NeverRan]) -> Vec<((String, String), Vec<&NeverRan>, i64)> {
    let mut out: Vec<((String, String), Vec<&NeverRan>, i64)> = Vec::new();
    for r in rows {
        let key = (
            r.repository.clone(),
            owner_label(&r.namespace, &r.owner_type, &r.owner_name, &r.binary_name),
        );
        match out.iter_mut().find(|(k, _, _)| *k == key) {
            Some(g) => {
                g.1.push(r);
                if r.kind == "function" {
                    g.2 += r.stmts;
                }
            }
            None => out.push((key, vec![r], if r.kind == "function" { r.stmts } else { 0 })),
        }
    }
    out.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    out
}

fn never_ran_table(rows: &[NeverRan]) -> String {
    let mut s = String::new();
    for ((repo, owner), rs, stmts) in groups(rows) {
        let _ = writeln!(s, "# {repo}  {owner}  {stmts} statements never ran");
        let _ = writeln!(
            s,
            "{:>7}  {:<8}  {:>4}  {:>8}  {:<20}  {:<20}  WHERE",
            "STMTS", "KIND", "RUNS", "CLUSTERS", "FIRST SEEN", "LAST SEEN"
        );
        for r in rs {
            let place = if r.function.is_empty() {
                r.file.clone()
            } else {
                format!("{} {}", r.file, r.function)
            };
            let _ = writeln!(
                s,
                "{:>7}  {:<8}  {:>4}  {:>8}  {:<20}  {:<20}  {place}",
                r.stmts, r.kind, r.runs, r.clusters, r.first_seen, r.last_seen
            );
        }
        s.push('\n');
    }
    s
}

fn trend_table(rows: &[TrendPoint]) -> String {
    let mut s = String::new();
    let mut last = String::new();
    for r in rows {
        let owner = owner_label(&r.namespace, &r.owner_type, &r.owner_name, &r.binary_name);
        if owner != last {
            if !last.is_empty() {
                s.push('\n');
            }
            let _ = writeln!(s, "# {owner}");
            let _ = writeln!(
                s,
                "{:<20}  {:<16}  {:<24}  {:>8}  {:>8}  {:>7}",
                "RUN TIME", "CLUSTER", "RUN", "STMTS", "COVERED", "PCT"
            );
            last = owner;
        }
        let _ = writeln!(
            s,
            "{:<20}  {:<16}  {:<24}  {:>8}  {:>8}  {:>6.2}%",
            r.run_time, r.cluster, r.run, r.total_stmts, r.covered_stmts, r.coverage_pct
        );
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn never_ran_html(rows: &[NeverRan]) -> String {
    let mut s = String::new();
    for ((repo, owner), rs, stmts) in groups(rows) {
        let _ = writeln!(
            s,
            "<h2>{} <small>{} · {stmts} statements never ran</small></h2>\n<table><thead><tr><th>Statements</th><th>Kind</th><th>File</th><th>Function</th><th>Runs</th><th>Clusters</th><th>First seen</th><th>Last seen</th></tr></thead><tbody>",
            esc(&owner),
            esc(&repo)
        );
        for r in rs {
            let _ = writeln!(
                s,
                "<tr><td class=n>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td><td>{}</td></tr>",
                r.stmts,
                esc(&r.kind),
                esc(&r.file),
                esc(&r.function),
                r.runs,
                r.clusters,
                esc(&r.first_seen),
                esc(&r.last_seen)
            );
        }
        s.push_str("</tbody></table>\n");
    }
    s
}

fn trend_html(rows: &[TrendPoint]) -> String {
    let mut s = String::from(
        "<table><thead><tr><th>Owner</th><th>Run time</th><th>Cluster</th><th>Run</th><th>Statements</th><th>Covered</th><th>Coverage</th></tr></thead><tbody>\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{:.2}%</td></tr>",
            esc(&owner_label(
                &r.namespace,
                &r.owner_type,
                &r.owner_name,
                &r.binary_name
            )),
            esc(&r.run_time),
            esc(&r.cluster),
            esc(&r.run),
            r.total_stmts,
            r.covered_stmts,
            r.coverage_pct
        );
    }
    s.push_str("</tbody></table>\n");
    s
}

fn write_html(path: &std::path::Path, title: &str, body: &str, runs: usize) -> anyhow::Result<()> {
    let page = format!(
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>{title} · covfleet</title>\n<style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:2em}}td,th{{border-bottom:1px solid #ddd;padding:.2em .6em;text-align:left}}td.n{{text-align:right;font-variant-numeric:tabular-nums}}small{{color:#666;font-weight:normal}}</style></head>\n<body><h1>{title}</h1><p>{}</p>\n{body}</body></html>\n",
        output::plural(runs, "run", "runs")
    );
    std::fs::write(path, page).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    output::status(format_args!("wrote {}", path.display()));
    output::site_hint(path, report::site::LinkedPage::History);
    Ok(())
}
