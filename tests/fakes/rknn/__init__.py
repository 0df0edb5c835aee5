"""Fake rknn-toolkit2 (host converter and simulator) for tests (see tests/fakes/README.md); never shipped."""
