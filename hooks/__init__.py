"""CDS services, one module each; `hooks.registry.ALL_SERVICES` lists what this deployment offers."""
