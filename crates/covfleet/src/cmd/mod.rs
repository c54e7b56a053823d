//! One module per subcommand.

pub mod collect;
pub mod covdata;
pub mod reset;
