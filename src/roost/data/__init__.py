"""Data shipped with Roost: the recorded 2009 race (race-2009.csv, with its sources)."""
