"""What consumes pipeline events: selection files, meshes, viewers and recordings."""
