//! Finding Modbus TCP devices: every address of the ranges a discovery
//! gives, probed gently for what each unit says it is and which of its
//! tables answer.
//!
//! `identification` reads Read Device Identification answers, `probe`
//! asks one address, `scan` all of them at the discovery's pace.

pub mod identification;
pub mod probe;
pub mod scan;
