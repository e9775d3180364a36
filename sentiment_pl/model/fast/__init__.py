"""Two patches of the transformers Llama forward that compute the same results for less: the shared
system-turn prefix run once per batch (`prefix`), and the last decoder layer run only where it is read
(`last_layer`)."""
