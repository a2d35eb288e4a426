"""vpsbench test suite (a package, so tests can import the shared helpers in tests/)."""
