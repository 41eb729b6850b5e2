//! The admin side (user management on Airflow's FAB tables). Being built:
//! so far the password hashes Airflow's FAB writes ([`password`]).

pub mod password;
