"""The bundled demo: a small WSGI shop with one leaking endpoint and several clean ones."""
