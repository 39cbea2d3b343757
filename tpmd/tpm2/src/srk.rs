//! placeholder, owned by the simulator/SRK helper
