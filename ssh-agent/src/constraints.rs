//! Key constraints of an add request (`ssh-add -c`, `-t`, `-h`), the same for every kind
//! of key the agent holds; the agent-wide default lifetime (`-t` of the agent) applies
//! when the request sets none.

use std::time::{Duration, Instant};

use ssh_agent_lib::proto::KeyConstraint;

use crate::destination::Rules;
use crate::error::AgentError;

#[derive(Debug, Default)]
pub struct Limits {
    pub confirm: bool,
    pub lifetime: Option<Duration>,
    pub rules: Rules,
}

impl Limits {
    pub fn read(
        constraints: &[KeyConstraint],
        default_lifetime: Option<Duration>,
    ) -> Result<Limits, AgentError> {
        let mut out = Limits {
            lifetime: default_lifetime,
            ..Limits::default()
        };
        for constraint in constraints {
            match constraint {
                KeyConstraint::Lifetime(seconds) => {
                    out.lifetime = Some(Duration::from_secs(u64::from(*seconds)))
                }
                KeyConstraint::Confirm => out.confirm = true,
                KeyConstraint::Extension(ext) => match Rules::from_extension(ext) {
                    Ok(Some(rules)) => out.rules = rules,
                    Ok(None) => {
                        return Err(AgentError::Unsupported(format!(
                            "key constraint \"{}\" is not supported; add the key without it",
                            ext.name
                        )))
                    }
                    Err(why) => return Err(AgentError::BadRequest(why)),
                },
            }
        }
        Ok(out)
    }

    pub fn expires(&self) -> Option<Instant> {
        self.lifetime.map(|l| Instant::now() + l)
    }

    /// ", confirm each use, lifetime 10s, only for host_a>host_b", for the log.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if self.confirm {
            out.push_str(", confirm each use");
        }
        if let Some(l) = self.lifetime {
            out.push_str(&format!(", lifetime {}s", l.as_secs()));
        }
        if !self.rules.is_empty() {
            out.push_str(&format!(", only for {}", self.rules.describe()));
        }
        out
    }
}
