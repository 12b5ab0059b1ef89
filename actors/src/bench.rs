//! Engine-only benchmark workloads (filled in by the benchmark work).
