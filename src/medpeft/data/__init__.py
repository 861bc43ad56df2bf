"""Data: image I/O, manifests, report sections, one module per dataset, synthetic data."""
