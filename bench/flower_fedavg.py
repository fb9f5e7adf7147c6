#!/usr/bin/env python3
"""Flower's FedAvg server aggregation on the same sizes as `fedra bench horizontal`.

Times what Flower's server does once a round's fit results have arrived:
`FedAvg.aggregate_fit` (in-place weighted average, the default) over
`n` FitRes whose parameters are the serialized float32 tensors as the gRPC
layer hands them over (`np.save` bytes), including the deserialization
(`parameters_to_ndarrays`) and the serialization of the new global model
(`ndarrays_to_parameters`). Prints one JSON line.

    pip install flwr numpy
    python3 bench/flower_fedavg.py --params 1000000 --clients 10 --repeat 2
"""
import argparse
import json
import logging
import time

import numpy as np

import flwr
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.server.strategy import FedAvg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=int, required=True)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    logging.getLogger("flwr").setLevel(logging.ERROR)
    rng = np.random.default_rng(1)
    update = (rng.random(a.params, dtype=np.float32) - 0.5).astype(np.float32)
    # One serialized update shared by every client: deserialization costs the
    # same as for distinct ones, without n copies in memory (as in Fedra's bench).
    params = ndarrays_to_parameters([update])
    ok = Status(code=Code.OK, message="")
    results = [
        (None, FitRes(status=ok, parameters=params, num_examples=100 + i, metrics={}))
        for i in range(a.clients)
    ]
    strategy = FedAvg()
    best = float("inf")
    for _ in range(max(1, a.repeat)):
        t = time.perf_counter()
        agg, _ = strategy.aggregate_fit(1, results, [])
        s = time.perf_counter() - t
        assert agg is not None and len(agg.tensors) == 1
        best = min(best, s)
    print(json.dumps({
        "name": "horizontal_flower",
        "mode": "plain",
        "flwr": flwr.__version__,
        "numpy": np.__version__,
        "params": a.params,
        "clients": a.clients,
        "server_aggregate_s": best,
        "server_ns_per_param_per_client": best * 1e9 / (a.params * a.clients),
        "bytes_per_client": 2 * len(params.tensors[0]),
    }))


if __name__ == "__main__":
    main()
