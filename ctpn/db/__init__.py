"""PostgreSQL through Django's own backend, with the idle connections of an ASGI server's HTTP
requests kept for the next request (``ctpn.db.base``)."""
