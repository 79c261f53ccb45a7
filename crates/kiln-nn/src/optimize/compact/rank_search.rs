//! Choosing a low-rank factorization's rank by its cost: the smallest rank that
//! passes a check (in the compact job: the main metric stays within an accuracy
//! drop), by bisection, since the metric rises with the rank, up to noise.

/// The smallest rank in `1..=useful` for which `passes` holds, assuming it holds from
/// some rank on; `None` when even `useful` fails. Calls `passes` O(log useful) times.
pub fn smallest_passing_rank<E>(
    useful: usize,
    mut passes: impl FnMut(usize) -> Result<bool, E>,
) -> Result<Option<usize>, E> {
    if useful == 0 || !passes(useful)? {
        return Ok(None);
    }
    let (mut lo, mut hi) = (1usize, useful);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if passes(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(Some(hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisection_finds_the_first_passing_rank_or_none() {
        let mut calls = 0;
        let r = smallest_passing_rank::<()>(100, |r| {
            calls += 1;
            Ok(r >= 37)
        });
        assert_eq!(r, Ok(Some(37)));
        assert!(calls <= 9, "{calls} calls");
        assert_eq!(smallest_passing_rank::<()>(10, |_| Ok(false)), Ok(None));
        assert_eq!(smallest_passing_rank::<()>(10, |_| Ok(true)), Ok(Some(1)));
    }
}
