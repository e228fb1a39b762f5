"""hello_node: a small garrison node that shows the runtime at work for a few seconds.

Run it with ``make demo`` or ``python -m examples.hello_node --duration 5``.
``messages`` holds the message types, ``actors`` the actors, and
``__main__`` the node itself: logging, the guided tour, the summary.
"""
