//! Destination constraints (`ssh-add -h`, restrict-destination-v00@openssh.com), enforced
//! by this agent for every key it holds, TPM keys included, the way OpenSSH's ssh-agent
//! enforces them: a connection's session bindings are the path of hosts it came through,
//! each hop must be allowed by some constraint, a signature for user authentication must
//! name the session and host key bound last, and keys a connection may not use are not
//! even listed to it.

mod bind;
mod permit;
mod rules;
mod userauth;

pub use bind::Bind;
pub use permit::{check_sign, listable};
pub use rules::Rules;
