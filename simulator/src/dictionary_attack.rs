//! Dictionary-attack parameters for tests: a small maxTries and a long recoveryTime let a
//! test reach (or prove it never reaches) lockout without waiting for the real recovery.

use crate::control::{raw_command, response_code};
use crate::{Family, Simulator};

/// Why the parameters could not be set.
#[derive(Debug, thiserror::Error)]
pub enum DaParametersError {
    #[error("dictionary-attack parameters are set here on a TPM 2.0 simulator only")]
    NotTpm2,
    #[error("cannot send TPM2_DictionaryAttackParameters to the simulator: {0}; swtpm serves one client at a time, so disconnect other clients first")]
    Io(#[from] std::io::Error),
    #[error("the simulator refused TPM2_DictionaryAttackParameters with response code 0x{0:08x}")]
    Refused(u32),
}

const TPM_ST_SESSIONS: u16 = 0x8002;
const TPM_CC_DICTIONARY_ATTACK_PARAMETERS: u32 = 0x0000_013A;
const TPM_RH_LOCKOUT: u32 = 0x4000_000A;
const TPM_RS_PW: u32 = 0x4000_0009;

/// TPM2_DictionaryAttackParameters authorized by the lockout hierarchy's (empty) password.
fn command(max_tries: u32, recovery_time_s: u32, lockout_recovery_s: u32) -> Vec<u8> {
    let mut auth = Vec::new();
    auth.extend(TPM_RS_PW.to_be_bytes());
    auth.extend(0u16.to_be_bytes()); // nonce: empty
    auth.push(0); // session attributes
    auth.extend(0u16.to_be_bytes()); // password: empty
    let mut body = Vec::new();
    body.extend(TPM_CC_DICTIONARY_ATTACK_PARAMETERS.to_be_bytes());
    body.extend(TPM_RH_LOCKOUT.to_be_bytes());
    body.extend((auth.len() as u32).to_be_bytes());
    body.extend(auth);
    for parameter in [max_tries, recovery_time_s, lockout_recovery_s] {
        body.extend(parameter.to_be_bytes());
    }
    let mut out = Vec::new();
    out.extend(TPM_ST_SESSIONS.to_be_bytes());
    out.extend(((body.len() + 6) as u32).to_be_bytes());
    out.extend(body);
    out
}

impl Simulator {
    /// Sets the TPM 2.0's maxTries, recoveryTime and lockoutRecovery (seconds) with an
    /// empty lockout password, over swtpm's data channel (a private simulator's through
    /// its proxy).
    pub fn set_dictionary_attack_parameters(
        &self,
        max_tries: u32,
        recovery_time_s: u32,
        lockout_recovery_s: u32,
    ) -> Result<(), DaParametersError> {
        if self.family != Family::Tpm2 {
            return Err(DaParametersError::NotTpm2);
        }
        let command = command(max_tries, recovery_time_s, lockout_recovery_s);
        let rc = match &self.proxy {
            // A private simulator's data channel is the proxy's alone.
            Some(proxy) if self.is_private() => {
                proxy.with_tpm_held(|send| send(&command).and_then(|r| response_code(&r)))?
            }
            _ => raw_command(self.port, &command)?,
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(DaParametersError::Refused(rc))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn command_layout() {
        let c = command(5, 600, 30);
        assert_eq!(c.len(), 39);
        assert_eq!(&c[2..6], &39u32.to_be_bytes());
        assert_eq!(&c[6..10], &0x13Au32.to_be_bytes());
        assert_eq!(&c[14..18], &9u32.to_be_bytes());
        assert_eq!(&c[27..], &[0, 0, 0, 5, 0, 0, 2, 0x58, 0, 0, 0, 30]);
    }

    #[test]
    fn sets_the_parameters_on_a_tpm2_simulator() {
        let sim = Simulator::start_in_tempdir(Family::Tpm2, None, false).unwrap();
        sim.set_dictionary_attack_parameters(5, 600, 30).unwrap();
        use tpmd_tpm2::transport::OpenEsys;
        use tss_esapi::constants::PropertyTag;
        let mut ctx = sim.tcp_transport().open().unwrap();
        let value = |ctx: &mut tss_esapi::Context, tag| ctx.get_tpm_property(tag).unwrap().unwrap();
        assert_eq!(value(&mut ctx, PropertyTag::MaxAuthFail), 5);
        assert_eq!(value(&mut ctx, PropertyTag::LockoutInterval), 600);
        assert_eq!(value(&mut ctx, PropertyTag::LockoutRecovery), 30);
    }
}
