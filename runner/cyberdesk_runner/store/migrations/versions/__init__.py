"""Revisions of the store schema, oldest first: vNNNN_<what>.py (file names are not revision ids)."""
