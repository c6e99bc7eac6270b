"""ragguard: per-user access control for retrieval-augmented generation."""
