//! Job parameter types: raw params → `check()` → valid params.
