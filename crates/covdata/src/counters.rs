//! The counter-data file (`covcounters.<hash>.<pid>.<nanotime>`): the
//! execution counts of one process at one moment.

use crate::Hash;
use crate::error::{Error, ErrorKind};
use crate::reader::{Reader, put_string_table, put_uleb, read_string_table};

/// `\0cwm`
pub const COUNTER_MAGIC: [u8; 4] = [0, b'c', b'w', b'm'];
/// Size of the counter file header.
pub const COUNTER_HEADER_LEN: usize = 32;
/// Size of the counter file footer.
pub const COUNTER_FOOTER_LEN: usize = 16;

/// How counters are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CounterFlavor {
    /// Fixed-width u32 (either endianness). Readable; no Go writer produces it.
    Raw,
    /// ULEB128, what Go writes.
    #[default]
    Uleb128,
}

/// The counters of one function in one counter file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FuncCounters {
    /// Index of the package in the meta-data file.
    pub pkg: u32,
    /// Index of the function in the package.
    pub func: u32,
    /// One counter per coverable unit.
    pub counters: Vec<u32>,
}

/// A decoded counter-data file (its first segment, the only one Go reads).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CounterFile {
    /// The meta-data file hash in the header (Go never checks it).
    pub meta_hash: Hash,
    pub flavor: CounterFlavor,
    pub big_endian: bool,
    /// Segments the footer announces (only the first is read, as Go does).
    pub num_segments: u32,
    /// The args table as stored: (key, value), keys in byte order.
    pub args: Vec<(String, String)>,
    /// `argv0..argv{argc-1}` (empty when there is no `argc`).
    pub os_args: Vec<String>,
    pub goos: String,
    pub goarch: String,
    /// Function records in file order.
    pub funcs: Vec<FuncCounters>,
}

impl CounterFile {
    /// Decodes a counter-data file with Go's reader semantics.
    pub fn decode(data: &[u8]) -> Result<CounterFile, Error> {
        let mut funcs = Vec::new();
        let mut file = Self::decode_visit(data, |pkg, func, counters| {
            funcs.push(FuncCounters {
                pkg,
                func,
                counters: counters.to_vec(),
            });
        })?;
        file.funcs = funcs;
        Ok(file)
    }

    /// Decodes a counter-data file like [`CounterFile::decode`], but hands
    /// each function record to `visit` (package, function, counters) in file
    /// order instead of collecting them: `funcs` is left empty, and the
    /// counters slice is one buffer reused for every record.
    pub fn decode_visit(
        data: &[u8],
        mut visit: impl FnMut(u32, u32, &[u32]),
    ) -> Result<CounterFile, Error> {
        let mut r = Reader::new(data);
        let magic = r.bytes(4)?;
        if magic != COUNTER_MAGIC {
            return Err(Error::at(ErrorKind::BadCounterMagic, 0));
        }
        let version = r.u32()?;
        if version > 1 {
            return Err(Error::at(ErrorKind::CounterVersion(version), 4));
        }
        let meta_hash = r.hash()?;
        let flavor_byte = r.u8()?;
        let big_endian = r.u8()? != 0;
        r.bytes(6)?;
        // Footer.
        let foot = data.len() - COUNTER_FOOTER_LEN;
        let mut fr = Reader::at(data, foot);
        if fr.bytes(4)? != COUNTER_MAGIC {
            return Err(Error::at(ErrorKind::BadFooterMagic, foot));
        }
        fr.bytes(4)?;
        let num_segments = fr.u32()?;
        if num_segments == 0 {
            return Err(Error::at(ErrorKind::NoSegments, foot + 8));
        }
        // Segment 1 preamble.
        let fcn_entries = r.u64()?;
        let str_tab_len = r.u32()? as usize;
        let args_len = r.u32()? as usize;
        let st_start = r.pos();
        let st_bytes = r
            .bytes(str_tab_len)
            .map_err(|_| Error::at(ErrorKind::ShortStringTable, st_start))?;
        let mut sr = Reader::new(st_bytes);
        let strings = read_string_table(&mut sr).map_err(|mut e| {
            e.offset = e.offset.map(|o| o + st_start as u64);
            e
        })?;
        let args_start = r.pos();
        let args_bytes = r
            .bytes(args_len)
            .map_err(|_| Error::at(ErrorKind::ShortArgsTable, args_start))?;
        let rebase = |mut e: Error| {
            e.offset = e.offset.map(|o| o + args_start as u64);
            e
        };
        let mut ar = Reader::new(args_bytes);
        let nents = ar.uleb().map_err(rebase)?;
        let mut args: Vec<(String, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let get = |ar: &mut Reader<'_>| -> Result<String, Error> {
            let at = ar.pos();
            let idx = ar.uleb().map_err(rebase)?;
            strings.get(idx as usize).cloned().ok_or_else(|| {
                Error::at(
                    ErrorKind::BadStringRef {
                        index: idx,
                        len: strings.len(),
                    },
                    args_start + at,
                )
            })
        };
        for _ in 0..nents {
            let at = ar.pos();
            let k = get(&mut ar)?;
            let v = get(&mut ar)?;
            if !seen.insert(k.clone()) {
                return Err(Error::at(ErrorKind::DuplicateArg(k), args_start + at));
            }
            args.push((k, v));
        }
        let map: std::collections::HashMap<&str, &str> =
            args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let lookup = |key: &str| map.get(key).map(|v| (*v).to_string());
        let mut os_args = Vec::new();
        if let Some(argc) = lookup("argc") {
            let argc: i64 =
                parse_go_atoi(&argc).ok_or(Error::at(ErrorKind::BadArgc, args_start))?;
            for i in 0..argc.max(0) {
                os_args.push(lookup(&format!("argv{i}")).unwrap_or_default());
                if os_args.len() > data.len() {
                    return Err(Error::at(ErrorKind::BadArgc, args_start));
                }
            }
        }
        let goos = lookup("GOOS").unwrap_or_default();
        let goarch = lookup("GOARCH").unwrap_or_default();
        // Skip to a 4-byte boundary of the absolute offset.
        let rem = r.pos() % 4;
        if rem != 0 {
            r.bytes(4 - rem)?;
        }
        // Records: read from the stream as Go does (they may run into the footer).
        let flavor = match flavor_byte {
            1 => CounterFlavor::Raw,
            2 => CounterFlavor::Uleb128,
            other => {
                if fcn_entries as u32 > 0 {
                    return Err(Error::at(ErrorKind::BadFlavor(other), 24));
                }
                CounterFlavor::Uleb128
            }
        };
        let mut counters: Vec<u32> = Vec::new();
        let read = |r: &mut Reader<'_>| -> Result<u32, Error> {
            match flavor {
                CounterFlavor::Uleb128 => Ok(r.uleb()? as u32),
                CounterFlavor::Raw if big_endian => r.u32_be(),
                CounterFlavor::Raw => r.u32(),
            }
        };
        // Go counts records against uint32(FcnEntries): the upper half is ignored.
        for _ in 0..(fcn_entries as u32) {
            let nc = read(&mut r)?;
            let pkg = read(&mut r)?;
            let func = read(&mut r)?;
            // Every counter takes at least one byte: bound before allocating.
            if nc as usize > r.remaining() {
                return Err(r.eof());
            }
            counters.clear();
            counters.reserve(nc as usize);
            for _ in 0..nc {
                counters.push(read(&mut r)?);
            }
            visit(pkg, func, &counters);
        }
        Ok(CounterFile {
            meta_hash,
            flavor,
            big_endian,
            num_segments,
            args,
            os_args,
            goos,
            goarch,
            funcs: Vec::new(),
        })
    }

    /// Builds the args table Go's runtime records for a process.
    pub fn args_for(os_args: &[String], goos: &str, goarch: &str) -> Vec<(String, String)> {
        let mut args = vec![("argc".to_string(), os_args.len().to_string())];
        for (i, a) in os_args.iter().enumerate() {
            args.push((format!("argv{i}"), a.clone()));
        }
        if !goos.is_empty() {
            args.push(("GOOS".into(), goos.into()));
        }
        if !goarch.is_empty() {
            args.push(("GOARCH".into(), goarch.into()));
        }
        args.sort();
        args
    }

    /// Encodes a one-segment ULEB128 counter file (what Go's writer emits),
    /// with a deterministic string-table order: `""`, then keys and values in
    /// key order.
    pub fn encode(&self) -> Vec<u8> {
        let mut args: Vec<(&str, &str)> = self
            .args
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        args.sort();
        args.dedup_by(|a, b| a.0 == b.0);
        let mut strings: Vec<&str> = vec![""];
        let mut index_of = std::collections::HashMap::new();
        index_of.insert("", 0usize);
        for (k, v) in &args {
            for s in [*k, *v] {
                if !index_of.contains_key(s) {
                    index_of.insert(s, strings.len());
                    strings.push(s);
                }
            }
        }
        let mut seg = Vec::new();
        put_string_table(&mut seg, &strings);
        let str_tab_len = seg.len();
        put_uleb(&mut seg, args.len() as u64);
        for (k, v) in &args {
            put_uleb(&mut seg, index_of[k] as u64);
            put_uleb(&mut seg, index_of[v] as u64);
        }
        // Pad so that (segment header + string table + args) is 4-aligned.
        while (16 + seg.len()) % 4 != 0 {
            seg.push(0);
        }
        let args_len = seg.len() - str_tab_len;
        for f in &self.funcs {
            put_uleb(&mut seg, f.counters.len() as u64);
            put_uleb(&mut seg, u64::from(f.pkg));
            put_uleb(&mut seg, u64::from(f.func));
            for &c in &f.counters {
                put_uleb(&mut seg, u64::from(c));
            }
        }
        let mut out = Vec::with_capacity(COUNTER_HEADER_LEN + 16 + seg.len() + 16);
        out.extend_from_slice(&COUNTER_MAGIC);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&self.meta_hash);
        out.push(2);
        out.push(0);
        out.extend_from_slice(&[0; 6]);
        out.extend_from_slice(&(self.funcs.len() as u64).to_le_bytes());
        out.extend_from_slice(&(str_tab_len as u32).to_le_bytes());
        out.extend_from_slice(&(args_len as u32).to_le_bytes());
        out.extend_from_slice(&seg);
        out.extend_from_slice(&COUNTER_MAGIC);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out
    }
}

/// Go's `strconv.Atoi`: optional sign, decimal digits, no overflow.
pub(crate) fn parse_go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
