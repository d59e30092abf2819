//! See capture/mod.rs for this module's role.
