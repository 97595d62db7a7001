"""Tessera's application, two rooms: ``kernel`` (the platform every module stands on) and
``composition`` (the assembly that puts the modules together and serves them)."""
