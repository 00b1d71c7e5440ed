"""Data: safe media decoding, faces, synthesis and datasets."""
