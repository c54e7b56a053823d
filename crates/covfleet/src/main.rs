//! The `covfleet` binary: everything lives in the library (`lib.rs`), so
//! that the command line can be tested without spawning processes.

fn main() -> std::process::ExitCode {
    covfleet::main()
}
