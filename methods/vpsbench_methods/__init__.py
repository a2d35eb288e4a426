"""Method plugins shipped with vpsbench (reference implementations of published methods)."""
