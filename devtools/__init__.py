"""Developer tooling (not deployed)."""
