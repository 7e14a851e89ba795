"""Job fixtures for the worker and executor tests: Ghost's job scripts ported, and importable functions."""
