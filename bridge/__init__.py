"""multiscale bridge: the coupling core."""
