"""Layers shared by methods (exported here once two methods or the issue call for them)."""
