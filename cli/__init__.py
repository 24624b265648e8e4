"""The ``channel`` command line: local simulation and operator tools."""
