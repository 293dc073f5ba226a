"""The Redis implementations of the production storage interfaces (``ROOST_REDIS_URL``).

Imported only when Redis is configured: redis-py is in the ``production`` extra.
"""
