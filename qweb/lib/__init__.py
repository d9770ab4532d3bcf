"""Small helpers shared across qweb that do not need Django."""
