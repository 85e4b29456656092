"""Learning from retrievals: a tool whose outputs the model fetches back is compressed less."""
