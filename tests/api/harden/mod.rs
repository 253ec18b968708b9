//! Hardening, round 3 (SPEC "v3 additions": consent and binding, limits
//! that hold, where the browser is): each test reproduces an attack or a
//! defect an outside check found, and fails without its fix.

mod binding;
mod consent;
mod geoip;
mod guards;
mod openapi_validator;
mod sim_problems;
