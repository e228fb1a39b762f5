"""How to test an actor with garrison.testing: see test_momentum.py and docs/testing.md."""
