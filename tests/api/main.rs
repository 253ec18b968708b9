//! Integration tests: real server on a random port.
mod process;
