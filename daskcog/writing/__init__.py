"""Writing GeoArrays and GeoTensors out: COGs and plain GeoTIFFs, computed chunk by chunk."""
