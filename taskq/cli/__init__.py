"""The ``taskq`` command line."""
