"""STAC items as plain dicts and what daskcog reads from them: item fields, bands and
their metadata, the scenes of each asset, grouping into steps, proj:* grids."""
