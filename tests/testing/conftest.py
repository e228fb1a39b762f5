"""The kit's own tests use the garrison plugin's fixtures.

tests/conftest.py defines ``node`` and ``clock`` fixtures of its own for the
rest of the suite; binding the plugin's here makes them the closest
definitions for this directory.
"""

from garrison.testing.plugin import clock, node

pytest_plugins = ["pytester"]

__all__ = ["clock", "node"]
