"""pcpeft test suite."""
