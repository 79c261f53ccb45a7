//! Size and latency measurements every job reports.
