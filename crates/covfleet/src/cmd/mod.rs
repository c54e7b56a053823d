//! One module per subcommand.

pub mod covdata;
pub mod go_shim;
pub mod instrument;
