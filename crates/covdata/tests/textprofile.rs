//! The legacy text profile parser on hand-made input (format notes §4).

use covdata::textprofile::Profile;

#[test]
fn parses_right_to_left_with_colons_in_names() {
    let p = Profile::parse("mode: count\nC:/x/a:b.go:1.2,3.4 5 6\n").unwrap();
    let b = &p.files["C:/x/a:b.go"];
    assert_eq!(
        (
            b[0].st_line,
            b[0].st_col,
            b[0].en_line,
            b[0].en_col,
            b[0].stmts,
            b[0].count
        ),
        (1, 2, 3, 4, 5, 6)
    );
}

#[test]
fn merges_adjacent_duplicates_by_mode() {
    let text = "x.go:1.1,2.1 1 3\nx.go:1.1,2.1 1 4\ny.go:5.1,6.1 2 0\n";
    let c = Profile::parse(&format!("mode: count\n{text}")).unwrap();
    assert_eq!(c.files["x.go"].len(), 1);
    assert_eq!(c.files["x.go"][0].count, 7);
    let s = Profile::parse(&format!("mode: set\n{text}")).unwrap();
    assert_eq!(s.files["x.go"][0].count, 3 | 4);
    assert_eq!(c.stmt_totals(), (1, 3));
}

#[test]
fn sorts_blocks_by_start() {
    let p = Profile::parse("mode: set\na.go:9.1,9.5 1 1\na.go:2.1,3.1 1 0\na.go:2.5,2.9 1 1\n")
        .unwrap();
    let starts: Vec<(u32, u32)> = p.files["a.go"]
        .iter()
        .map(|b| (b.st_line, b.st_col))
        .collect();
    assert_eq!(starts, vec![(2, 1), (2, 5), (9, 1)]);
}

#[test]
fn rejects_bad_input_naming_the_line() {
    for (text, line) in [
        ("", 1),
        ("mode:\n", 1),
        ("x.go:1.1,2.1 1 1\n", 1),
        ("mode: set\nx.go:1.1,2.1 1\n", 2),
        ("mode: set\nx.go:1.1,2.1 1 -1\n", 2),
        ("mode: set\nx.go:1.1-2.1 1 1\n", 2),
        ("mode: set\n:1.1,2.1 1 1\n", 2),
        ("mode: set\nok.go:1.1,2.1 1 1\nx.go:a.1,2.1 1 1\n", 3),
    ] {
        let e = Profile::parse(text).expect_err(text);
        if line > 0 {
            assert_eq!(e.line, line, "{text:?}: {e}");
        }
        assert!(e.to_string().contains("line"), "{e}");
    }
}

#[test]
fn inconsistent_numstmt_is_an_error() {
    let e = Profile::parse("mode: count\nx.go:1.1,2.1 1 1\nx.go:1.1,2.1 2 1\n").unwrap_err();
    assert!(e.to_string().contains("inconsistent NumStmt"), "{e}");
}

#[test]
fn huge_counts_do_not_panic() {
    // Go parses counts as int (at most 2^63-1) and sums them wrapping;
    // covfleet rejects larger counts as Go does and saturates sums, never panics.
    let max = i64::MAX;
    assert!(Profile::parse(&format!("mode: count\nx.go:1.1,2.1 1 {}\n", u64::MAX)).is_err());
    let text = format!("mode: count\nx.go:1.1,2.1 1 {max}\nx.go:1.1,2.1 1 {max}\n");
    let _ = Profile::parse(&text);
    let _ = Profile::parse("mode: count\nx.go:1.1,2.1 1 99999999999999999999999\n");
    let _ = Profile::parse("mode: count\nx.go:99999999999.1,2.1 1 1\n");
    let one = Profile::parse(&format!("mode: count\nx.go:1.1,2.1 1 {max}\n")).unwrap();
    let mut two = one.clone();
    let _ = two.merge(&one);
}
