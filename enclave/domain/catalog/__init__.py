"""The catalog: datasets, their versions and columns, and who may see or change them."""
