"""The rules of the Licensing tab and the usage forecast: pure functions over plain data.

Nothing here touches the database, the network or the wall clock; callers pass in what the rules
need (the time included), so every rule is unit-tested without a server or database.
"""
