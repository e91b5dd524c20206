"""Agent drivers, one module each."""
