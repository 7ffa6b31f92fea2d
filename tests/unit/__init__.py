"""Unit tests of the engine-agnostic core (a package, so basenames may repeat those in tests/integration)."""
