"""The kit's own tests: the plugin's fixtures, and pytester for running pytest as a user would."""

pytest_plugins = ["pytester"]
