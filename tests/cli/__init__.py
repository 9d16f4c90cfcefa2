"""Tests of the command line (ydoc_outputs/cli): its parts without a server; the
commands themselves against a real server are in tests/test_cli.py."""
