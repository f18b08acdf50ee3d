//! Nothing here: the crate exists for its test (`tests/orders.rs`), which shows how your own
//! crate tests its API through the simulated API Management gateway with `vnetsim::harness`.
