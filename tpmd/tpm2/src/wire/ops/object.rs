//! Objects: Create, CreatePrimary, Load, Import, ReadPublic, EvictControl. Public and
//! private areas travel as the TPM2B bytes key files store.

use tpmd_api::marshal::{put_tpm2b, put_u16, put_u32, TPM_ALG_NULL};

use crate::wire::{cc, handle, Command, Response, WireError};

/// TPM2B_SENSITIVE_CREATE with a user auth value and no data, then the template, no
/// outside info and no creation PCRs: the parameters of Create and CreatePrimary.
fn creation_params(cmd: &mut Command, auth: &[u8], template: &[u8]) {
    let mut sensitive = Vec::with_capacity(auth.len() + 4);
    put_tpm2b(&mut sensitive, auth);
    put_tpm2b(&mut sensitive, &[]);
    put_tpm2b(&mut cmd.params, &sensitive);
    zeroize::Zeroize::zeroize(&mut sensitive);
    put_tpm2b(&mut cmd.params, template);
    put_tpm2b(&mut cmd.params, &[]);
    put_u32(&mut cmd.params, 0);
}

/// TPM2_Create of an object from `template` (a TPMT_PUBLIC) under `parent`.
pub fn create(parent: u32, auth: &[u8], template: &[u8]) -> Command {
    let mut cmd = Command::new(cc::CREATE, &[parent], 1, 0);
    creation_params(&mut cmd, auth, template);
    cmd
}

/// A new object's TPM2B_PRIVATE and TPM2B_PUBLIC, as key files store them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub private: Vec<u8>,
    pub public: Vec<u8>,
}

fn sized(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    put_tpm2b(&mut out, bytes);
    out
}

pub fn parse_create(response: &Response) -> Result<Created, WireError> {
    let mut r = response.reader();
    let private = sized(r.read_tpm2b("outPrivate")?);
    let public = sized(r.read_tpm2b("outPublic")?);
    Ok(Created { private, public })
}

/// TPM2_CreatePrimary of `template` in `hierarchy`, with no auth value.
pub fn create_primary(hierarchy: u32, template: &[u8]) -> Command {
    let mut cmd = Command::new(cc::CREATE_PRIMARY, &[hierarchy], 1, 1);
    creation_params(&mut cmd, &[], template);
    cmd
}

/// The new primary's TPM2B_PUBLIC.
pub fn parse_create_primary(response: &Response) -> Result<Vec<u8>, WireError> {
    let mut r = response.reader();
    Ok(sized(r.read_tpm2b("outPublic")?))
}

/// TPM2_Load: `private` and `public` are the TPM2B bytes of a key file.
pub fn load(parent: u32, private: &[u8], public: &[u8]) -> Command {
    let mut cmd = Command::new(cc::LOAD, &[parent], 1, 1);
    cmd.params.extend_from_slice(private);
    cmd.params.extend_from_slice(public);
    cmd
}

/// TPM2_Import of a duplicate with an outer wrapper only (no inner symmetric key):
/// `public`, `duplicate` and `seed` are the TPM2B bytes of an importable key file.
pub fn import(parent: u32, public: &[u8], duplicate: &[u8], seed: &[u8]) -> Command {
    let mut cmd = Command::new(cc::IMPORT, &[parent], 1, 0);
    put_tpm2b(&mut cmd.params, &[]);
    cmd.params.extend_from_slice(public);
    cmd.params.extend_from_slice(duplicate);
    cmd.params.extend_from_slice(seed);
    put_u16(&mut cmd.params, TPM_ALG_NULL);
    cmd
}

/// The imported key's TPM2B_PRIVATE, loadable under the parent.
pub fn parse_import(response: &Response) -> Result<Vec<u8>, WireError> {
    let mut r = response.reader();
    let private = sized(r.read_tpm2b("outPrivate")?);
    r.finish("Import response")?;
    Ok(private)
}

pub fn read_public(object: u32) -> Command {
    Command::new(cc::READ_PUBLIC, &[object], 0, 0)
}

/// The object's TPM2B_PUBLIC and its name.
pub fn parse_read_public(response: &Response) -> Result<(Vec<u8>, Vec<u8>), WireError> {
    let mut r = response.reader();
    let public = sized(r.read_tpm2b("outPublic")?);
    let name = r.read_tpm2b("name")?.to_vec();
    r.read_tpm2b("qualifiedName")?;
    r.finish("ReadPublic response")?;
    Ok((public, name))
}

/// TPM2_ObjectChangeAuth: a new auth value for the loaded `object` under `parent`. It
/// needs the object's admin authorization (its auth value, for keys without an admin
/// policy), and the new value is the first parameter, for the session to encrypt.
pub fn object_change_auth(object: u32, parent: u32, new_auth: &[u8]) -> Command {
    let mut cmd = Command::new(cc::OBJECT_CHANGE_AUTH, &[object, parent], 1, 0);
    put_tpm2b(&mut cmd.params, new_auth);
    cmd
}

/// The object's new TPM2B_PRIVATE, loadable under the same parent.
pub fn parse_object_change_auth(response: &Response) -> Result<Vec<u8>, WireError> {
    let mut r = response.reader();
    let private = sized(r.read_tpm2b("outPrivate")?);
    r.finish("ObjectChangeAuth response")?;
    Ok(private)
}

/// TPM2_TestParms of the algorithm parameters of a public area (TPMT_PUBLIC_PARMS: the
/// type and its parameters, as in a TPMT_PUBLIC after nameAlg, attributes and policy):
/// the TPM answers success if it can make or load such a key.
pub fn test_parms(public_parms: &[u8]) -> Command {
    let mut cmd = Command::new(cc::TEST_PARMS, &[], 0, 0);
    cmd.params.extend_from_slice(public_parms);
    cmd
}

/// TPM2_EvictControl by the owner: makes `object` persistent at `persistent`.
pub fn evict_control(object: u32, persistent: u32) -> Command {
    let mut cmd = Command::new(cc::EVICT_CONTROL, &[handle::OWNER, object], 1, 0);
    put_u32(&mut cmd.params, persistent);
    cmd
}
