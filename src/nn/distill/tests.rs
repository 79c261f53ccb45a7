//! Tests of the distillation core.
