//! The policy fields of a TSS2 key file: `policy [1]`, the statements a policy session
//! runs before the key may be used, and `authPolicy [3]`, policies an owner signed for a
//! key whose policy starts with TPM2_PolicyAuthorize.
//!
//! ```text
//! TPMPolicy ::= SEQUENCE {
//!     commandCode   [0] EXPLICIT INTEGER,
//!     commandPolicy [1] EXPLICIT OCTET STRING   -- the command's marshalled body
//! }
//! TPMAuthPolicy ::= SEQUENCE {
//!     name    [0] EXPLICIT UTF8String OPTIONAL,
//!     policy  [1] EXPLICIT SEQUENCE OF TPMPolicy  -- ends with its PolicyAuthorize
//! }
//! ```

use super::asn1::*;
use super::KeyFileError;

/// One policy command: its code and its body as the TPM takes it (TPM2_PolicyAuthorize
/// is the exception: keySign's TPM2B_PUBLIC, policyRef, and a TPMT_SIGNATURE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyStatement {
    pub command_code: u32,
    pub command_policy: Vec<u8>,
}

/// A policy signed by the key's policy owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPolicy {
    /// A name for people, such as the kernel version the PCR values are for.
    pub name: Option<String>,
    pub statements: Vec<PolicyStatement>,
}

fn explicit<'a>(r: &mut Der<'a>, tag: u8, what: &str) -> Result<Der<'a>, KeyFileError> {
    Ok(Der::new(r.read(tag, what)?))
}

/// Reads `[n] EXPLICIT SEQUENCE OF TPMPolicy`'s SEQUENCE OF.
pub(super) fn read_statements(r: &mut Der<'_>) -> Result<Vec<PolicyStatement>, KeyFileError> {
    let mut list = Der::new(r.read(TAG_SEQUENCE, "the SEQUENCE OF TPMPolicy")?);
    let mut statements = Vec::new();
    while !list.is_empty() {
        let mut item = Der::new(list.read(TAG_SEQUENCE, "a TPMPolicy")?);
        let mut code = explicit(&mut item, TAG_CONTEXT_0, "commandCode [0]")?;
        let command_code = parse_unsigned(code.read(TAG_INTEGER, "commandCode INTEGER")?)?;
        let mut body = explicit(&mut item, TAG_CONTEXT_1, "commandPolicy [1]")?;
        let command_policy = body
            .read(TAG_OCTET_STRING, "commandPolicy OCTET STRING")?
            .to_vec();
        if !item.is_empty() || !code.is_empty() || !body.is_empty() {
            return Err(corrupt("unexpected bytes in a TPMPolicy"));
        }
        statements.push(PolicyStatement {
            command_code,
            command_policy,
        });
    }
    if !r.is_empty() {
        return Err(corrupt("unexpected bytes after a policy sequence"));
    }
    Ok(statements)
}

/// Reads `authPolicy`'s SEQUENCE OF TPMAuthPolicy.
pub(super) fn read_auth_policies(r: &mut Der<'_>) -> Result<Vec<AuthPolicy>, KeyFileError> {
    let mut list = Der::new(r.read(TAG_SEQUENCE, "the SEQUENCE OF TPMAuthPolicy")?);
    let mut policies = Vec::new();
    while !list.is_empty() {
        policies.push(read_auth_policy(&mut list)?);
    }
    if !r.is_empty() {
        return Err(corrupt("unexpected bytes after authPolicy"));
    }
    Ok(policies)
}

/// Reads one TPMAuthPolicy SEQUENCE.
fn read_auth_policy(r: &mut Der<'_>) -> Result<AuthPolicy, KeyFileError> {
    let mut item = Der::new(r.read(TAG_SEQUENCE, "a TPMAuthPolicy")?);
    let name = if item.peek_tag() == Some(TAG_CONTEXT_0) {
        let mut inner = explicit(&mut item, TAG_CONTEXT_0, "name [0]")?;
        let text = inner.read(TAG_UTF8_STRING, "name UTF8String")?;
        if !inner.is_empty() {
            return Err(corrupt("unexpected bytes after a signed policy's name"));
        }
        Some(
            String::from_utf8(text.to_vec())
                .map_err(|_| corrupt("a signed policy's name is not UTF-8"))?,
        )
    } else {
        None
    };
    let mut body = explicit(&mut item, TAG_CONTEXT_1, "policy [1]")?;
    let statements = read_statements(&mut body)?;
    if !item.is_empty() {
        return Err(corrupt("unexpected bytes in a TPMAuthPolicy"));
    }
    Ok(AuthPolicy { name, statements })
}

impl AuthPolicy {
    /// Parses the DER of exactly one TPMAuthPolicy SEQUENCE (a `.policy` file's content).
    pub fn from_der(der: &[u8]) -> Result<AuthPolicy, KeyFileError> {
        let mut r = Der::new(der);
        let policy = read_auth_policy(&mut r)?;
        if !r.is_empty() {
            return Err(corrupt("unexpected bytes after the TPMAuthPolicy"));
        }
        Ok(policy)
    }

    /// The DER of this one TPMAuthPolicy SEQUENCE.
    pub fn to_der(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_auth_policy(&mut out, self);
        out
    }
}

/// `SEQUENCE OF TPMPolicy`.
pub(super) fn write_statements(out: &mut Vec<u8>, statements: &[PolicyStatement]) {
    let mut list = Vec::new();
    for statement in statements {
        let mut code = Vec::new();
        put_der(
            &mut code,
            TAG_INTEGER,
            &der_unsigned(statement.command_code),
        );
        let mut body = Vec::new();
        put_der(&mut body, TAG_OCTET_STRING, &statement.command_policy);
        let mut item = Vec::new();
        put_der(&mut item, TAG_CONTEXT_0, &code);
        put_der(&mut item, TAG_CONTEXT_1, &body);
        put_der(&mut list, TAG_SEQUENCE, &item);
    }
    put_der(out, TAG_SEQUENCE, &list);
}

/// `SEQUENCE OF TPMAuthPolicy`.
pub(super) fn write_auth_policies(out: &mut Vec<u8>, policies: &[AuthPolicy]) {
    let mut list = Vec::new();
    for policy in policies {
        write_auth_policy(&mut list, policy);
    }
    put_der(out, TAG_SEQUENCE, &list);
}

fn write_auth_policy(out: &mut Vec<u8>, policy: &AuthPolicy) {
    let mut item = Vec::new();
    if let Some(name) = &policy.name {
        let mut text = Vec::new();
        put_der(&mut text, TAG_UTF8_STRING, name.as_bytes());
        put_der(&mut item, TAG_CONTEXT_0, &text);
    }
    let mut body = Vec::new();
    write_statements(&mut body, &policy.statements);
    put_der(&mut item, TAG_CONTEXT_1, &body);
    put_der(out, TAG_SEQUENCE, &item);
}
