//! How many threads the tensor core may split one operation over.
//!
//! Large matrix products ([`crate::kernels::gemm`]) and large Adam updates split their work
//! over rayon's pool (one thread per core). Each output element is still computed
//! by one thread in a fixed order, so results do not depend on the split. Speed
//! figures that are quoted per core (the job reports' latency and throughput,
//! `kiln measure`) run inside [`serial`], which keeps every split on the calling
//! thread.

use std::cell::Cell;

thread_local! {
    static SERIAL: Cell<bool> = const { Cell::new(false) };
}

/// Threads an operation on this thread may use now: 1 inside [`serial`], else rayon's.
pub fn ways() -> usize {
    if SERIAL.with(Cell::get) {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// Runs `f` with every tensor-core operation it calls on this thread kept single-threaded.
pub fn serial<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERIAL.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SERIAL.with(|s| s.replace(true)));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_holds_inside_and_is_restored_after_even_on_panic() {
        let outside = ways();
        assert_eq!(serial(ways), 1);
        assert_eq!(serial(|| serial(ways)), 1);
        assert_eq!(ways(), outside);
        let caught = std::panic::catch_unwind(|| serial(|| panic!("inside")));
        assert!(caught.is_err());
        assert_eq!(ways(), outside);
    }
}
