"""Reading and writing model files: sniffing, bounded reads, format adapters over trimesh/pygltflib."""
