"""The bottom layer: what every layer may use (reading YAML, waiting, processes, caches). It imports no other layer."""
