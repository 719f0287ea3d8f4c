//! The operating system below everything else: child processes, `/proc`, the runtime
//! directory's layout, randomness.
//!
//! Owns: how a child is supervised ([`child`]), the one `/proc/PID/stat` parser and the
//! identity of this machine and process ([`procfs`]), where runtime files live ([`runtime`]),
//! random tokens ([`random`]), Ctrl-Z for children in their own process groups ([`jobctl`]),
//! who holds `flock`s per `/proc/locks` ([`flocks`]).
//!
//! Must not: know about jobs, locks, ssh or rsync. Everything above may import this module;
//! it imports nothing from the crate.

pub mod cancel;
pub mod child;
pub mod clock;
pub mod flocks;
pub mod jobctl;
pub mod procfs;
pub mod random;
pub mod runtime;
