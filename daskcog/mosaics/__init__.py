"""Many scenes on one grid: scene footprints, the target grid, mosaic methods, `mosaic` and
`stack`."""
