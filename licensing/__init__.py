"""Manage1to1 licensing domain: the Licensing tab's rules, free of storage and transport."""
