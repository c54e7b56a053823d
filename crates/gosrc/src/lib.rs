//! gosrc (in progress)
