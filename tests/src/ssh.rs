//! Harness pieces for the ssh-agent tests: sshd on 127.0.0.1, OpenSSH clients.
