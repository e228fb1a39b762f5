"""The test and demo harness around the node: the command line, the live view, the chaos
and multinode runs, the verdict, and the faults they inject (through the tree's hooks)."""
