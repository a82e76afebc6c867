"""The pieces of the mock upstream; `tests/mock_upstream.py` is the entry point and the manual."""
