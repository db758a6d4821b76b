"""Reports of a timing run: the Report itself (build), text table, Chrome trace, HDF5."""
