"""Client-side SDK (imports nothing from :mod:`pharos.server`)."""
