"""Fake rknn-toolkit-lite2 for tests (see tests/fakes/README.md); never shipped."""
