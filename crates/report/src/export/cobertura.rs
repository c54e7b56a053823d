//! Cobertura XML (coverage-04.dtd), laid out as `gocover-cobertura` writes
//! it for a Go profile: one `<package>` per Go package, one `<class>` per
//! receiver type (`-` for plain functions) and file, one `<method>` per
//! function with the lines its blocks span (counts added; OR in set mode),
//! rates as 32-bit floats, encoded like Go's `encoding/xml` with two-space
//! indentation.

use std::fmt::Write as _;

use covdata::CounterMode;

use super::{ExportData, ExportFunc};

type Lines = Vec<(u32, u64)>;

fn add_line(lines: &mut Lines, number: u32, hits: u64, mode: CounterMode) {
    if let Some(l) = lines.iter_mut().find(|(n, _)| *n == number) {
        l.1 = if mode == CounterMode::SET {
            l.1 | hits
        } else {
            l.1.saturating_add(hits)
        };
    } else {
        lines.push((number, hits));
    }
}

fn method_lines(f: &ExportFunc, mode: CounterMode) -> Lines {
    let mut units = f.units.clone();
    units.sort_by_key(|(u, _)| (u.st_line, u.st_col));
    let mut lines = Lines::new();
    for (u, n) in units {
        for l in u.st_line..=u.en_line {
            add_line(&mut lines, l, n, mode);
        }
    }
    lines
}

fn hit(lines: &[(u32, u64)]) -> i64 {
    lines.iter().filter(|(_, h)| *h > 0).count() as i64
}

fn rate(hit: i64, all: i64) -> String {
    go_float32(hit as f32 / all as f32)
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`.
fn go_float32(v: f32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v != 0.0 && v.is_finite() && v.abs() < 1e-4 {
        let s = format!("{v:e}");
        if let Some((m, e)) = s.split_once('e') {
            let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
            return format!("{m}e{sign}{digits:0>2}");
        }
    }
    format!("{v}")
}

/// Go's `xml.EscapeText` for attribute values and text.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("&#34;"),
            '\'' => o.push_str("&#39;"),
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\t' => o.push_str("&#x9;"),
            '\n' => o.push_str("&#xA;"),
            '\r' => o.push_str("&#xD;"),
            c => o.push(c),
        }
    }
    o
}

struct Class {
    name: String,
    filename: String,
    methods: Vec<(String, Lines)>,
}

struct Package {
    name: String,
    classes: Vec<Class>,
}

fn class_lines(c: &Class) -> (i64, i64) {
    c.methods
        .iter()
        .fold((0, 0), |(h, a), (_, l)| (h + hit(l), a + l.len() as i64))
}

fn package_lines(p: &Package) -> (i64, i64) {
    p.classes
        .iter()
        .map(class_lines)
        .fold((0, 0), |(h, a), (ch, ca)| (h + ch, a + ca))
}

/// The Cobertura report of an export; `timestamp_ms` is written as is.
pub fn cobertura(data: &ExportData, timestamp_ms: i64) -> String {
    let mut files: Vec<&super::ExportFile> = data.files.iter().collect();
    files.sort_by(|a, b| a.import_path.cmp(&b.import_path));
    let mut packages: Vec<Package> = Vec::new();
    for f in files {
        let pkg_name = f
            .import_path
            .rsplit_once('/')
            .map_or(f.package.as_str(), |(d, _)| d)
            .to_string();
        let pi = match packages.iter().position(|p| p.name == pkg_name) {
            Some(i) => i,
            None => {
                packages.push(Package {
                    name: pkg_name,
                    classes: Vec::new(),
                });
                packages.len() - 1
            }
        };
        // Classes are per file: a receiver type in two files is two classes.
        let first_class = packages[pi].classes.len();
        for func in f.funcs.iter().filter(|x| x.named) {
            let lines = method_lines(func, data.mode);
            let classes = &mut packages[pi].classes;
            let ci = match classes[first_class..]
                .iter()
                .position(|c| c.name == func.class)
            {
                Some(i) => first_class + i,
                None => {
                    classes.push(Class {
                        name: func.class.clone(),
                        filename: f.path.clone(),
                        methods: Vec::new(),
                    });
                    classes.len() - 1
                }
            };
            classes[ci].methods.push((func.name.clone(), lines));
        }
    }
    let (hit_all, all) = packages
        .iter()
        .map(package_lines)
        .fold((0, 0), |(h, a), (ph, pa)| (h + ph, a + pa));
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    o.push_str(
        "<!DOCTYPE coverage SYSTEM \"http://cobertura.sourceforge.net/xml/coverage-04.dtd\">\n",
    );
    let _ = write!(
        o,
        "<coverage line-rate=\"{}\" branch-rate=\"0\" version=\"\" timestamp=\"{timestamp_ms}\" \
         lines-covered=\"{hit_all}\" lines-valid=\"{all}\" branches-covered=\"0\" \
         branches-valid=\"0\" complexity=\"0\">",
        rate(hit_all, all)
    );
    if !data.source_roots.is_empty() {
        o.push_str("\n  <sources>");
        for r in &data.source_roots {
            let _ = write!(o, "\n    <source>{}</source>", esc(&r.to_string_lossy()));
        }
        o.push_str("\n  </sources>");
    }
    if !packages.is_empty() {
        o.push_str("\n  <packages>");
    }
    for p in &packages {
        let (ph, pa) = package_lines(p);
        let _ = write!(
            o,
            "\n    <package name=\"{}\" line-rate=\"{}\" branch-rate=\"0\" complexity=\"0\">",
            esc(&p.name),
            rate(ph, pa)
        );
        if !p.classes.is_empty() {
            o.push_str("\n      <classes>");
        }
        for c in &p.classes {
            let (ch, ca) = class_lines(c);
            let _ = write!(
                o,
                "\n        <class name=\"{}\" filename=\"{}\" line-rate=\"{}\" branch-rate=\"0\" complexity=\"0\">",
                esc(&c.name),
                esc(&c.filename),
                rate(ch, ca)
            );
            if !c.methods.is_empty() {
                o.push_str("\n          <methods>");
            }
            for (name, lines) in &c.methods {
                let _ = write!(
                    o,
                    "\n            <method name=\"{}\" signature=\"\" line-rate=\"{}\" branch-rate=\"0\" complexity=\"0\">",
                    esc(name),
                    rate(hit(lines), lines.len() as i64)
                );
                write_lines(&mut o, lines, 14);
                o.push_str("\n            </method>");
            }
            if !c.methods.is_empty() {
                o.push_str("\n          </methods>");
            }
            let all_lines: Lines = c.methods.iter().flat_map(|(_, l)| l.clone()).collect();
            write_lines(&mut o, &all_lines, 10);
            o.push_str("\n        </class>");
        }
        if !p.classes.is_empty() {
            o.push_str("\n      </classes>");
        }
        o.push_str("\n    </package>");
    }
    if !packages.is_empty() {
        o.push_str("\n  </packages>");
    }
    o.push_str("\n</coverage>\n");
    o
}

fn write_lines(o: &mut String, lines: &[(u32, u64)], indent: usize) {
    if lines.is_empty() {
        return;
    }
    let pad = " ".repeat(indent);
    let _ = write!(o, "\n{pad}<lines>");
    for (n, h) in lines {
        let _ = write!(o, "\n{pad}  <line number=\"{n}\" hits=\"{h}\"></line>");
    }
    let _ = write!(o, "\n{pad}</lines>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(go_float32(1.0), "1");
        assert_eq!(go_float32(0.0), "0");
        assert_eq!(go_float32(0.8), "0.8");
        assert_eq!(go_float32(2.0 / 3.0), "0.6666667");
        assert_eq!(go_float32(0.00001), "1e-05");
        assert_eq!(go_float32(f32::NAN), "NaN");
    }
}
