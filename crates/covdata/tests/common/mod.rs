//! A small, independent writer of Go's coverage files for the tests (written
//! from the format notes, not from the crate's encoder), plus an allocator
//! that records the largest single allocation per thread.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Records the largest allocation made on the current thread.
pub struct TrackingAlloc;

thread_local! {
    static MAX_ALLOC: Cell<usize> = const { Cell::new(0) };
}

// The only unsafe code in the tests: a pass-through to the system allocator
// that records sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = MAX_ALLOC.try_with(|m| m.set(m.get().max(layout.size())));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _ = MAX_ALLOC.try_with(|m| m.set(m.get().max(layout.size())));
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = MAX_ALLOC.try_with(|m| m.set(m.get().max(new_size)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result with the largest single allocation it made
/// on this thread.
pub fn max_alloc_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    MAX_ALLOC.with(|m| m.set(0));
    let r = f();
    let m = MAX_ALLOC.with(|m| m.get());
    (r, m)
}

pub fn uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Stands for a raw 0xFF byte (invalid UTF-8) in the test writer's strings.
pub const RAW_FF: char = '\u{F8FF}';

/// The bytes of a test string, with [`RAW_FF`] written as a raw 0xFF.
pub fn raw_bytes(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if c == RAW_FF {
            out.push(0xff);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

pub fn strtab(out: &mut Vec<u8>, strings: &[&str]) {
    uleb(out, strings.len() as u64);
    for s in strings {
        let b = raw_bytes(s);
        uleb(out, b.len() as u64);
        out.extend_from_slice(&b);
    }
}

/// A function: name, file, units (StLine, StCol, EnLine, EnCol, NxStmts), literal.
#[derive(Debug, Clone)]
pub struct TFunc {
    pub name: String,
    pub file: String,
    pub units: Vec<[u32; 5]>,
    pub lit: bool,
}

#[derive(Debug, Clone)]
pub struct TPkg {
    pub path: String,
    pub name: String,
    pub module: String,
    pub funcs: Vec<TFunc>,
}

/// The example package used by most cases: two functions, one literal.
pub fn sample_pkgs() -> Vec<TPkg> {
    vec![
        TPkg {
            path: "example.com/m/util".into(),
            name: "util".into(),
            module: "example.com/m".into(),
            funcs: vec![
                TFunc {
                    name: "Abs".into(),
                    file: "example.com/m/util/util.go".into(),
                    units: vec![[5, 2, 5, 11, 1], [8, 2, 8, 10, 1], [6, 3, 7, 1, 1]],
                    lit: false,
                },
                TFunc {
                    name: "func.L15.C9".into(),
                    file: "example.com/m/util/util.go".into(),
                    units: vec![[15, 27, 15, 41, 1]],
                    lit: true,
                },
            ],
        },
        TPkg {
            path: "example.com/m/k".into(),
            name: "k".into(),
            module: "example.com/m".into(),
            funcs: vec![],
        },
    ]
}

/// One package blob as `cmd/cover` lays it out.
pub fn blob(p: &TPkg) -> Vec<u8> {
    let mut strings: Vec<String> = vec![String::new()];
    let idx = |s: &str, strings: &mut Vec<String>| -> u32 {
        if let Some(i) = strings.iter().position(|x| x == s) {
            return i as u32;
        }
        strings.push(s.to_string());
        (strings.len() - 1) as u32
    };
    let pi = idx(&p.path, &mut strings);
    let ni = idx(&p.name, &mut strings);
    let mi = idx(&p.module, &mut strings);
    let mut recs = Vec::new();
    for f in &p.funcs {
        let fi = idx(&f.name, &mut strings);
        let si = idx(&f.file, &mut strings);
        let mut r = Vec::new();
        uleb(&mut r, f.units.len() as u64);
        uleb(&mut r, u64::from(fi));
        uleb(&mut r, u64::from(si));
        for u in &f.units {
            for v in u {
                uleb(&mut r, u64::from(*v));
            }
        }
        uleb(&mut r, u64::from(f.lit));
        recs.push(r);
    }
    let refs: Vec<&str> = strings.iter().map(String::as_str).collect();
    let mut st = Vec::new();
    strtab(&mut st, &refs);
    let nf = p.funcs.len();
    let mut off = 44 + 4 * nf + st.len();
    let total = off + recs.iter().map(Vec::len).sum::<usize>();
    let mut out = Vec::new();
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&ni.to_le_bytes());
    out.extend_from_slice(&pi.to_le_bytes());
    out.extend_from_slice(&mi.to_le_bytes());
    out.extend_from_slice(&[0xab; 16]);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    out.extend_from_slice(&(nf as u32).to_le_bytes());
    for r in &recs {
        out.extend_from_slice(&(off as u32).to_le_bytes());
        off += r.len();
    }
    out.extend_from_slice(&st);
    for r in &recs {
        out.extend_from_slice(r);
    }
    out
}

pub const HASH: [u8; 16] = [
    0x1a, 0x66, 0xf2, 0xcf, 0xf4, 0x8e, 0x08, 0xcc, 0xa4, 0x3f, 0x37, 0x3b, 0x50, 0x83, 0xab, 0x3a,
];

/// A meta-data file with these packages.
pub fn meta(pkgs: &[TPkg], mode: u8, gran: u8) -> Vec<u8> {
    let blobs: Vec<Vec<u8>> = pkgs.iter().map(blob).collect();
    let n = blobs.len();
    let table_end = 56 + 16 * n;
    let start = table_end + 2;
    let total = start + blobs.iter().map(Vec::len).sum::<usize>();
    let mut out = Vec::new();
    out.extend_from_slice(b"\0cvm");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(total as u64).to_le_bytes());
    out.extend_from_slice(&(n as u64).to_le_bytes());
    out.extend_from_slice(&HASH);
    out.extend_from_slice(&(table_end as u32).to_le_bytes());
    out.extend_from_slice(&2u32.to_le_bytes());
    out.push(mode);
    out.push(gran);
    out.extend_from_slice(&[0; 6]);
    let mut off = start;
    for b in &blobs {
        out.extend_from_slice(&(off as u64).to_le_bytes());
        off += b.len();
    }
    for b in &blobs {
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    }
    out.extend_from_slice(&[1, 0]);
    for b in &blobs {
        out.extend_from_slice(b);
    }
    out
}

/// Offset of package 0's blob in `meta(sample_pkgs(), ..)`.
pub const BLOB0: usize = 56 + 32 + 2;

/// One record: (pkg, func, counters).
pub type Rec = (u32, u32, Vec<u32>);

/// Counter flavor byte values.
pub const RAW: u8 = 1;
pub const ULEB: u8 = 2;

/// A counter-data file. `raw`: flavor byte; `be`: big-endian raw counters.
/// Keys of `args` are written in the given order (Go sorts them).
pub fn counters(flavor: u8, be: bool, args: &[(&str, &str)], recs: &[Rec]) -> Vec<u8> {
    let mut strings: Vec<&str> = vec![""];
    for (k, v) in args {
        for s in [*k, *v] {
            if !strings.contains(&s) {
                strings.push(s);
            }
        }
    }
    let pos = |s: &str| strings.iter().position(|x| *x == s).unwrap() as u64;
    let mut st = Vec::new();
    strtab(&mut st, &strings);
    let mut a = Vec::new();
    uleb(&mut a, args.len() as u64);
    for (k, v) in args {
        uleb(&mut a, pos(k));
        uleb(&mut a, pos(v));
    }
    while (16 + st.len() + a.len()) % 4 != 0 {
        a.push(0);
    }
    let mut body = Vec::new();
    let put = |body: &mut Vec<u8>, v: u32| match flavor {
        RAW if be => body.extend_from_slice(&v.to_be_bytes()),
        RAW => body.extend_from_slice(&v.to_le_bytes()),
        _ => uleb(body, u64::from(v)),
    };
    for (p, f, c) in recs {
        put(&mut body, c.len() as u32);
        put(&mut body, *p);
        put(&mut body, *f);
        for v in c {
            put(&mut body, *v);
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"\0cwm");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&HASH);
    out.push(flavor);
    out.push(u8::from(be));
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&(recs.len() as u64).to_le_bytes());
    out.extend_from_slice(&(st.len() as u32).to_le_bytes());
    out.extend_from_slice(&(a.len() as u32).to_le_bytes());
    out.extend_from_slice(&st);
    out.extend_from_slice(&a);
    out.extend_from_slice(&body);
    out.extend_from_slice(&footer(1));
    out
}

pub fn footer(nseg: u32) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(b"\0cwm");
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(&nseg.to_le_bytes());
    f.extend_from_slice(&[0; 4]);
    f
}

pub const SAMPLE_ARGS: &[(&str, &str)] = &[
    ("GOARCH", "amd64"),
    ("GOOS", "linux"),
    ("argc", "2"),
    ("argv0", "./app"),
    ("argv1", "x"),
];

pub fn sample_recs() -> Vec<Rec> {
    vec![(0, 0, vec![3, 0, 7]), (0, 1, vec![1])]
}

/// The sample counter file (ULEB).
pub fn sample_counters() -> Vec<u8> {
    counters(ULEB, false, SAMPLE_ARGS, &sample_recs())
}

/// Offset of the segment header in a counter file.
pub const SEG: usize = 32;

pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
