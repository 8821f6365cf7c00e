"""Read APIs: traces and spans."""
