"""One module per mutation, with its payload; joined into the Mutation root in graph.schema."""
