"""The benchmark of the platform over the real local stack (bench/run; docs in bench/README.md)."""
