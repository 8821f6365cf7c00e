"""The Pharos SDK (client side). The public API is re-exported by :mod:`pharos`; nothing here
imports :mod:`pharos.server`."""
