//! The meta-data file (`covmeta.<hash>`): which packages, functions and
//! coverable units a binary has.

use std::fmt;
use std::ops::Range;

use crate::Hash;
use crate::error::{BlobField, Error, ErrorKind};
use crate::gostr::{from_go_bytes, to_go_bytes};
use crate::hash::{Fnv128, HashWriter};
use crate::reader::{
    Reader, put_string_table, put_uleb, read_string_table, read_string_table_into,
};

/// `\0cvm`
pub const META_MAGIC: [u8; 4] = [0, b'c', b'v', b'm'];
/// Size of the meta-data file header.
pub const META_HEADER_LEN: usize = 56;
/// Size of a package blob header.
pub const BLOB_HEADER_LEN: usize = 44;

/// Counter mode, as stored (a Go enum; unknown values are kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CounterMode(pub u8);

impl CounterMode {
    pub const INVALID: CounterMode = CounterMode(0);
    pub const SET: CounterMode = CounterMode(1);
    pub const COUNT: CounterMode = CounterMode(2);
    pub const ATOMIC: CounterMode = CounterMode(3);
    pub const REGONLY: CounterMode = CounterMode(4);
    pub const TESTMAIN: CounterMode = CounterMode(5);

    /// Go's name for the mode (`<invalid>` for anything unknown).
    pub fn as_str(self) -> &'static str {
        match self.0 {
            1 => "set",
            2 => "count",
            3 => "atomic",
            4 => "regonly",
            5 => "testmain",
            _ => "<invalid>",
        }
    }

    /// Parses `set`, `count` or `atomic` (the text-profile modes).
    pub fn parse(s: &str) -> Option<CounterMode> {
        match s {
            "set" => Some(Self::SET),
            "count" => Some(Self::COUNT),
            "atomic" => Some(Self::ATOMIC),
            "regonly" => Some(Self::REGONLY),
            "testmain" => Some(Self::TESTMAIN),
            _ => None,
        }
    }
}

impl fmt::Display for CounterMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counter granularity (Go always uses per-block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CounterGranularity(pub u8);

impl CounterGranularity {
    pub const INVALID: CounterGranularity = CounterGranularity(0);
    pub const PER_BLOCK: CounterGranularity = CounterGranularity(1);
    pub const PER_FUNC: CounterGranularity = CounterGranularity(2);

    /// Go's name for the granularity.
    pub fn as_str(self) -> &'static str {
        match self.0 {
            1 => "perblock",
            2 => "perfunc",
            _ => "<invalid>",
        }
    }
}

impl fmt::Display for CounterGranularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One coverable unit (a basic block): a source range and its statement count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Unit {
    pub st_line: u32,
    pub st_col: u32,
    pub en_line: u32,
    pub en_col: u32,
    pub stmts: u32,
}

/// One function (or package-level function literal) of a package.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FuncDesc {
    /// `f`, `T.M`, `*T.M`, or `func.L<line>.C<col>` for literals.
    pub name: String,
    /// Source file, normally `pkgpath/basename`.
    pub file: String,
    /// Units in instrumentation order (counter `i` belongs to `units[i]`).
    pub units: Vec<Unit>,
    /// True for function literals outside any function.
    pub literal: bool,
}

/// One package's blob in a meta-data file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageMeta {
    pub path: String,
    pub name: String,
    pub module_path: String,
    /// The blob hash stored in its header.
    pub hash: Hash,
    pub funcs: Vec<FuncDesc>,
}

/// A decoded meta-data file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaFile {
    pub version: u32,
    /// The file hash in the header (normally equal to the file-name tag).
    pub hash: Hash,
    pub mode: CounterMode,
    pub granularity: CounterGranularity,
    /// Packages in blob (registration) order; a counter's `pkg` indexes this.
    pub packages: Vec<PackageMeta>,
}

/// Where one package blob lies in a meta-data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobSpan {
    pub offset: usize,
    pub len: usize,
}

impl BlobSpan {
    /// The blob's bytes, or `unexpected EOF` when the file is shorter than
    /// its table says (Go checks offsets against the header's length only).
    /// Error offsets are relative to the blob start, like [`PackageMeta::decode`]'s.
    pub fn slice(self, data: &[u8]) -> Result<&[u8], Error> {
        match self.offset.checked_add(self.len) {
            Some(end) if end <= data.len() => Ok(&data[self.offset..end]),
            _ => Err(Error::at(ErrorKind::UnexpectedEof, 0)),
        }
    }
}

impl MetaFile {
    /// Decodes a whole meta-data file.
    pub fn decode(data: &[u8]) -> Result<MetaFile, Error> {
        let (mut file, spans) = Self::decode_header(data)?;
        file.packages.reserve(spans.len());
        for span in spans {
            let pkg = span
                .slice(data)
                .and_then(PackageMeta::decode)
                .map_err(|mut e| {
                    e.offset = e.offset.map(|o| o + span.offset as u64);
                    e
                })?;
            file.packages.push(pkg);
        }
        Ok(file)
    }

    /// Decodes the header and the blob table, without the blobs; returns the
    /// (in-bounds) blob spans. `packages` is left empty.
    pub fn decode_header(data: &[u8]) -> Result<(MetaFile, Vec<BlobSpan>), Error> {
        let mut r = Reader::new(data);
        let magic = r.bytes(4)?;
        if magic != META_MAGIC {
            return Err(Error::at(ErrorKind::BadMetaMagic, 0));
        }
        let version = r.u32()?;
        if version > 1 {
            return Err(Error::at(ErrorKind::MetaVersion(version), 4));
        }
        let total_len = r.u64()?;
        let entries = r.u64()?;
        let hash = r.hash()?;
        let _str_tab_offset = r.u32()?;
        let str_tab_len = r.u32()?;
        let mode = CounterMode(r.u8()?);
        let granularity = CounterGranularity(r.u8()?);
        r.bytes(6)?;
        // Each entry needs 16 bytes of table: bound the count by the file.
        if entries > (r.remaining() / 16) as u64 {
            return Err(Error::at(
                ErrorKind::TooManyPackages {
                    claimed: entries,
                    room: (r.remaining() / 16) as u64,
                },
                16,
            ));
        }
        let n = entries as usize;
        let insane = |field: BlobField, index: usize, value: u64, at: usize| {
            Error::at(
                ErrorKind::InsaneBlob {
                    field,
                    index,
                    value,
                    total_len,
                },
                at,
            )
        };
        let mut offsets = Vec::with_capacity(n);
        for i in 0..n {
            let at = r.pos();
            let off = r.u64()?;
            if off > total_len {
                return Err(insane(BlobField::Offset, i, off, at));
            }
            offsets.push(off);
        }
        let mut spans = Vec::with_capacity(n);
        for (i, &off) in offsets.iter().enumerate() {
            let at = r.pos();
            let len = r.u64()?;
            if len > total_len {
                return Err(insane(BlobField::Length, i, len, at));
            }
            spans.push(BlobSpan {
                offset: off as usize,
                len: len as usize,
            });
        }
        // The file-level string table (always just ""): Go decodes it (and
        // panics when it overruns its length), so it must be well formed.
        let st_at = r.pos();
        let st = r
            .bytes(str_tab_len as usize)
            .map_err(|_| Error::at(ErrorKind::ShortStringTable, st_at))?;
        read_string_table(&mut Reader::new(st)).map_err(|mut e| {
            e.offset = e.offset.map(|o| o + st_at as u64);
            e
        })?;
        Ok((
            MetaFile {
                version,
                hash,
                mode,
                granularity,
                packages: Vec::new(),
            },
            spans,
        ))
    }

    /// Encodes a meta-data file from already-encoded package blobs.
    pub fn encode_from_blobs(
        hash: Hash,
        mode: CounterMode,
        granularity: CounterGranularity,
        blobs: &[&[u8]],
    ) -> Vec<u8> {
        let n = blobs.len();
        let mut strtab = Vec::new();
        put_string_table(&mut strtab, &[""]);
        let table_end = META_HEADER_LEN + 16 * n;
        let blobs_start = table_end + strtab.len();
        let total = blobs_start + blobs.iter().map(|b| b.len()).sum::<usize>();
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&META_MAGIC);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(total as u64).to_le_bytes());
        out.extend_from_slice(&(n as u64).to_le_bytes());
        out.extend_from_slice(&hash);
        out.extend_from_slice(&(table_end as u32).to_le_bytes());
        out.extend_from_slice(&(strtab.len() as u32).to_le_bytes());
        out.push(mode.0);
        out.push(granularity.0);
        out.extend_from_slice(&[0; 6]);
        let mut off = blobs_start;
        for b in blobs {
            out.extend_from_slice(&(off as u64).to_le_bytes());
            off += b.len();
        }
        for b in blobs {
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        }
        out.extend_from_slice(&strtab);
        for b in blobs {
            out.extend_from_slice(b);
        }
        out
    }

    /// Encodes this meta-data file, re-encoding each package blob (with its
    /// stored hash) and using `self.hash` as the file hash.
    pub fn encode(&self) -> Vec<u8> {
        let blobs: Vec<Vec<u8>> = self.packages.iter().map(PackageMeta::encode).collect();
        let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        Self::encode_from_blobs(self.hash, self.mode, self.granularity, &refs)
    }

    /// The hash the Go runtime gives a meta-data file with these packages:
    /// H(blob hashes ‖ mode ‖ granularity), FNV-1a-128 (Go ≥ 1.24).
    pub fn runtime_hash(&self) -> Hash {
        let mut h = Fnv128::new();
        for p in &self.packages {
            h.write(&p.hash);
        }
        h.write(self.mode.as_str().as_bytes());
        h.write(self.granularity.as_str().as_bytes());
        h.finish()
    }
}

/// One package of a [`MetaView`]: names as Go bytes, borrowed from the file.
#[derive(Debug, Clone)]
pub struct PackageView<'a> {
    pub path: &'a [u8],
    pub name: &'a [u8],
    pub module_path: &'a [u8],
    /// The blob hash stored in its header.
    pub hash: Hash,
    /// This package's functions in [`MetaView::funcs`].
    pub funcs: Range<usize>,
}

/// One function of a [`MetaView`].
#[derive(Debug, Clone, Copy)]
pub struct FuncView {
    /// Index of the name in [`MetaView::strings`].
    pub name: u32,
    /// Index of the source file in [`MetaView::strings`].
    pub file: u32,
    /// First unit in [`MetaView::units`].
    pub first_unit: u32,
    /// Number of units.
    pub num_units: u32,
    /// True for function literals outside any function.
    pub literal: bool,
}

impl FuncView {
    /// This function's units in [`MetaView::units`].
    pub fn units(&self) -> Range<usize> {
        self.first_unit as usize..(self.first_unit + self.num_units) as usize
    }
}

/// Package blobs decoded without copying: every string stays a slice of
/// the file, and the packages, functions, units and strings of all blobs
/// share four flat vectors (the fast path of the report tools; what
/// [`PackageMeta::decode`] builds on).
#[derive(Debug, Default)]
pub struct MetaView<'a> {
    pub packages: Vec<PackageView<'a>>,
    pub funcs: Vec<FuncView>,
    pub units: Vec<Unit>,
    /// The string tables of all packages, one after another.
    pub strings: Vec<&'a [u8]>,
}

impl<'a> MetaView<'a> {
    /// An empty view with room for the functions and units a meta-data file
    /// of `file_len` bytes can hold at most (each function takes at least 8
    /// bytes, each unit 5): decoding then never moves them. Capacity beyond
    /// what is filled is never touched, so it costs address space only.
    pub fn for_file_len(file_len: usize) -> Self {
        MetaView {
            packages: Vec::new(),
            funcs: Vec::with_capacity(file_len / 8),
            units: Vec::with_capacity(file_len / 5),
            strings: Vec::with_capacity(file_len / 16),
        }
    }

    /// The units of package `p`'s functions (contiguous in [`MetaView::units`]).
    pub fn package_units(&self, p: &PackageView<'_>) -> Range<usize> {
        match (
            self.funcs[p.funcs.clone()].first(),
            self.funcs[p.funcs.clone()].last(),
        ) {
            (Some(a), Some(b)) => a.units().start..b.units().end,
            _ => 0..0,
        }
    }

    /// The string at `index` (an index from a [`FuncView`]).
    pub fn str(&self, index: u32) -> &'a [u8] {
        self.strings[index as usize]
    }

    /// Decodes one package blob and appends it (offsets in errors are
    /// relative to the blob). After an error the view holds a partial
    /// package and should be dropped.
    pub fn push_package(&mut self, blob: &'a [u8]) -> Result<PackageView<'a>, Error> {
        let mut r = Reader::new(blob);
        let length = r.u32()? as usize;
        let name_idx = r.u32()?;
        let path_idx = r.u32()?;
        let mod_idx = r.u32()?;
        let hash = r.hash()?;
        r.bytes(4)?;
        let _num_strings = r.u32()?;
        let num_funcs = r.u32()? as usize;
        if num_funcs > r.remaining() / 4 {
            return Err(Error::at(
                ErrorKind::TooManyFuncs {
                    claimed: num_funcs as u64,
                    room: (r.remaining() / 4) as u64,
                },
                40,
            ));
        }
        let foffs_at = r.pos();
        r.bytes(4 * num_funcs)?;
        let str_base = self.strings.len();
        read_string_table_into(&mut r, &mut self.strings)?;
        let n_strings = self.strings.len() - str_base;
        let get = |idx: u64, at: usize| -> Result<u32, Error> {
            if idx < n_strings as u64 {
                Ok((str_base as u64 + idx) as u32)
            } else {
                Err(Error::at(
                    ErrorKind::BadStringRef {
                        index: idx,
                        len: n_strings,
                    },
                    at,
                ))
            }
        };
        let name = get(u64::from(name_idx), 4)?;
        let path = get(u64::from(path_idx), 8)?;
        let module_path = get(u64::from(mod_idx), 12)?;
        let funcs_start = self.funcs.len();
        self.funcs.reserve(num_funcs);
        for i in 0..num_funcs {
            let at = foffs_at + 4 * i;
            let foff =
                u32::from_le_bytes([blob[at], blob[at + 1], blob[at + 2], blob[at + 3]]) as usize;
            if foff < BLOB_HEADER_LEN + 4 * i || foff > length {
                return Err(Error::at(ErrorKind::BadFuncOffset(foff as u64), at));
            }
            let mut fr = Reader::at(blob, foff);
            let num_units = fr.uleb()?;
            if num_units > (fr.remaining() / 5) as u64 {
                return Err(Error::at(
                    ErrorKind::TooManyUnits {
                        claimed: num_units,
                        bytes: fr.remaining() as u64,
                    },
                    foff,
                ));
            }
            let at = fr.pos();
            let fname = get(fr.uleb()?, at)?;
            let at = fr.pos();
            let file = get(fr.uleb()?, at)?;
            let first_unit = self.units.len();
            fr.units_into(num_units as usize, &mut self.units)?;
            let literal = fr.uleb()? != 0;
            self.funcs.push(FuncView {
                name: fname,
                file,
                first_unit: first_unit as u32,
                num_units: num_units as u32,
                literal,
            });
        }
        let p = PackageView {
            path: self.str(path),
            name: self.str(name),
            module_path: self.str(module_path),
            hash,
            funcs: funcs_start..self.funcs.len(),
        };
        self.packages.push(p.clone());
        Ok(p)
    }
}

impl PackageMeta {
    /// Decodes one package blob (offsets in errors are relative to the blob).
    pub fn decode(blob: &[u8]) -> Result<PackageMeta, Error> {
        let mut view = MetaView::default();
        let p = view.push_package(blob)?;
        let strings: Vec<String> = view.strings.iter().map(|s| from_go_bytes(s)).collect();
        let funcs = view.funcs[p.funcs.clone()]
            .iter()
            .map(|f| FuncDesc {
                name: strings[f.name as usize].clone(),
                file: strings[f.file as usize].clone(),
                units: view.units[f.units()].to_vec(),
                literal: f.literal,
            })
            .collect();
        Ok(PackageMeta {
            path: from_go_bytes(p.path),
            name: from_go_bytes(p.name),
            module_path: from_go_bytes(p.module_path),
            hash: p.hash,
            funcs,
        })
    }

    /// Encodes this package as a blob the way `cmd/cover` does (string
    /// interning order `""`, path, name, module, then each function's name and
    /// file), with `self.hash` in the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut strings: Vec<&str> = Vec::new();
        let mut index: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        let mut lookup = |s: &str| -> u32 {
            if let Some(&i) = index.get(s) {
                return i;
            }
            let i = index.len() as u32;
            index.insert(s.to_string(), i);
            i
        };
        lookup("");
        let path_i = lookup(&self.path);
        let name_i = lookup(&self.name);
        let mod_i = lookup(&self.module_path);
        let mut recs: Vec<Vec<u8>> = Vec::with_capacity(self.funcs.len());
        for f in &self.funcs {
            let fi = lookup(&f.name);
            let si = lookup(&f.file);
            let mut rec = Vec::with_capacity(8 + 6 * f.units.len());
            put_uleb(&mut rec, f.units.len() as u64);
            put_uleb(&mut rec, u64::from(fi));
            put_uleb(&mut rec, u64::from(si));
            for u in &f.units {
                for v in [u.st_line, u.st_col, u.en_line, u.en_col, u.stmts] {
                    put_uleb(&mut rec, u64::from(v));
                }
            }
            put_uleb(&mut rec, u64::from(f.literal));
            recs.push(rec);
        }
        let mut ordered: Vec<(&String, &u32)> = index.iter().collect();
        ordered.sort_by_key(|(_, i)| **i);
        strings.extend(ordered.iter().map(|(s, _)| s.as_str()));
        let mut strtab = Vec::new();
        put_string_table(&mut strtab, &strings);
        let nf = self.funcs.len();
        let mut off = BLOB_HEADER_LEN + 4 * nf + strtab.len();
        let total = off + recs.iter().map(Vec::len).sum::<usize>();
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&name_i.to_le_bytes());
        out.extend_from_slice(&path_i.to_le_bytes());
        out.extend_from_slice(&mod_i.to_le_bytes());
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&(nf as u32).to_le_bytes());
        for r in &recs {
            out.extend_from_slice(&(off as u32).to_le_bytes());
            off += r.len();
        }
        out.extend_from_slice(&strtab);
        for r in &recs {
            out.extend_from_slice(r);
        }
        out
    }

    /// The blob hash `cmd/cover` computes: H(path ‖ name ‖ module ‖ per
    /// function: name ‖ file ‖ units as le32 ‖ le32(lit)), FNV-1a-128.
    pub fn compute_hash(&self) -> Hash {
        let mut h = Fnv128::new();
        self.hash_into(&mut h);
        h.finish()
    }

    /// Feeds what the blob hash covers into `h` (any algorithm).
    pub(crate) fn hash_into(&self, h: &mut impl HashWriter) {
        h.write(&to_go_bytes(&self.path));
        h.write(&to_go_bytes(&self.name));
        h.write(&to_go_bytes(&self.module_path));
        for f in &self.funcs {
            f.hash_into(h);
        }
    }
}

impl FuncDesc {
    fn hash_into(&self, h: &mut impl HashWriter) {
        h.write(&to_go_bytes(&self.name));
        h.write(&to_go_bytes(&self.file));
        for u in &self.units {
            for v in [u.st_line, u.st_col, u.en_line, u.en_col, u.stmts] {
                h.write(&v.to_le_bytes());
            }
        }
        h.write(&u32::from(self.literal).to_le_bytes());
    }

    /// Go's `HashFuncDesc`: the identity of a function across builds.
    pub fn identity_hash(&self) -> Hash {
        let mut h = Fnv128::new();
        self.hash_into(&mut h);
        h.finish()
    }

    /// Total statements over all units.
    pub fn total_stmts(&self) -> u64 {
        self.units.iter().map(|u| u64::from(u.stmts)).sum()
    }
}
