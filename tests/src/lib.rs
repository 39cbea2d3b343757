//! Harness for tpmd's end-to-end tests and benchmarks: a fresh swtpm, a private
//! dbus-daemon, and the real tpmd and tpm-keyctl binaries, all torn down on drop.

pub mod bench;
pub mod bus;
pub mod calls;
pub mod daemon;
pub mod multi_user;
pub mod pkcs11;
pub mod ssh;
pub mod tools;
pub mod trousers;
pub mod users;

pub use bus::PrivateBus;
pub use daemon::{binary, TestEnv, TpmdProcess};
pub use tpmd_simulator::Family;
