"""The trusted enclave runtime. ``enclave.mpc`` is the pure cryptographic core."""
