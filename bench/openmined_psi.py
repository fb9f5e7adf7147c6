"""Side-by-side baseline for `fedra bench psi`: OpenMined's PSI (PyPI `openmined-psi`,
ECDH over P-256, single-threaded C++ with Python bindings), full protocol in one
process, N ids per side with a 50% overlap (the same sets as `fedra bench psi`).

    pip install openmined-psi
    python3 bench/openmined_psi.py 100000

Prints one JSON object per line, like every Fedra benchmark.
"""

import json
import sys
import time

import private_set_intersection.python as psi


def run(n: int) -> dict:
    client_items = [f"u{i}" for i in range(n)]
    server_items = [f"u{i}" for i in range(n // 2, n // 2 + n)]
    t0 = time.perf_counter()
    client = psi.client.CreateWithNewKey(True)
    server = psi.server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(1e-9, len(client_items), server_items, psi.DataStructure.RAW)
    request = client.CreateRequest(client_items)
    response = server.ProcessRequest(request)
    intersection = client.GetIntersection(setup, response)
    wall = time.perf_counter() - t0
    return {
        "name": "psi_openmined",
        "ids_per_side": n,
        "overlap": n // 2,
        "intersection_size": len(intersection),
        "wall_s": wall,
        "bytes": setup.ByteSize() + request.ByteSize() + response.ByteSize(),
    }


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["100000"]:
        print(json.dumps(run(int(arg))), flush=True)
