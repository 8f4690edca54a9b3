"""The kernel names `[test] kernels` takes (config/sections.py reads them from here, catalog.py defines
what each does); a leaf module, so that the config imports nothing else of kernels/."""

DENSE, CSR, SEMI_STRUCTURED = "dense", "csr", "semi_structured"
NAMES = (DENSE, CSR, SEMI_STRUCTURED)
