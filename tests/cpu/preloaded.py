"""A module the pool's `preload` imports in each worker before it is ready."""
