//! One module per subcommand.

pub mod collect;
pub mod covdata;
pub mod go_shim;
pub mod instrument;
pub mod reset;
