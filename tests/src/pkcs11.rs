//! Harness pieces for the PKCS#11 module tests.
