"""Pure MPC protocols: no I/O, no clocks, no OS randomness (all are parameters)."""
