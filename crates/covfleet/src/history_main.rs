//! The `covfleet-history` binary: covfleet with `publish` and `history`
//! linked in. `covfleet` runs it for those two commands (see `lib.rs`).

fn main() -> std::process::ExitCode {
    covfleet::main_with_history()
}
