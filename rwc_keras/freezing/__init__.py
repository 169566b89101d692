"""Layer freezing: the units and their multiply-accumulates, the base `Freezer` that freezes
them, and three rules: `RWCFreezing` (the RWC rule), `FreezeOut` and `LinearFreezing` (for
comparison)."""
