"""Layer freezing: the units and their multiply-accumulates, the base `Freezer` that freezes
them, and two rules: `RWCFreezing` (the RWC rule) and `FreezeOut` (for comparison)."""
