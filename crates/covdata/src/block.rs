//! The one coverage block type every crate shares.

/// One coverable block with its count: a source range (1-based lines and
/// columns, end exclusive as Go records them), its statement count and how
/// often it ran.
///
/// The same meaning everywhere: a line of a text profile (`covdata textfmt`,
/// `go test -coverprofile`), a block of an owner's merged coverage read back
/// from `coverage.db`, and a block the HTML report draws. Field names follow
/// Go's `coverage.CoverableUnit` (`StLine`, `StCol`, `EnLine`, `EnCol`,
/// `NxStmts`). The count is 64-bit because text profiles may carry counts
/// beyond `u32` (Go parses them as `int`) and sums of merged counters can too;
/// binary counters (`u32`) widen losslessly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Block {
    pub st_line: u32,
    pub st_col: u32,
    pub en_line: u32,
    pub en_col: u32,
    pub stmts: u32,
    pub count: u64,
}
