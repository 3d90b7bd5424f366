"""`mdfeed bench`: the end-to-end benchmark harness."""
