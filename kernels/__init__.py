"""Hot loops of otgrid: pure array-in/array-out Numba kernels (no imports from otgrid)."""
