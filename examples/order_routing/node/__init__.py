"""The order-routing node: a supervision tree of actors built from garrison's public API."""
