//! Malformed coverage files (format notes §5): every decoder returns an
//! `Err` whose message names the byte offset, never panics, and never makes
//! an allocation larger than the input justifies.

mod common;

use common::*;
use covdata::{CounterFile, ErrorKind, MetaFile};

#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

/// The largest single allocation a decoder may make for `len` input bytes.
fn alloc_bound(len: usize) -> usize {
    32 * len + 64 * 1024
}

fn decode_meta(data: &[u8]) -> Result<MetaFile, covdata::Error> {
    let (r, max) = max_alloc_during(|| MetaFile::decode(data));
    assert!(
        max <= alloc_bound(data.len()),
        "allocated {max} bytes for a {}-byte meta file",
        data.len()
    );
    r
}

fn decode_ctr(data: &[u8]) -> Result<CounterFile, covdata::Error> {
    let (r, max) = max_alloc_during(|| CounterFile::decode(data));
    assert!(
        max <= alloc_bound(data.len()),
        "allocated {max} bytes for a {}-byte counter file",
        data.len()
    );
    r
}

/// Asserts a rejection whose message names an offset and contains `want`.
#[track_caller]
fn rejected<T: std::fmt::Debug>(r: Result<T, covdata::Error>, want: &str) -> covdata::Error {
    let e = r.expect_err("malformed input was accepted");
    let msg = e.to_string();
    assert!(e.offset.is_some(), "error without an offset: {msg}");
    assert!(
        msg.contains("offset"),
        "message does not name the offset: {msg}"
    );
    assert!(msg.contains(want), "message {msg:?} lacks {want:?}");
    let p = std::path::Path::new("/data/covmeta.1234");
    let with = e.clone().with_path(p).to_string();
    assert!(
        with.contains("/data/covmeta.1234"),
        "with_path does not name the file: {with}"
    );
    e
}

/// [`rejected`], and the error is of the kind `$kind` (a pattern).
macro_rules! rejected {
    ($r:expr, $want:expr, $kind:pat) => {{
        let e = rejected($r, $want);
        assert!(
            matches!(e.kind, $kind),
            "wrong error kind {:?}, expected {}",
            e.kind,
            stringify!($kind)
        );
        e
    }};
}

fn sample_meta() -> Vec<u8> {
    meta(&sample_pkgs(), 2, 1)
}

// ---- the valid baseline -------------------------------------------------

#[test]
fn baseline_files_decode() {
    let m = decode_meta(&sample_meta()).unwrap();
    assert_eq!(m.packages.len(), 2);
    assert_eq!(m.mode.as_str(), "count");
    assert_eq!(m.granularity.as_str(), "perblock");
    let p = &m.packages[0];
    assert_eq!(
        (p.path.as_str(), p.name.as_str(), p.module_path.as_str()),
        ("example.com/m/util", "util", "example.com/m")
    );
    assert_eq!(p.funcs.len(), 2);
    assert_eq!(p.funcs[0].name, "Abs");
    assert_eq!(p.funcs[0].units.len(), 3);
    assert_eq!(p.funcs[0].units[2].st_line, 6);
    assert!(p.funcs[1].literal);
    assert!(m.packages[1].funcs.is_empty());
    let c = decode_ctr(&sample_counters()).unwrap();
    assert_eq!(c.os_args, vec!["./app".to_string(), "x".into()]);
    assert_eq!((c.goos.as_str(), c.goarch.as_str()), ("linux", "amd64"));
    assert_eq!(c.funcs.len(), 2);
    assert_eq!(c.funcs[0].counters, vec![3, 0, 7]);
    assert_eq!(c.num_segments, 1);
}

// ---- meta-data file -----------------------------------------------------

#[test]
fn meta_truncated_in_header() {
    let m = sample_meta();
    for n in [0, 3, 10, 30, 55] {
        rejected!(decode_meta(&m[..n]), "", ErrorKind::UnexpectedEof);
    }
    rejected!(
        decode_meta(&m[..30]),
        "unexpected EOF",
        ErrorKind::UnexpectedEof
    );
}

#[test]
fn meta_truncated_in_table_and_blob() {
    let m = sample_meta();
    for n in [60, 80, BLOB0 + 10, BLOB0 + 50, m.len() - 1] {
        rejected!(
            decode_meta(&m[..n]),
            "",
            ErrorKind::TooManyPackages { .. } | ErrorKind::UnexpectedEof
        );
    }
}

#[test]
fn meta_bad_magic() {
    let mut m = sample_meta();
    m[1] = b'X';
    let e = rejected!(
        decode_meta(&m),
        "invalid meta-data file magic string",
        ErrorKind::BadMetaMagic
    );
    assert_eq!(e.offset, Some(0));
}

#[test]
fn meta_version_2() {
    let mut m = sample_meta();
    put_u32(&mut m, 4, 2);
    rejected!(
        decode_meta(&m),
        "unknown version 2",
        ErrorKind::MetaVersion(..)
    );
}

#[test]
fn meta_version_0_is_accepted() {
    let mut m = sample_meta();
    put_u32(&mut m, 4, 0);
    assert_eq!(decode_meta(&m).unwrap().packages.len(), 2);
}

#[test]
fn meta_entries_zero_does_not_panic() {
    // Go misreads the table and panics; anything but a panic will do here.
    let mut m = sample_meta();
    put_u64(&mut m, 16, 0);
    let _ = decode_meta(&m);
}

#[test]
fn meta_entries_huge() {
    for n in [3u64, 1 << 20, 1 << 40, u64::MAX] {
        let mut m = sample_meta();
        put_u64(&mut m, 16, n);
        rejected!(
            decode_meta(&m),
            "",
            ErrorKind::InsaneBlob { .. } | ErrorKind::TooManyPackages { .. }
        );
    }
}

#[test]
fn meta_cmode_0_and_9_decode() {
    // CMode 0 makes Go's textfmt panic and 9 prints `mode: <invalid>`: the
    // decoder keeps the value; reporting decides (see the CLI tests).
    for mode in [0u8, 9] {
        let m = decode_meta(&meta(&sample_pkgs(), mode, 1));
        if let Ok(m) = m {
            assert_eq!(m.mode.0, mode);
        }
    }
}

#[test]
fn meta_blob_offset_or_length_beyond_file() {
    let base = sample_meta();
    for (at, v) in [
        (56, 1u64 << 33),
        (56 + 16, 1 << 33),
        (56, base.len() as u64 + 5),
        (56 + 16, base.len() as u64),
    ] {
        let mut m = base.clone();
        put_u64(&mut m, at, v);
        rejected!(
            decode_meta(&m),
            "",
            ErrorKind::InsaneBlob { .. } | ErrorKind::UnexpectedEof
        );
    }
    // TotalLength larger than the file, with an offset pointing past the end.
    let mut m = base.clone();
    put_u64(&mut m, 8, 1 << 20);
    put_u64(&mut m, 56, 1 << 19);
    rejected!(decode_meta(&m), "", ErrorKind::UnexpectedEof);
}

#[test]
fn meta_blob_length_disagrees_with_table() {
    // Go does not cross-check; a decoder may accept or reject, never panic.
    let mut m = sample_meta();
    let l = u32::from_le_bytes(m[BLOB0..BLOB0 + 4].try_into().unwrap());
    put_u32(&mut m, BLOB0, l + 1000);
    let _ = decode_meta(&m);
    put_u32(&mut m, BLOB0, 3);
    let _ = decode_meta(&m);
}

#[test]
fn meta_func_offset_inside_offset_table() {
    let mut m = sample_meta();
    // funcOffset[1] (at blob+48) pointing into the offset table itself.
    put_u32(&mut m, BLOB0 + 48, 44);
    rejected!(decode_meta(&m), "", ErrorKind::BadFuncOffset(..));
}

#[test]
fn meta_func_offset_past_length() {
    let mut m = sample_meta();
    put_u32(&mut m, BLOB0 + 44, 100_000);
    rejected!(decode_meta(&m), "", ErrorKind::BadFuncOffset(..));
}

#[test]
fn meta_string_index_out_of_range() {
    for field in [4, 8, 12] {
        let mut m = sample_meta();
        put_u32(&mut m, BLOB0 + field, 99);
        rejected!(decode_meta(&m), "", ErrorKind::BadStringRef { .. });
    }
    let mut m = sample_meta();
    put_u32(&mut m, BLOB0 + 4, u32::MAX);
    rejected!(decode_meta(&m), "", ErrorKind::BadStringRef { .. });
}

#[test]
fn meta_func_name_index_out_of_range() {
    let mut m = sample_meta();
    let foff = u32::from_le_bytes(m[BLOB0 + 44..BLOB0 + 48].try_into().unwrap()) as usize;
    // numUnits (1 byte), then funcNameIdx.
    m[BLOB0 + foff + 1] = 0x7f;
    rejected!(decode_meta(&m), "", ErrorKind::BadStringRef { .. });
}

#[test]
fn meta_huge_num_funcs() {
    for n in [1000u32, 1 << 28, u32::MAX] {
        let mut m = sample_meta();
        put_u32(&mut m, BLOB0 + 40, n);
        rejected!(decode_meta(&m), "", ErrorKind::TooManyFuncs { .. });
    }
}

#[test]
fn meta_huge_num_units() {
    let mut m = sample_meta();
    let foff = u32::from_le_bytes(m[BLOB0 + 44..BLOB0 + 48].try_into().unwrap()) as usize;
    // Replace numUnits=3 by a 5-byte ULEB of 2^32-1: splice bytes in.
    let at = BLOB0 + foff;
    assert_eq!(m[at], 3);
    let mut big = Vec::new();
    uleb(&mut big, u64::from(u32::MAX));
    m.splice(at..at + 1, big);
    rejected!(decode_meta(&m), "", ErrorKind::TooManyUnits { .. });
}

#[test]
fn meta_huge_string_count_and_length() {
    let base = sample_meta();
    // The blob string table starts after 44 + 4*2 bytes of the blob.
    let st = BLOB0 + 44 + 8;
    let count = base[st] as usize;
    assert!(count > 3);
    let mut m = base.clone();
    let mut big = Vec::new();
    uleb(&mut big, 1 << 40);
    m.splice(st..st + 1, big);
    rejected!(decode_meta(&m), "", ErrorKind::TooManyStrings { .. });
    // The first string's length (after the count byte): "" → huge.
    let mut m = base.clone();
    let mut big = Vec::new();
    uleb(&mut big, u64::MAX);
    m.splice(st + 1..st + 2, big);
    rejected!(decode_meta(&m), "", ErrorKind::UnexpectedEof);
}

#[test]
fn meta_uleb_without_terminator_at_eof() {
    // One package whose last byte is the last function's `lit` ULEB.
    let m = meta(&sample_pkgs()[..1], 2, 1);
    assert_eq!(m[m.len() - 1], 1);
    let mut cut = m.clone();
    *cut.last_mut().unwrap() = 0x81;
    rejected!(decode_meta(&cut), "", ErrorKind::UnexpectedEof);
    // Longer runs, with the lengths in the table patched to match.
    let mut long = m[..m.len() - 1].to_vec();
    long.extend(std::iter::repeat_n(0x80, 64));
    let total = long.len() as u64;
    put_u64(&mut long, 8, total);
    put_u64(&mut long, 56 + 8, total - (56 + 16 + 2));
    rejected!(decode_meta(&long), "", ErrorKind::UnexpectedEof);
}

// ---- counter-data file --------------------------------------------------

#[test]
fn ctr_truncated() {
    let c = sample_counters();
    for n in [0, 4, 10, 31, 32, 40, 47] {
        rejected!(
            decode_ctr(&c[..n]),
            "",
            ErrorKind::BadFooterMagic | ErrorKind::UnexpectedEof
        );
    }
    rejected!(
        decode_ctr(&c[..10]),
        "unexpected EOF",
        ErrorKind::UnexpectedEof
    );
}

#[test]
fn ctr_missing_footer() {
    let c = sample_counters();
    rejected!(
        decode_ctr(&c[..c.len() - 16]),
        "",
        ErrorKind::BadFooterMagic
    );
}

#[test]
fn ctr_bad_footer_magic() {
    let mut c = sample_counters();
    let n = c.len();
    c[n - 16 + 2] = b'X';
    rejected!(
        decode_ctr(&c),
        "invalid magic string (not a counter data file)",
        ErrorKind::BadFooterMagic
    );
}

#[test]
fn ctr_bad_header_magic() {
    let mut c = sample_counters();
    c[3] = b'X';
    let e = rejected!(
        decode_ctr(&c),
        "invalid magic string: not a counter data file",
        ErrorKind::BadCounterMagic
    );
    assert_eq!(e.offset, Some(0));
}

#[test]
fn ctr_no_segments() {
    let mut c = sample_counters();
    let n = c.len();
    put_u32(&mut c, n - 8, 0);
    rejected!(
        decode_ctr(&c),
        "invalid counter data file (no segments)",
        ErrorKind::NoSegments
    );
}

#[test]
fn ctr_version_2() {
    let mut c = sample_counters();
    put_u32(&mut c, 4, 2);
    rejected!(
        decode_ctr(&c),
        "version data incompatibility: reader is 1 data is 2",
        ErrorKind::CounterVersion(..)
    );
}

#[test]
fn ctr_flavor_3() {
    let mut c = sample_counters();
    c[24] = 3;
    rejected!(
        decode_ctr(&c),
        "unknown counter flavor",
        ErrorKind::BadFlavor(..)
    );
}

#[test]
fn ctr_raw_flavor_both_endiannesses() {
    let uleb = decode_ctr(&sample_counters()).unwrap();
    for be in [false, true] {
        let raw = decode_ctr(&counters(RAW, be, SAMPLE_ARGS, &sample_recs())).unwrap();
        assert_eq!(raw.funcs, uleb.funcs, "raw big_endian={be}");
        assert_eq!(raw.os_args, uleb.os_args);
    }
}

#[test]
fn ctr_arg_string_index_out_of_range() {
    let mut c = sample_counters();
    // Args start after the segment header (16) and the string table.
    let st_len = u32::from_le_bytes(c[SEG + 8..SEG + 12].try_into().unwrap()) as usize;
    let args = SEG + 16 + st_len;
    assert_eq!(c[args], SAMPLE_ARGS.len() as u8);
    c[args + 2] = 0x7f; // value index of the first pair
    rejected!(decode_ctr(&c), "", ErrorKind::BadStringRef { .. });
}

#[test]
fn ctr_duplicate_arg_key() {
    let c = counters(
        ULEB,
        false,
        &[("argc", "1"), ("argc", "2"), ("argv0", "x")],
        &sample_recs(),
    );
    rejected!(decode_ctr(&c), "", ErrorKind::DuplicateArg(..));
}

#[test]
fn ctr_non_integer_argc() {
    for bad in ["two", "", "1x", "0x10"] {
        let c = counters(
            ULEB,
            false,
            &[("argc", bad), ("argv0", "x")],
            &sample_recs(),
        );
        rejected!(decode_ctr(&c), "", ErrorKind::BadArgc);
    }
}

#[test]
fn ctr_huge_argc_is_bounded() {
    let c = counters(
        ULEB,
        false,
        &[("argc", "9223372036854775807"), ("argv0", "x")],
        &sample_recs(),
    );
    // Go would loop forever building argv; a decoder must not allocate for it.
    let _ = decode_ctr(&c);
}

#[test]
fn ctr_missing_argv_reads_as_empty() {
    let c = counters(
        ULEB,
        false,
        &[("argc", "3"), ("argv0", "a"), ("argv2", "c")],
        &sample_recs(),
    );
    let d = decode_ctr(&c).unwrap();
    assert_eq!(d.os_args, vec!["a".to_string(), String::new(), "c".into()]);
}

#[test]
fn ctr_huge_string_table_length() {
    for v in [1u32 << 20, u32::MAX] {
        let mut c = sample_counters();
        put_u32(&mut c, SEG + 8, v);
        rejected!(decode_ctr(&c), "", ErrorKind::ShortStringTable);
    }
}

#[test]
fn ctr_huge_args_length() {
    let mut c = sample_counters();
    put_u32(&mut c, SEG + 12, u32::MAX);
    rejected!(decode_ctr(&c), "", ErrorKind::ShortArgsTable);
}

#[test]
fn ctr_huge_string_count() {
    let mut c = sample_counters();
    let at = SEG + 16;
    let mut big = Vec::new();
    uleb(&mut big, 1 << 40);
    let old_len = 1;
    c.splice(at..at + old_len, big.clone());
    let st_len = u32::from_le_bytes(c[SEG + 8..SEG + 12].try_into().unwrap());
    put_u32(&mut c, SEG + 8, st_len + big.len() as u32 - 1);
    rejected!(decode_ctr(&c), "", ErrorKind::TooManyStrings { .. });
}

#[test]
fn ctr_huge_counter_count() {
    for flavor in [ULEB, RAW] {
        let mut c = counters(flavor, false, &[], &[(0, 0, vec![1, 2, 3])]);
        // The first record starts right after the (aligned) args.
        let st_len = u32::from_le_bytes(c[SEG + 8..SEG + 12].try_into().unwrap()) as usize;
        let args_len = u32::from_le_bytes(c[SEG + 12..SEG + 16].try_into().unwrap()) as usize;
        let rec = SEG + 16 + st_len + args_len;
        if flavor == RAW {
            put_u32(&mut c, rec, u32::MAX);
        } else {
            let mut big = Vec::new();
            uleb(&mut big, u64::from(u32::MAX));
            c.splice(rec..rec + 1, big);
        }
        rejected!(decode_ctr(&c), "", ErrorKind::UnexpectedEof);
    }
}

#[test]
fn ctr_huge_record_count() {
    let mut c = sample_counters();
    put_u64(&mut c, SEG, u64::MAX);
    rejected!(decode_ctr(&c), "", ErrorKind::UnexpectedEof);
}

#[test]
fn ctr_uleb_without_terminator_at_eof() {
    // The reader runs past the records into the footer; make the footer's
    // final padding an unterminated ULEB run.
    let mut c = sample_counters();
    put_u64(&mut c, SEG, 10);
    let n = c.len();
    c[n - 4..].copy_from_slice(&[0xff; 4]);
    rejected!(decode_ctr(&c), "", ErrorKind::UnexpectedEof);
}

#[test]
fn ctr_records_overrun_into_footer_like_go() {
    // One record more than written: Go decodes the footer's bytes
    // ("\0cwm": nCtrs 0, pkg 'c', func 'w') as a record, without error.
    let mut c = sample_counters();
    put_u64(&mut c, SEG, 3);
    let d = decode_ctr(&c).unwrap();
    assert_eq!(d.funcs.len(), 3);
    assert_eq!(
        (d.funcs[2].pkg, d.funcs[2].func),
        (u32::from(b'c'), u32::from(b'w'))
    );
    assert!(d.funcs[2].counters.is_empty());
}

#[test]
fn ctr_uleb_values_truncate_to_u32() {
    let mut c = counters(ULEB, false, &[], &[(0, 0, vec![9])]);
    let n = c.len();
    // The last counter (9) sits just before the footer: replace it with
    // 0x1_0000_0005 and then with an 11-byte ULEB.
    let at = n - 16 - 1;
    assert_eq!(c[at], 9);
    let mut v = Vec::new();
    uleb(&mut v, 0x1_0000_0005);
    c.splice(at..at + 1, v);
    assert_eq!(decode_ctr(&c).unwrap().funcs[0].counters, vec![5]);
    let mut c2 = counters(ULEB, false, &[], &[(0, 0, vec![9])]);
    let at = c2.len() - 17;
    let mut v = vec![0x87];
    v.extend(std::iter::repeat_n(0x80, 9));
    v.push(0x01);
    c2.splice(at..at + 1, v);
    assert_eq!(decode_ctr(&c2).unwrap().funcs[0].counters, vec![7]);
}

#[test]
fn ctr_second_segment_is_ignored() {
    let one = sample_counters();
    let mut two = one[..one.len() - 16].to_vec();
    // A second segment with other records, then a footer saying 2.
    let other = counters(
        ULEB,
        false,
        &[("argc", "0")],
        &[(0, 0, vec![100, 100, 100])],
    );
    two.extend_from_slice(&one[one.len() - 16..]);
    two.extend_from_slice(&other[SEG..other.len() - 16]);
    two.extend_from_slice(&footer(2));
    let a = decode_ctr(&one).unwrap();
    let b = decode_ctr(&two).unwrap();
    assert_eq!(a.funcs, b.funcs);
    assert_eq!(b.num_segments, 2);
}

#[test]
fn ctr_header_hash_is_not_checked() {
    let mut c = sample_counters();
    c[8..24].fill(0);
    assert_eq!(decode_ctr(&c).unwrap().meta_hash, [0; 16]);
}

// ---- every truncation and every single-byte corruption ------------------

#[test]
fn every_truncation_and_byte_flip_is_handled() {
    // Exhaustive over the small sample files: no panic, bounded allocation,
    // and every error names an offset.
    for (name, data, is_meta) in [
        ("meta", sample_meta(), true),
        ("counters", sample_counters(), false),
    ] {
        let check = |d: &[u8]| {
            let r = if is_meta {
                decode_meta(d).map(|_| ())
            } else {
                decode_ctr(d).map(|_| ())
            };
            if let Err(e) = r {
                assert!(e.offset.is_some(), "{name}: error without offset: {e}");
            }
        };
        for n in 0..data.len() {
            check(&data[..n]);
        }
        for i in 0..data.len() {
            for v in [0x00, 0xff, 0x80, 0x7f, data[i] ^ 1] {
                let mut d = data.clone();
                d[i] = v;
                check(&d);
            }
        }
    }
}

#[test]
fn ctr_fcn_entries_high_bits_are_ignored_like_go() {
    // Go compares its record count with uint32(FcnEntries): the upper half of
    // the u64 field is ignored (found by differential fuzzing against Go).
    let c = sample_counters();
    let want = decode_ctr(&c).unwrap().funcs;
    let mut hi = c.clone();
    hi[SEG + 4] = 0xff;
    assert_eq!(decode_ctr(&hi).unwrap().funcs, want);
}

#[test]
fn meta_file_level_string_table_is_checked() {
    // Go decodes the file-level string table (normally just "") and panics
    // when its count overruns StrTabLength; a decoder must reject it.
    let mut m = sample_meta();
    m[56 + 32] = 0x7f;
    rejected!(decode_meta(&m), "", ErrorKind::TooManyStrings { .. });
}
