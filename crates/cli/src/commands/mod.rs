pub mod cell;
pub mod info;
pub mod run;
