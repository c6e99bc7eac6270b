"""Vector stores the guard pushes filters down into."""
