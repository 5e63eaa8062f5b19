"""Read time of the meshforge readers vs trimesh.load_scene on the same bytes (best of 3; prints ratios).

    python bench/read_formats.py
"""
import time, io, numpy as np, trimesh, warnings
warnings.filterwarnings("ignore")
from pathlib import Path
from meshforge.io.readers import read
from meshforge.types import SourceFile
import os
C=Path(os.environ.get('MESHFORGE_CORPUS', Path(__file__).resolve().parents[2] / 'shared' / 'corpus'))
def t(fn, n=3):
    best=1e9
    for _ in range(n):
        s=time.perf_counter(); fn(); best=min(best,time.perf_counter()-s)
    return best
# synthetic big quad OBJ and binary STL
g=trimesh.creation.icosphere(subdivisions=7)  # 327k faces
stl=trimesh.exchange.stl.export_stl(g)
objtxt=trimesh.exchange.obj.export_obj(g, include_normals=False, include_texture=False).encode()
cases={"rear_case.stl (18.8k tri)":(C/'stl/numpy-stl/binary/rear_case.stl').read_bytes(),
       "icosphere7.stl (328k tri)":stl, "icosphere7.obj (328k tri)":objtxt,
       "self_intersectA.obj (17k)":(C/'obj/manifold/self_intersectA.obj').read_bytes(),
       "cube_gears.3mf (25.7k)":(C/'3mf/3mf-samples/cube_gears.3mf').read_bytes(),
       "bunny.ply (16k)":(C/'ply/trimesh/bunny.ply').read_bytes(),
       "hemisphere.off (3.6k)":(C/'off/pmp/hemisphere.off').read_bytes()}
for name,data in cases.items():
    ext=name.split()[0].rsplit('.',1)[1]
    ours=t(lambda: read(SourceFile(name='x.'+ext,data=data)))
    try:
        ref=t(lambda: trimesh.load_scene(io.BytesIO(data), file_type=ext))
    except Exception as e: ref=float('nan')
    print(f"{name:28s} meshforge {ours*1000:8.1f} ms  trimesh {ref*1000:8.1f} ms  ratio {ours/ref:5.2f}")
