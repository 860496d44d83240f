pub mod cell;
pub mod compare;
pub mod eval;
pub mod history;
pub mod info;
pub mod logits;
pub mod report;
pub mod run;
