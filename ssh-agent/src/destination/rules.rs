//! The constraints attached to one key: a list of allowed hops, each from a host (or from
//! this machine) to a host, optionally as a given user. Hosts are named by their host
//! keys, or by a certificate authority plus the host name its certificates must carry.

use ssh_agent_lib::proto::extension::{DestinationConstraint, HostTuple, RestrictDestination};
use ssh_agent_lib::proto::Extension;
use ssh_key::public::KeyData;

#[derive(Debug, Clone, PartialEq)]
pub struct HostKey {
    pub key: KeyData,
    pub is_ca: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Host {
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub keys: Vec<HostKey>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    pub from: Host,
    pub to: Host,
}

/// A key's destination constraints; none means the key may be used anywhere.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rules {
    pub hops: Vec<Hop>,
}

fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

fn host(tuple: HostTuple) -> Host {
    Host {
        user: non_empty(tuple.username),
        hostname: non_empty(tuple.hostname),
        keys: tuple
            .keys
            .into_iter()
            .map(|k| HostKey {
                key: k.keyblob,
                is_ca: k.is_ca,
            })
            .collect(),
    }
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.hops.is_empty()
    }

    /// The constraint from an add-constrained message, if this extension is one. As in
    /// OpenSSH, a hop must name where it goes, and only the first hop may start here.
    pub fn from_extension(extension: &Extension) -> Result<Option<Rules>, String> {
        let parsed = extension
            .parse_key_constraint::<RestrictDestination>()
            .map_err(|e| format!("malformed destination constraint: {e}"))?;
        let Some(RestrictDestination { constraints }) = parsed else {
            return Ok(None);
        };
        let mut hops = Vec::new();
        for DestinationConstraint { from, to } in constraints {
            let hop = Hop {
                from: host(from),
                to: host(to),
            };
            if hop.to.hostname.is_none() || hop.to.keys.is_empty() {
                return Err("a destination constraint names no destination host".into());
            }
            if hop.from.user.is_some() {
                return Err(
                    "a destination constraint names a user on the host it starts from".into(),
                );
            }
            if hop.from.hostname.is_some() == hop.from.keys.is_empty() {
                return Err(
                    "a destination constraint's starting host lacks its name or its keys".into(),
                );
            }
            hops.push(hop);
        }
        Ok(Some(Rules { hops }))
    }

    /// For logs: "host_a, host_a>host_b".
    pub fn describe(&self) -> String {
        self.hops
            .iter()
            .map(|hop| {
                let to = match &hop.to.user {
                    Some(user) => format!("{user}@{}", hop.to.hostname.as_deref().unwrap_or("?")),
                    None => hop.to.hostname.clone().unwrap_or_default(),
                };
                match &hop.from.hostname {
                    Some(from) => format!("{from}>{to}"),
                    None => to,
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
