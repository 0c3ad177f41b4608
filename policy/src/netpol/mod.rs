//! NetworkPolicies read and evaluated: [`model`] parses and checks them as
//! the API server would, [`evaluate`] gives the verdict for one connection
//! with the reasons. Shared by `explain`, `validate` and the tests.

pub mod evaluate;
pub mod load;
pub mod model;
