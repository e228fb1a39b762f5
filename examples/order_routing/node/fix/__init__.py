"""The node's FIX 4.4 venue: the gateway that speaks FIX (``gateway.py``) and the mapping between the
intent log's orders and FIX application messages (``orders.py``). The codec and the session layer are
``examples/order_routing/fix/``, shared with the broker simulator's acceptor."""
