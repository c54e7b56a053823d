//! The HTML page of a [`Diff`]: owners sorted by gain, each with its files;
//! a file opens to its source (HEAD's) with the lines newly run in green,
//! those no longer run in red and those run in neither in pale red. One
//! self-contained file (inline style, no script, no network).

use std::fmt::Write as _;

use crate::diff::{Diff, FileDiff, OwnerDiff};

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}\
td:first-child,th:first-child{text-align:left}tr:nth-child(even){background:#f6f6f6}\
.gain{color:#17772b;font-weight:600}.loss{color:#b3261e;font-weight:600}\
details{margin:4px 0}summary{cursor:pointer}\
pre{margin:4px 0;font:12px ui-monospace,monospace;border:1px solid #ddd;overflow:auto}\
pre span{display:block;white-space:pre}pre i{display:inline-block;width:4em;color:#888;font-style:normal}\
.new{background:#c8f2cf}.lost{background:#f9c5c0}.missed{background:#fdeceb}\
.note{color:#666}";

/// The page; `source(owner, file)` gives HEAD's source lines of a file when known.
pub fn diff_html(
    d: &Diff,
    title: &str,
    source: &dyn Fn(&OwnerDiff, &FileDiff) -> Option<Vec<String>>,
) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n\
         <p>Statements newly covered <span class=\"gain\">+{}</span>, no longer covered \
         <span class=\"loss\">-{}</span>, still missed {} (blocks paired across both sides).</p>\n",
        d.total.new,
        d.total.lost,
        d.total.missed,
        t = esc(title)
    );
    h.push_str(
        "<table id=\"owners\"><thead><tr><th>owner</th><th>binary</th><th>new</th><th>lost</th>\
         <th>still missed</th><th>base</th><th>head</th><th>not matched</th></tr></thead><tbody>\n",
    );
    for (i, o) in d.owners.iter().enumerate() {
        let _ = writeln!(
            h,
            "<tr><td><a href=\"#o{i}\">{}/{}</a></td><td>{}</td><td class=\"gain\">+{}</td>\
             <td class=\"loss\">-{}</td><td>{}</td><td>{:.1}%</td><td>{:.1}%</td><td>{}</td></tr>",
            esc(&o.namespace),
            esc(&o.owner),
            esc(&o.binary),
            o.counts.new,
            o.counts.lost,
            o.counts.missed,
            o.base_pct,
            o.head_pct,
            o.unmatched_functions.len()
        );
    }
    h.push_str("</tbody></table>\n");
    for (i, o) in d.owners.iter().enumerate() {
        let _ = writeln!(
            h,
            "<h2 id=\"o{i}\">{}/{} <small class=\"note\">{} {} · {}</small></h2>",
            esc(&o.namespace),
            esc(&o.owner),
            esc(&o.owner_type),
            esc(&o.binary),
            if o.base_meta_hash == o.head_meta_hash {
                "same build".to_string()
            } else {
                format!(
                    "builds {} → {}",
                    &o.base_meta_hash[..o.base_meta_hash.len().min(8)],
                    &o.head_meta_hash[..o.head_meta_hash.len().min(8)]
                )
            }
        );
        for f in &o.files {
            if f.counts.new == 0 && f.counts.lost == 0 {
                continue;
            }
            let _ = write!(
                h,
                "<details class=\"file\"><summary>{} <span class=\"gain\">+{}</span> \
                 <span class=\"loss\">-{}</span> <span class=\"note\">{} still missed</span></summary>",
                esc(&f.path),
                f.counts.new,
                f.counts.lost,
                f.counts.missed
            );
            match source(o, f) {
                Some(lines) => {
                    h.push_str("<pre>");
                    for (n, text) in lines.iter().enumerate() {
                        let n = n as u32 + 1;
                        let class = if f.new_lines.binary_search(&n).is_ok() {
                            " class=\"new\""
                        } else if f.lost_lines.binary_search(&n).is_ok() {
                            " class=\"lost\""
                        } else if f.missed_lines.binary_search(&n).is_ok() {
                            " class=\"missed\""
                        } else {
                            ""
                        };
                        let _ = write!(h, "<span{class}><i>{n}</i>{}</span>", esc(text));
                    }
                    h.push_str("</pre>");
                }
                None => {
                    let _ = write!(
                        h,
                        "<p class=\"note\">No source checkout: lines newly run {}; no longer run {}.</p>",
                        ranges(&f.new_lines),
                        ranges(&f.lost_lines)
                    );
                }
            }
            h.push_str("</details>\n");
        }
        if !o.unmatched_functions.is_empty() {
            h.push_str("<details><summary>not matched</summary><ul>");
            for u in &o.unmatched_functions {
                let _ = write!(h, "<li>{}</li>", esc(u));
            }
            h.push_str("</ul></details>\n");
        }
    }
    if !d.owners_only_base.is_empty() || !d.owners_only_head.is_empty() {
        h.push_str("<h2>Owners on one side only</h2><ul>");
        for o in &d.owners_only_base {
            let _ = write!(h, "<li>BASE only: {}</li>", esc(o));
        }
        for o in &d.owners_only_head {
            let _ = write!(h, "<li>HEAD only: {}</li>", esc(o));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// `1-3, 7, 9-10`.
pub fn ranges(lines: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = lines[i];
        let mut end = start;
        while i + 1 < lines.len() && lines[i + 1] == end + 1 {
            i += 1;
            end = lines[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
}
