//! Telling browsers at once: the registry of this node's listeners (sockets
//! and long-polls) and the bus that carries "scene X changed" between nodes.

pub mod bus;
pub mod health;
pub mod pg_bus;
pub mod registry;

pub use bus::{Bus, LocalBus};
pub use health::BusHealth;
pub use registry::{Registry, Subscription};
