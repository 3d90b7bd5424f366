"""FIX data dictionaries and the typed Python messages generated from them."""
