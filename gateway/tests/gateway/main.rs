//! Integration tests of the gateway: one binary, a module per stage (see `support` for the
//! topology builder, the client and the misbehaving backends).

mod admin;
mod backends;
mod edge;
mod front;
mod fuzz;
mod live;
mod policy;
mod routing;
mod rules;
mod support;
