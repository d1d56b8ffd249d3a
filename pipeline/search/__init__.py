"""Search: grids, sweeps (local or Ray engines), selection, ensembles and the sealed test."""
