"""Local servers that speak real protocols (OneRoster REST, Clever), for connector tests."""
