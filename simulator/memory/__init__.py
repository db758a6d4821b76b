"""Off-chip memory (DRAM/HBM) cost model."""
