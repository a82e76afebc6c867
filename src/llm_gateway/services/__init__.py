"""Admin operations over the store: providers, models, keys, logs, stats. No HTTP here."""
