"""Compress-cache-retrieve: what the engine drops is kept here and fetched back by key.

``markers`` owns keys and marker text, ``store`` the interfaces, ``memory`` / ``sqlite`` /
``redis_store`` the backends and ``factory.from_config`` picks and opens one.
"""
