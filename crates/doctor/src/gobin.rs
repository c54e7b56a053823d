//! What a Go executable says about its coverage, read from the file alone.
//!
//! Nothing here needs the symbol table, so stripped binaries (`-ldflags=-s
//! -w`) answer the same:
//!
//! - **Build info** (`.go.buildinfo`, or its magic anywhere in the file): the
//!   Go version, the main module and the build settings, among them
//!   `-cover=true` (written by Go 1.20+ for `-cover` builds).
//! - **Function names** from the Go runtime's own function table
//!   (`.gopclntab`, which the linker keeps in stripped binaries because the
//!   runtime needs it): the injected coverage server (`main._cov…`), signal
//!   handling (`os/signal.Notify`), a `go test -c` binary (`testing.MainStart`).
//! - **Coverage meta-data**: `cmd/cover` emits one read-only blob per
//!   instrumented package (layout in `internal/coverage/defs.go`,
//!   `MetaSymbolHeader`). The scan accepts a blob only when the FNV-1a-128
//!   hash recomputed from its decoded content equals the hash in its header,
//!   the way `cmd/cover` computed it (`encodemeta`), so random bytes never
//!   pass for a package.
//! - **Counter mode**: it is not in the blob; the compiler passes it as a
//!   constant to `runtime.addCovMeta(&blob, len, hash, pkgpath, pkid, cmode,
//!   cgran)` in the package's `init`. On amd64 and arm64 the instruction
//!   that takes the blob's address is found and the constant loaded into the
//!   `cmode` argument register (R8 / X5 under Go's register ABI) is read.

use std::collections::BTreeSet;
use std::path::Path;

use object::{Object, ObjectSection, SectionKind};
use serde::Serialize;

use crate::error::Error;

/// Everything read from one executable.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GoBinary {
    /// Go version from the build info (`go1.22.3`), when found.
    pub go_version: Option<String>,
    /// Main package path from the build info.
    pub main_path: Option<String>,
    /// Main module path from the build info.
    pub main_module: Option<String>,
    /// `build` settings from the build info, in order (`-cover` → `true`).
    pub settings: Vec<(String, String)>,
    /// Executable format and architecture (`elf/x86_64`).
    pub format: String,
    /// Whether the file asks for a dynamic loader (ELF `PT_INTERP`).
    pub dynamic: Option<bool>,
    /// Whether the symbol table is gone (stripped).
    pub stripped: bool,
    /// Function names from the Go function table (empty when not found).
    #[serde(skip)]
    pub functions: BTreeSet<String>,
    /// Whether the Go function table was found.
    pub has_pclntab: bool,
    /// Instrumented packages, in file order.
    pub packages: Vec<CoveredPackage>,
}

/// One package's coverage meta-data blob found in the file.
#[derive(Debug, Clone, Serialize)]
pub struct CoveredPackage {
    pub path: String,
    pub name: String,
    pub module: String,
    pub functions: usize,
    pub statements: u64,
    /// Counter mode passed to `runtime.addCovMeta` (`set`, `count`,
    /// `atomic`, …), when the architecture's code could be read.
    pub mode: Option<String>,
    /// Virtual address of the blob.
    #[serde(skip)]
    pub address: u64,
}

impl GoBinary {
    /// The value of a `build` setting.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether any function of that exact name is linked in.
    pub fn has_function(&self, name: &str) -> bool {
        self.functions.contains(name)
    }

    /// Whether any function name starts with `prefix`.
    pub fn has_function_prefix(&self, prefix: &str) -> bool {
        self.functions
            .range(prefix.to_string()..)
            .next()
            .is_some_and(|f| f.starts_with(prefix))
    }

    /// Whether some function of any package is named `name`
    /// (`<package path>.<name>`): in a `go test` binary the main package's
    /// functions carry its import path, not `main`.
    pub fn has_function_in_any_package(&self, name: &str) -> bool {
        let suffix = format!(".{name}");
        let closure = format!(".{name}.func");
        self.functions
            .iter()
            .any(|f| f.ends_with(&suffix) || f.contains(&closure))
    }

    /// The distinct counter modes seen (empty when unknown).
    pub fn modes(&self) -> BTreeSet<String> {
        self.packages
            .iter()
            .filter_map(|p| p.mode.clone())
            .collect()
    }
}

/// Reads `path` (a Go executable; any other file is an error).
pub fn read(path: &Path) -> Result<GoBinary, Error> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&data).map_err(|reason| Error::NotGo {
        path: path.to_path_buf(),
        reason,
    })
}

/// Reads an executable held in memory.
pub fn parse(data: &[u8]) -> Result<GoBinary, String> {
    let file = object::File::parse(data).map_err(|e| format!("not an executable: {e}"))?;
    let mut out = GoBinary {
        format: format!("{:?}/{:?}", file.format(), file.architecture()).to_lowercase(),
        stripped: file.symbols().next().is_none(),
        ..GoBinary::default()
    };
    if let object::File::Elf64(_) | object::File::Elf32(_) = &file {
        out.dynamic = Some(file.section_by_name(".interp").is_some() || has_interp(data));
    }

    let buildinfo = file
        .section_by_name(".go.buildinfo")
        .and_then(|s| s.data().ok())
        .filter(|d| d.starts_with(BUILDINFO_MAGIC))
        .or_else(|| find(data, BUILDINFO_MAGIC).map(|at| &data[at..]));
    if let Some(bi) = buildinfo {
        read_buildinfo(bi, &mut out);
    }

    let little = file.is_little_endian();
    let pcln = [".gopclntab", "__gopclntab"]
        .iter()
        .find_map(|n| file.section_by_name(n).and_then(|s| s.data().ok()))
        .and_then(|d| parse_pclntab(d, little))
        .or_else(|| scan_pclntab(data, little));
    if let Some(names) = pcln {
        out.has_pclntab = true;
        out.functions = names;
    }

    if out.go_version.is_none() && !out.has_pclntab {
        return Err("no Go build information and no Go function table: not a Go program".into());
    }

    let text: Vec<(u64, &[u8])> = file
        .sections()
        .filter(|s| s.kind() == SectionKind::Text)
        .filter_map(|s| Some((s.address(), s.data().ok()?)))
        .collect();
    for section in file.sections() {
        let name = section.name().unwrap_or("");
        let scan = matches!(
            section.kind(),
            SectionKind::ReadOnlyData
                | SectionKind::ReadOnlyString
                | SectionKind::ReadOnlyDataWithRel
                | SectionKind::Data
        ) && !name.contains("pclntab")
            && !name.contains("buildinfo");
        if !scan {
            continue;
        }
        let Ok(bytes) = section.data() else { continue };
        for (off, pkg) in scan_meta(bytes) {
            let address = section.address() + off as u64;
            let mode = match file.architecture() {
                object::Architecture::X86_64 => amd64_mode(&text, address),
                object::Architecture::Aarch64 => arm64_mode(&text, address),
                _ => None,
            };
            out.packages.push(CoveredPackage {
                statements: pkg.funcs.iter().map(covdata::FuncDesc::total_stmts).sum(),
                functions: pkg.funcs.len(),
                path: pkg.path,
                name: pkg.name,
                module: pkg.module_path,
                mode: mode.map(mode_name),
                address,
            });
        }
    }
    Ok(out)
}

fn has_interp(data: &[u8]) -> bool {
    // Section headers may be gone; the program headers never are.
    match object::read::elf::ElfFile64::<object::Endianness>::parse(data) {
        Ok(elf) => {
            use object::read::elf::ProgramHeader;
            let endian = elf.endian();
            elf.elf_program_headers()
                .iter()
                .any(|ph| ph.p_type(endian) == object::elf::PT_INTERP)
        }
        Err(_) => false,
    }
}

fn mode_name(m: u32) -> String {
    // internal/coverage.CounterMode
    match m {
        1 => "set".into(),
        2 => "count".into(),
        3 => "atomic".into(),
        4 => "regonly".into(),
        5 => "testmain".into(),
        other => format!("mode{other}"),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

const BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn read_buildinfo(bi: &[u8], out: &mut GoBinary) {
    // runtime/debug: 14-byte magic, pointer size, flags; with flag 2 the
    // version and module strings follow inline at offset 32 (Go 1.18+).
    if bi.len() < 32 || bi[15] & 2 == 0 {
        return;
    }
    let mut rest = &bi[32..];
    let mut strings = Vec::new();
    for _ in 0..2 {
        let Some((n, used)) = uvarint(rest) else {
            return;
        };
        let n = n as usize;
        if rest.len() < used + n {
            return;
        }
        strings.push(String::from_utf8_lossy(&rest[used..used + n]).into_owned());
        rest = &rest[used + n..];
    }
    out.go_version = Some(strings[0].clone());
    let mut modinfo = strings[1].as_str();
    // Sentinels of 16 bytes around the text (cmd/go modload).
    if modinfo.len() >= 33 && modinfo.as_bytes()[modinfo.len() - 17] == b'\n' {
        modinfo = modinfo.get(16..modinfo.len() - 16).unwrap_or("");
    }
    for line in modinfo.lines() {
        let mut parts = line.splitn(3, '\t');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("path"), Some(p), _) => out.main_path = Some(p.to_string()),
            (Some("mod"), Some(m), _) => out.main_module = Some(m.to_string()),
            (Some("build"), Some(kv), _) => {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                out.settings
                    .push((k.to_string(), v.trim_matches('"').to_string()));
            }
            _ => {}
        }
    }
}

fn rd_u32(b: &[u8], at: usize, little: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if little {
        u32::from_le_bytes(s)
    } else {
        u32::from_be_bytes(s)
    })
}

fn rd_word(b: &[u8], at: usize, ptr: usize, little: bool) -> Option<u64> {
    if ptr == 4 {
        return rd_u32(b, at, little).map(u64::from);
    }
    let s: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(if little {
        u64::from_le_bytes(s)
    } else {
        u64::from_be_bytes(s)
    })
}

/// Function names from a Go 1.18+ function table (`runtime.pcHeader`).
fn parse_pclntab(t: &[u8], little: bool) -> Option<BTreeSet<String>> {
    let magic = rd_u32(t, 0, little)?;
    if magic != 0xffff_fff0 && magic != 0xffff_fff1 {
        return None;
    }
    if t.get(4..6)? != [0, 0] {
        return None;
    }
    let ptr = *t.get(7)? as usize;
    if ptr != 4 && ptr != 8 {
        return None;
    }
    let word = |i: usize| rd_word(t, 8 + i * ptr, ptr, little).map(|v| v as usize);
    let nfunc = word(0)?;
    let funcname = word(3)?;
    let pcln = word(7)?;
    if nfunc == 0 || nfunc > t.len() / 8 || funcname >= t.len() || pcln >= t.len() {
        return None;
    }
    let mut names = BTreeSet::new();
    for i in 0..nfunc {
        let funcoff = rd_u32(t, pcln + i * 8 + 4, little)? as usize;
        let name_off = rd_u32(t, pcln + funcoff + 4, little)? as usize;
        let start = funcname.checked_add(name_off)?;
        let bytes = t.get(start..)?;
        let end = bytes.iter().position(|&b| b == 0)?;
        names.insert(String::from_utf8_lossy(&bytes[..end]).into_owned());
    }
    Some(names)
}

fn scan_pclntab(data: &[u8], little: bool) -> Option<BTreeSet<String>> {
    let magics: [[u8; 4]; 2] = if little {
        [[0xf1, 0xff, 0xff, 0xff], [0xf0, 0xff, 0xff, 0xff]]
    } else {
        [[0xff, 0xff, 0xff, 0xf1], [0xff, 0xff, 0xff, 0xf0]]
    };
    let mut at = 0;
    while at + 8 <= data.len() {
        let w = &data[at..at + 4];
        if (w == magics[0] || w == magics[1])
            && let Some(names) = parse_pclntab(&data[at..], little)
            && names.contains("runtime.main")
        {
            return Some(names);
        }
        at += 4;
    }
    None
}

const BLOB_HEADER: usize = 44;

/// Every verified coverage meta-data blob in `bytes`, with its offset.
pub fn scan_meta(bytes: &[u8]) -> Vec<(usize, covdata::PackageMeta)> {
    let u32_at = |at: usize| -> u32 {
        u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i + BLOB_HEADER <= bytes.len() {
        // Cheap checks first: the unused/padding bytes are zero, the length
        // fits, the string indexes are below the string count.
        if bytes[i + 32..i + 36] != [0, 0, 0, 0] {
            i += 1;
            continue;
        }
        let length = u32_at(i) as usize;
        let nstr = u32_at(i + 36) as usize;
        let nfuncs = u32_at(i + 40) as usize;
        let plausible = length >= BLOB_HEADER
            && length <= bytes.len() - i
            && (2..=1 << 20).contains(&nstr)
            && nfuncs <= (length - BLOB_HEADER) / 4
            && (u32_at(i + 4) as usize) < nstr
            && (u32_at(i + 8) as usize) < nstr
            && (u32_at(i + 12) as usize) < nstr
            && bytes[i + 16..i + 32] != [0; 16];
        if plausible {
            let blob = &bytes[i..i + length];
            if let Ok(pkg) = covdata::PackageMeta::decode(blob)
                && pkg.compute_hash() == pkg.hash
                && !pkg.path.is_empty()
            {
                found.push((i, pkg));
                i += length;
                continue;
            }
        }
        i += 1;
    }
    found
}

/// amd64: `LEAQ blob(IP), AX` (48 8d 05 disp32), then `MOVL $mode, R8`
/// (41 b8 imm32) before the call.
fn amd64_mode(text: &[(u64, &[u8])], blob: u64) -> Option<u32> {
    for &(base, code) in text {
        let mut i = 0;
        while i + 7 <= code.len() {
            if code[i] == 0x48 && code[i + 1] == 0x8d && code[i + 2] == 0x05 {
                let disp = i32::from_le_bytes([code[i + 3], code[i + 4], code[i + 5], code[i + 6]]);
                let target = (base + i as u64 + 7).wrapping_add(disp as i64 as u64);
                if target == blob {
                    let window = &code[i + 7..code.len().min(i + 7 + 96)];
                    let mut r8 = None;
                    let mut r9 = None;
                    let mut j = 0;
                    while j < window.len() {
                        let w = &window[j..];
                        if w.len() >= 6 && w[0] == 0x41 && (w[1] == 0xb8 || w[1] == 0xb9) {
                            let v = u32::from_le_bytes([w[2], w[3], w[4], w[5]]);
                            if w[1] == 0xb8 {
                                r8 = Some(v)
                            } else {
                                r9 = Some(v)
                            }
                            j += 6;
                            continue;
                        }
                        // MOVL R9, R8 (45 89 c8)
                        if w.len() >= 3 && w[..3] == [0x45, 0x89, 0xc8] {
                            r8 = r9;
                        }
                        if w[0] == 0xe8 {
                            break; // the call
                        }
                        j += 1;
                    }
                    if r8.is_some() {
                        return r8;
                    }
                }
            }
            i += 1;
        }
    }
    None
}

/// arm64: `ADRP Xn` + `ADD Xn, Xn, #lo` forming the blob address into X0,
/// then `MOVZ W5/X5, #mode` before the `BL`.
fn arm64_mode(text: &[(u64, &[u8])], blob: u64) -> Option<u32> {
    for &(base, code) in text {
        let insn = |k: usize| u32::from_le_bytes([code[k], code[k + 1], code[k + 2], code[k + 3]]);
        let mut i = 0;
        while i + 8 <= code.len() {
            let a = insn(i);
            if a & 0x9f00_0000 == 0x9000_0000 && a & 0x1f == 0 {
                let pc = base + i as u64;
                let immlo = u64::from((a >> 29) & 3);
                let immhi = u64::from((a >> 5) & 0x7ffff);
                let imm = (((immhi << 2) | immlo) << 12) as i64;
                let imm = (imm << 31) >> 31; // sign-extend 33 bits
                let page = (pc & !0xfff).wrapping_add(imm as u64);
                let b = insn(i + 4);
                if b & 0xff80_0000 == 0x9100_0000 && b & 0x1f == 0 && (b >> 5) & 0x1f == 0 {
                    let target = page + u64::from((b >> 10) & 0xfff);
                    if target == blob {
                        let mut k = i + 8;
                        while k + 4 <= code.len().min(i + 8 + 128) {
                            let c = insn(k);
                            // MOVZ (32 or 64 bit), hw=0, Rd=5
                            if c & 0x7fe0_001f == 0x5280_0005 {
                                return Some((c >> 5) & 0xffff);
                            }
                            // ORR Rd=5, ZR, #bitmask (how Go loads small constants)
                            if c & 0x7f80_03ff == 0x3200_03e5 {
                                return arm64_bitmask(c).and_then(|v| u32::try_from(v).ok());
                            }
                            if c & 0xfc00_0000 == 0x9400_0000 {
                                break; // BL
                            }
                            k += 4;
                        }
                    }
                }
            }
            i += 4;
        }
    }
    None
}

/// The value of an arm64 logical-immediate field (`DecodeBitMasks`).
fn arm64_bitmask(insn: u32) -> Option<u64> {
    let n = (insn >> 22) & 1;
    let immr = (insn >> 16) & 0x3f;
    let imms = (insn >> 10) & 0x3f;
    let combined = (n << 6) | (!imms & 0x3f);
    if combined == 0 {
        return None;
    }
    let len = 31 - combined.leading_zeros();
    let esize = 1u32 << len;
    let levels = esize - 1;
    let s = imms & levels;
    let r = immr & levels;
    if s == levels {
        return None;
    }
    let welem: u64 = (1u64 << (s + 1)) - 1;
    let mask = if esize == 64 {
        u64::MAX
    } else {
        (1u64 << esize) - 1
    };
    let elem = if r == 0 {
        welem
    } else {
        ((welem >> r) | (welem << (esize - r))) & mask
    };
    let mut v = 0u64;
    let mut at = 0;
    while at < 64 {
        v |= elem << at;
        at += esize;
    }
    if (insn >> 31) & 1 == 0 {
        v &= 0xffff_ffff;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::arm64_bitmask;

    #[test]
    fn arm64_logical_immediates() {
        // ORR $2, ZR, R5 and ORR $1, ZR, R6 as the Go assembler emits them.
        assert_eq!(arm64_bitmask(0xb27f03e5), Some(2));
        assert_eq!(arm64_bitmask(0xb24003e6), Some(1));
        // ORR $3 (two ones at bit 0).
        assert_eq!(arm64_bitmask(0xb24007e5), Some(3));
    }
}
