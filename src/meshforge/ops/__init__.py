"""Pure geometry: numpy arrays and trimesh objects in, values out. No pluggy, no engine, no Asset."""
