"""Stores in the memory of the one process that serves (``ROOST_HOME_TIMELINES=memory``)."""
