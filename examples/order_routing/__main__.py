"""python -m examples.order_routing [run|node|chaos|multinode|verdict] --help"""

from examples.order_routing.harness.cli import main

raise SystemExit(main())
