"""Emulator tests (a package, so their module names do not clash with tests/providers/)."""
