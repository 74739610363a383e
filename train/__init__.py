"""Training of instance-normalization style-transfer generators (needs torch)."""
