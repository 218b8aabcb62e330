"""Provider adapters: one module per provider kind, registered by name in `_registry`."""
