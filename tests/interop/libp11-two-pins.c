/*
 * One process, two keys with different PINs, through OpenSSL and the libp11 engine:
 *
 *   libp11-two-pins MODULE TOKEN_PIN DATA ROUNDS LABEL1 PIN1 LABEL2 PIN2
 *
 * loads both private keys (pkcs11:object=LABEL;type=private) and signs DATA (SHA-256)
 * with each, alternating, ROUNDS times, writing LABEL.sig.N for round N. PINs come from
 * a UI method, as an application's PIN dialog would give them: the token PIN for the
 * token login, the PIN of the key being used for libp11's context-specific login of a
 * key with CKA_ALWAYS_AUTHENTICATE. Each PIN request is printed ("asked: token" or
 * "asked: LABEL"), so the test sees who was asked for what.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ui.h>

static const char *token_pin;
static const char *labels[2];
static const char *pins[2];
static int current = -1;

static int read_pin(UI *ui, UI_STRING *uis)
{
    const char *prompt = UI_get0_output_string(uis);
    enum UI_string_types type = UI_get_string_type(uis);
    if (type != UIT_PROMPT && type != UIT_VERIFY)
        return 1;
    if (prompt != NULL && strstr(prompt, "token") != NULL) {
        printf("asked: token\n");
        return UI_set_result(ui, uis, token_pin) == 0;
    }
    if (current < 0)
        return 0;
    printf("asked: %s\n", labels[current]);
    return UI_set_result(ui, uis, pins[current]) == 0;
}

static int fail(const char *what)
{
    fprintf(stderr, "%s failed: ", what);
    ERR_print_errors_fp(stderr);
    return 1;
}

static int sign(EVP_PKEY *key, const unsigned char *data, size_t len, const char *path)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char sig[1024];
    size_t sig_len = sizeof(sig);
    FILE *f;
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, data, len) != 1) {
        EVP_MD_CTX_free(ctx);
        return fail("signing");
    }
    EVP_MD_CTX_free(ctx);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(sig, 1, sig_len, f) != sig_len) {
        perror(path);
        return 1;
    }
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned char data[4096];
    size_t data_len;
    EVP_PKEY *keys[2];
    ENGINE *e;
    UI_METHOD *ui;
    FILE *f;
    int rounds, round, i;

    if (argc != 9) {
        fprintf(stderr, "usage: %s MODULE TOKEN_PIN DATA ROUNDS LABEL1 PIN1 LABEL2 PIN2\n",
                argv[0]);
        return 2;
    }
    token_pin = argv[2];
    rounds = atoi(argv[4]);
    labels[0] = argv[5];
    pins[0] = argv[6];
    labels[1] = argv[7];
    pins[1] = argv[8];
    f = fopen(argv[3], "rb");
    if (f == NULL) {
        perror(argv[3]);
        return 1;
    }
    data_len = fread(data, 1, sizeof(data), f);
    fclose(f);
    setvbuf(stdout, NULL, _IONBF, 0);

    ui = UI_create_method("two PINs");
    UI_method_set_reader(ui, read_pin);
    ENGINE_load_builtin_engines();
    e = ENGINE_by_id("pkcs11");
    if (e == NULL)
        return fail("loading the pkcs11 engine");
    /* The engine's own UI method is what libp11 asks for context-specific PINs. */
    if (!ENGINE_ctrl_cmd_string(e, "MODULE_PATH", argv[1], 0) ||
        !ENGINE_ctrl_cmd(e, "SET_USER_INTERFACE", 0, ui, NULL, 0) || !ENGINE_init(e))
        return fail("initializing the pkcs11 engine");
    for (i = 0; i < 2; i++) {
        char uri[512];
        snprintf(uri, sizeof(uri), "pkcs11:object=%s;type=private", labels[i]);
        current = i;
        keys[i] = ENGINE_load_private_key(e, uri, ui, NULL);
        if (keys[i] == NULL)
            return fail(uri);
    }
    for (round = 0; round < rounds; round++) {
        for (i = 0; i < 2; i++) {
            char path[512];
            snprintf(path, sizeof(path), "%s.sig.%d", labels[i], round);
            current = i;
            printf("signing: %s\n", labels[i]);
            if (sign(keys[i], data, data_len, path))
                return 1;
        }
    }
    EVP_PKEY_free(keys[0]);
    EVP_PKEY_free(keys[1]);
    ENGINE_finish(e);
    ENGINE_free(e);
    UI_destroy_method(ui);
    return 0;
}
