//! Knowledge distillation (Hinton, Vinyals & Dean 2015): a small student
//! learns from a frozen teacher's softened outputs as well as from the labels.
