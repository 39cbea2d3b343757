/* Makes an RSA-2048 key through trousers (tcsd) under the SRK and writes its raw
 * TPM_KEY12 blob to stdout: the "key created by a trousers-based tool" that the TPM 1.2
 * interop test then loads and signs with in tpmd. The SRK secret is tried in both
 * well-known conventions (20 zero bytes as the secret, and as its SHA-1 preimage). */
#include <stdio.h>
#include <string.h>
#include <tss/tspi.h>

static int fail(const char *what, TSS_RESULT rc)
{
	fprintf(stderr, "trousers-create-key: %s failed: 0x%08x\n", what, rc);
	return 1;
}

static TSS_RESULT create_under_srk(TSS_HCONTEXT ctx, UINT32 secret_mode, TSS_HKEY *key)
{
	TSS_UUID srk_uuid = TSS_UUID_SRK;
	BYTE zeros[20];
	TSS_HKEY srk;
	TSS_HPOLICY policy;
	TSS_RESULT rc;

	memset(zeros, 0, sizeof zeros);
	rc = Tspi_Context_LoadKeyByUUID(ctx, TSS_PS_TYPE_SYSTEM, srk_uuid, &srk);
	if (rc)
		return rc;
	rc = Tspi_GetPolicyObject(srk, TSS_POLICY_USAGE, &policy);
	if (rc)
		return rc;
	rc = Tspi_Policy_SetSecret(policy, secret_mode, sizeof zeros, zeros);
	if (rc)
		return rc;
	rc = Tspi_Context_CreateObject(ctx, TSS_OBJECT_TYPE_RSAKEY,
				       TSS_KEY_TYPE_LEGACY | TSS_KEY_SIZE_2048 |
				       TSS_KEY_NO_AUTHORIZATION | TSS_KEY_NOT_MIGRATABLE,
				       key);
	if (rc)
		return rc;
	rc = Tspi_SetAttribUint32(*key, TSS_TSPATTRIB_KEY_INFO,
				  TSS_TSPATTRIB_KEYINFO_SIGSCHEME,
				  TSS_SS_RSASSAPKCS1V15_DER);
	if (rc)
		return rc;
	return Tspi_Key_CreateKey(*key, srk, 0);
}

int main(void)
{
	TSS_HCONTEXT ctx;
	TSS_HKEY key;
	TSS_RESULT rc;
	BYTE *blob;
	UINT32 len;

	rc = Tspi_Context_Create(&ctx);
	if (rc)
		return fail("Tspi_Context_Create", rc);
	rc = Tspi_Context_Connect(ctx, NULL);
	if (rc)
		return fail("Tspi_Context_Connect", rc);
	rc = create_under_srk(ctx, TSS_SECRET_MODE_SHA1, &key);
	if (rc)
		rc = create_under_srk(ctx, TSS_SECRET_MODE_PLAIN, &key);
	if (rc)
		return fail("creating the key under the SRK", rc);
	rc = Tspi_GetAttribData(key, TSS_TSPATTRIB_KEY_BLOB,
				TSS_TSPATTRIB_KEYBLOB_BLOB, &len, &blob);
	if (rc)
		return fail("Tspi_GetAttribData(KEY_BLOB)", rc);
	if (fwrite(blob, 1, len, stdout) != len)
		return fail("writing the blob", 0);
	Tspi_Context_Close(ctx);
	return 0;
}
