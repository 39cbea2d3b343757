//! Latency profiles: how long a real TPM takes per command, so that the proxy can make
//! swtpm as slow as a discrete or firmware TPM.
//!
//! A profile is a TOML file (see `simulator/profiles/`):
//!
//! ```toml
//! name = "my-tpm"
//! # Any command not listed below.
//! default = { median_ms = 4.0, jitter_ms = 1.0 }
//!
//! [commands]
//! GetRandom = 6.5                                   # median only
//! ContextLoad = { median_ms = 12.0, jitter_ms = 2.0 }
//! # RSA and ECC keys differ a lot; `median_ms` covers commands whose key kind the
//! # proxy cannot tell.
//! Sign = { median_ms = 69.0, rsa_ms = 163.0, ecc_ms = 69.0, jitter_ms = 5.0 }
//! ```
//!
//! Commands are named as in the specification, with or without `TPM2_`, or by code
//! (`"0x15D"`). Each command takes its median plus a uniform jitter in
//! [-jitter_ms, +jitter_ms], never less than zero.

mod names;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::Rng;

pub use names::{command_code, command_name};

use crate::kernel_rm::wire::KeyKind;

/// Profiles shipped with the simulator, by name.
const BUILTIN: &[(&str, &str)] = &[
    (
        "discrete",
        include_str!("../../profiles/discrete-slb9670.toml"),
    ),
    (
        "firmware",
        include_str!("../../profiles/firmware-ftpm.toml"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum LatencyError {
    #[error("cannot read the latency profile {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the latency profile {origin} is not valid TOML: {message}")]
    Syntax { origin: String, message: String },
    #[error("the latency profile {origin}: {key}: {problem}")]
    Invalid {
        origin: String,
        key: String,
        problem: String,
    },
    #[error("no latency profile file or built-in profile named {0:?}; built-in profiles: {builtins}", builtins = builtin_names().join(", "))]
    Unknown(String),
}

/// Names of the built-in profiles (`discrete`, `firmware`).
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(name, _)| *name).collect()
}

/// A median and a jitter, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delay {
    pub median_ms: f64,
    pub jitter_ms: f64,
}

impl Delay {
    fn sample(self, rng: &mut impl Rng) -> Duration {
        let jitter = if self.jitter_ms > 0.0 {
            rng.gen_range(-self.jitter_ms..=self.jitter_ms)
        } else {
            0.0
        };
        Duration::from_secs_f64((self.median_ms + jitter).max(0.0) / 1000.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct CommandDelay {
    any: Delay,
    rsa: Option<Delay>,
    ecc: Option<Delay>,
}

/// Per-command delays of one kind of TPM.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyProfile {
    name: String,
    default: Delay,
    commands: BTreeMap<u32, CommandDelay>,
}

impl LatencyProfile {
    /// A file path, or the name of a built-in profile.
    pub fn load(spec: &str) -> Result<LatencyProfile, LatencyError> {
        let path = Path::new(spec);
        if path.exists() {
            return Self::from_file(path);
        }
        Self::builtin(spec).ok_or_else(|| LatencyError::Unknown(spec.to_string()))
    }

    pub fn from_file(path: &Path) -> Result<LatencyProfile, LatencyError> {
        let text = std::fs::read_to_string(path).map_err(|source| LatencyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn builtin(name: &str) -> Option<LatencyProfile> {
        let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name)?;
        // The shipped files are checked by a unit test.
        Self::parse(text, name).ok()
    }

    /// Parses profile text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<LatencyProfile, LatencyError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| LatencyError::Syntax {
                    origin: origin.to_string(),
                    message: e.message().to_string(),
                })?;
        let invalid = |key: &str, problem: &str| LatencyError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            problem: problem.to_string(),
        };
        let mut name = origin.to_string();
        let mut default = None;
        let mut commands = BTreeMap::new();
        for (key, value) in &table {
            match key.as_str() {
                "name" => {
                    name = value
                        .as_str()
                        .ok_or_else(|| invalid(key, "expected a string"))?
                        .to_string()
                }
                "description" => {}
                "default" => default = Some(parse_delay(value, key, &invalid)?.any),
                "commands" => {
                    let list = value
                        .as_table()
                        .ok_or_else(|| invalid(key, "expected a table of commands"))?;
                    for (command, value) in list {
                        let where_ = format!("commands.{command}");
                        let cc = command_code(command).ok_or_else(|| {
                            invalid(&where_, "unknown command; use a TPM2 command name such as Sign, or a code such as \"0x15D\"")
                        })?;
                        commands.insert(cc, parse_delay(value, &where_, &invalid)?);
                    }
                }
                _ => {
                    return Err(invalid(
                        key,
                        "unknown setting; expected name, description, default or [commands]",
                    ))
                }
            }
        }
        let default = default.ok_or_else(|| {
            invalid(
                "default",
                "missing; add for example `default = { median_ms = 5.0 }`",
            )
        })?;
        Ok(LatencyProfile {
            name,
            default,
            commands,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The delay for command `cc`, on a key of `kind` when known.
    pub fn delay_for(&self, cc: u32, kind: Option<KeyKind>) -> Delay {
        let Some(entry) = self.commands.get(&cc) else {
            return self.default;
        };
        let by_kind = match kind {
            Some(KeyKind::Rsa) => entry.rsa,
            Some(KeyKind::Ecc) => entry.ecc,
            None => None,
        };
        by_kind.unwrap_or(entry.any)
    }

    /// One random draw of the delay for command `cc`.
    pub fn sample(&self, cc: u32, kind: Option<KeyKind>) -> Duration {
        self.delay_for(cc, kind).sample(&mut rand::thread_rng())
    }
}

fn parse_delay(
    value: &toml::Value,
    key: &str,
    invalid: &dyn Fn(&str, &str) -> LatencyError,
) -> Result<CommandDelay, LatencyError> {
    let milliseconds = |value: &toml::Value, field: &str| -> Result<f64, LatencyError> {
        let ms = match value {
            toml::Value::Float(f) => *f,
            toml::Value::Integer(i) => *i as f64,
            _ => return Err(invalid(field, "expected a number of milliseconds")),
        };
        if ms.is_finite() && (0.0..=600_000.0).contains(&ms) {
            Ok(ms)
        } else {
            Err(invalid(field, "expected milliseconds between 0 and 600000"))
        }
    };
    let table = match value {
        toml::Value::Table(table) => table,
        number => {
            let median_ms = milliseconds(number, key)?;
            return Ok(CommandDelay {
                any: Delay {
                    median_ms,
                    jitter_ms: 0.0,
                },
                rsa: None,
                ecc: None,
            });
        }
    };
    let mut median = None;
    let mut jitter_ms = 0.0;
    let (mut rsa, mut ecc) = (None, None);
    for (field, value) in table {
        let where_ = format!("{key}.{field}");
        let ms = milliseconds(value, &where_)?;
        match field.as_str() {
            "median_ms" => median = Some(ms),
            "jitter_ms" => jitter_ms = ms,
            "rsa_ms" => rsa = Some(ms),
            "ecc_ms" => ecc = Some(ms),
            _ => {
                return Err(invalid(
                    &where_,
                    "unknown field; expected median_ms, jitter_ms, rsa_ms or ecc_ms",
                ))
            }
        }
    }
    let median_ms = median.ok_or_else(|| invalid(key, "missing median_ms"))?;
    let with = |median_ms| Delay {
        median_ms,
        jitter_ms,
    };
    Ok(CommandDelay {
        any: with(median_ms),
        rsa: rsa.map(with),
        ecc: ecc.map(with),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
        name = "sample"
        default = { median_ms = 4.0, jitter_ms = 1 }
        [commands]
        GetRandom = 6
        TPM2_ContextLoad = { median_ms = 12.5 }
        "0x15D" = { median_ms = 69.0, rsa_ms = 163.0, jitter_ms = 5.0 }
    "#;

    #[test]
    fn a_profile_parses_with_names_codes_and_key_kinds() -> Result<(), LatencyError> {
        let profile = LatencyProfile::parse(SAMPLE, "test")?;
        assert_eq!(profile.name(), "sample");
        let delay = |cc, kind| profile.delay_for(cc, kind).median_ms;
        assert_eq!(delay(0x17B, None), 6.0);
        assert_eq!(delay(0x161, None), 12.5);
        assert_eq!(delay(0x15D, None), 69.0);
        assert_eq!(delay(0x15D, Some(KeyKind::Rsa)), 163.0);
        assert_eq!(delay(0x15D, Some(KeyKind::Ecc)), 69.0);
        assert_eq!(delay(0x165, None), 4.0);
        assert_eq!(profile.delay_for(0x15D, Some(KeyKind::Rsa)).jitter_ms, 5.0);
        Ok(())
    }

    #[test]
    fn samples_stay_within_the_jitter() -> Result<(), LatencyError> {
        let profile = LatencyProfile::parse(SAMPLE, "test")?;
        for _ in 0..200 {
            let ms = profile.sample(0x165, None).as_secs_f64() * 1000.0;
            assert!((3.0 - 1e-9..=5.0 + 1e-9).contains(&ms), "{ms}");
        }
        Ok(())
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("default = 1\n[commands]\nSing = 3", "commands.Sing"),
            ("[commands]\nSign = 3", "default"),
            ("default = \"fast\"", "default"),
            ("default = { median_ms = -1 }", "default.median_ms"),
            ("default = { mean_ms = 1 }", "default.mean_ms"),
            ("default = 1\nspeed = 3", "speed"),
        ];
        for (text, key) in cases {
            match LatencyProfile::parse(text, "t.toml") {
                Err(LatencyError::Invalid { key: got, .. }) => assert_eq!(got, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            LatencyProfile::parse("default = {", "t.toml"),
            Err(LatencyError::Syntax { .. })
        ));
        assert!(matches!(
            LatencyProfile::load("no-such-profile"),
            Err(LatencyError::Unknown(_))
        ));
    }

    #[test]
    fn the_shipped_profiles_parse_and_sign_slower_with_rsa_than_ecc() -> Result<(), LatencyError> {
        for (name, text) in BUILTIN {
            let profile = LatencyProfile::parse(text, name)?;
            assert!(LatencyProfile::builtin(name).is_some());
            let rsa = profile.delay_for(0x15D, Some(KeyKind::Rsa)).median_ms;
            let ecc = profile.delay_for(0x15D, Some(KeyKind::Ecc)).median_ms;
            assert!(rsa > ecc, "{name}: RSA {rsa} ms, ECC {ecc} ms");
            // What the kernel model adds per object must be in every profile.
            for cc in [0x161, 0x162, 0x165] {
                assert!(profile.commands.contains_key(&cc), "{name}: 0x{cc:x}");
            }
        }
        assert_eq!(LatencyProfile::load("discrete")?.name(), "discrete-slb9670");
        assert_eq!(LatencyProfile::load("firmware")?.name(), "firmware-ftpm");
        Ok(())
    }
}
